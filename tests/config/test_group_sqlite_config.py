"""A consistency group whose database is Orthanc's SQLite index (docs/pacs.md): the
configuration it needs, each mistake named with its file:line, and the daemon's one
`group backup --sqlite` step for it (scheduler/runner.py)."""

from __future__ import annotations

from pathlib import Path

from pacs_config import FILES, HEAD, load, problems

from medark.config.groups import Group, groups_of
from medark.scheduler.runner import backup_steps

SQLITE = """
[[systems.pacs.sources]]
type = "sqlite"
paths = ["/var/lib/orthanc/db/index"]
group = "pacs"
stop_command = "systemctl stop orthanc"
start_command = "systemctl start orthanc"
"""


def line_of(found: list[str], needle: str, text: str) -> str:
    """The configuration line a problem containing `needle` points at."""
    problem = next(p for p in found if needle in p)
    return text.splitlines()[int(problem.split(":")[1]) - 1]


def test_an_sqlite_index_and_its_files_form_a_group(tmp_path: Path) -> None:
    config = load(tmp_path, HEAD + SQLITE + FILES)
    sources = config.systems["pacs"].sources
    assert groups_of(sources) == [Group("pacs", 0, 1)]
    assert sources[0].stop_command == "systemctl stop orthanc"
    steps = backup_steps(config, "pacs", medark=["medark"])
    assert [s.source for s in steps] == ["group pacs"]
    assert steps[0].argv == [
        "medark", "--json", "--retry-lock", "30m", "group", "backup", "--name", "pacs",
        "--pacs", "orthanc", "--root", "/var/lib/orthanc/db", "--sqlite",
        "/var/lib/orthanc/db/index", "--stop-command", "systemctl stop orthanc",
        "--start-command", "systemctl start orthanc", "--tag", "plan=pacs", "--tag",
        "system=pacs"]
    assert "MEDARK_PG_DSN" not in steps[0].env
    without = load(tmp_path, HEAD + SQLITE.replace('stop_command = "systemctl stop orthanc"\n'
                                                   'start_command = "systemctl start orthanc"\n',
                                                   "") + FILES)
    step = backup_steps(without, "pacs", medark=["medark"])[0]
    assert "--stop-command" not in step.argv and "--sqlite" in step.argv


def test_sqlite_outside_a_group_is_refused_at_its_line(tmp_path: Path) -> None:
    text = HEAD + SQLITE.replace('group = "pacs"\n', "")
    found = problems(tmp_path, text)
    assert line_of(found, "only a consistency group's database", text).startswith("type")
    assert all(p.startswith(f"{tmp_path / 'medark.toml'}:") for p in found), found


def test_each_sqlite_mistake_is_named_with_its_line(tmp_path: Path) -> None:
    text = HEAD + SQLITE.replace('["/var/lib/orthanc/db/index"]', '["/a", "/b"]').replace(
        'start_command = "systemctl start orthanc"\n', "") + FILES.replace(
        '"orthanc"', '"dcm4chee"')
    found = problems(tmp_path, text)
    assert line_of(found, "one path: the index file", text).startswith("paths")
    assert line_of(found, "stop_command needs start_command", text).startswith("stop_command")
    assert line_of(found, "dcm4chee's index is not SQLite", text).startswith("pacs")
    text = HEAD + """
[[systems.pacs.sources]]
type = "postgres"
dsn = "host=db dbname=orthanc"
group = "pacs"
stop_command = "systemctl stop orthanc"
""" + FILES
    found = problems(tmp_path, text)
    assert line_of(found, "stop_command belongs to a sqlite source", text).startswith(
        "stop_command")
    found = problems(tmp_path, HEAD + SQLITE + FILES + SQLITE)
    assert any("one postgres source (has 0) or one sqlite source (has 2)" in p
               for p in found), found
