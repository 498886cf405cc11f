"""Consistency groups in the configuration (docs/pacs.md): a valid group loads, and each
mistake is named with its file:line."""

from __future__ import annotations

from pathlib import Path

from pacs_config import FILES, HEAD, load, problems

from medark.config.groups import Group, groups_of

DB = """
[[systems.pacs.sources]]
type = "postgres"
dsn = "host=db dbname=orthanc"
group = "pacs"
"""

def test_a_database_and_a_files_source_form_a_group(tmp_path: Path) -> None:
    config = load(tmp_path, HEAD + DB + FILES + """
[[systems.pacs.sources]]
type = "files"
paths = ["/etc/orthanc"]
""")
    sources = config.systems["pacs"].sources
    assert groups_of(sources) == [Group("pacs", 0, 1)]
    assert sources[1].pacs == "orthanc"


def test_a_sql_index_needs_its_query_and_a_query_needs_sql(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + DB + FILES.replace('"orthanc"', '"sql"'))
    assert any(p.startswith(f"{tmp_path / 'medark.toml'}:") and "needs index_query" in p
               for p in found), found
    found = problems(tmp_path, HEAD + DB + FILES + 'index_query = "SELECT path FROM f"\n')
    assert any("index_query needs pacs" in p for p in found), found
    config = load(tmp_path, HEAD + DB + FILES.replace('"orthanc"', '"sql"')
                  + 'index_query = "SELECT path FROM f"\n')
    assert config.systems["pacs"].sources[1].index_query


def test_each_group_mistake_is_named_with_its_line(tmp_path: Path) -> None:
    text = HEAD + DB + DB + FILES.replace('["/var/lib/orthanc/db"]', '["/a", "/b"]')
    found = problems(tmp_path, text)
    lines = text.splitlines()
    two_db = next(p for p in found if "exactly one postgres" in p)
    line = int(two_db.split(":")[1])
    assert lines[line - 1].startswith("group"), (two_db, lines[line - 1])
    paths = next(p for p in found if "one path" in p)
    assert lines[int(paths.split(":")[1]) - 1].startswith("paths"), paths


def test_a_group_without_files_or_pacs_kind_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + DB)
    assert any("exactly one files source (has 0)" in p for p in found), found
    found = problems(tmp_path, HEAD + DB + FILES.replace('pacs = "orthanc"\n', ""))
    assert any("needs pacs" in p for p in found), found
    found = problems(tmp_path, HEAD + DB.replace('group = "pacs"\n', "") + FILES)
    assert any("exactly one postgres source (has 0)" in p for p in found), found


def test_pacs_outside_a_group_and_groups_of_other_kinds_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + FILES.replace('group = "pacs"\n', ""))
    assert any("pacs belongs to the files source of a group" in p for p in found), found
    found = problems(tmp_path, HEAD + DB + FILES + """
[[systems.pacs.sources]]
type = "command"
command = "dump"
group = "pacs"
""")
    assert any("a command source cannot be in a group" in p for p in found), found
