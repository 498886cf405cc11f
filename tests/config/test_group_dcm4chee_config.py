"""A dcm4chee group's `storages` (docs/pacs.md, "dcm4chee"): each storage ID mapped to a
directory inside the files source's path; `config check`'s refusals name their line."""

from __future__ import annotations

from pathlib import Path

from pacs_config import HEAD, load, problems

DB = """
[[systems.pacs.sources]]
type = "postgres"
dsn = "host=db dbname=pacsdb"
group = "pacs"
"""

FILES = """
[[systems.pacs.sources]]
type = "files"
paths = ["/storage"]
group = "pacs"
pacs = "dcm4chee"
"""


def line_of(found: list[str], text: str, needle: str) -> str:
    """The line of `text` the problem holding `needle` names."""
    problem = next(p for p in found if needle in p)
    return text.splitlines()[int(problem.split(":")[1]) - 1]


def test_storages_map_each_id_to_a_directory_inside_the_path(tmp_path: Path) -> None:
    config = load(tmp_path, HEAD + DB + FILES
                  + 'storages = { fs1 = "/storage/fs1", fs2 = "/storage/fs2" }\n')
    assert config.systems["pacs"].sources[1].storages == {"fs1": "/storage/fs1",
                                                          "fs2": "/storage/fs2"}
    assert load(tmp_path, HEAD + DB + FILES).systems["pacs"].sources[1].storages is None


def test_a_storage_outside_the_path_or_relative_is_refused_on_its_line(tmp_path: Path
                                                                     ) -> None:
    text = (HEAD + DB + FILES
            + 'storages = { fs1 = "/storage/fs1", fs2 = "/mnt/fs2", fs3 = "fs3" }\n')
    found = problems(tmp_path, text)
    assert any("storage 'fs2': /mnt/fs2 is not inside /storage" in p for p in found), found
    assert any("storage 'fs3' needs an absolute directory" in p for p in found), found
    assert not any("'fs1'" in p for p in found), found
    assert line_of(found, text, "'fs2'").startswith("storages")
    assert len(found) == 2


def test_storages_only_with_dcm4chee_and_never_empty(tmp_path: Path) -> None:
    text = HEAD + DB + FILES.replace('"dcm4chee"', '"orthanc"') \
        + 'storages = { fs1 = "/storage/fs1" }\n'
    found = problems(tmp_path, text)
    assert any('storages goes with pacs = "dcm4chee"' in p for p in found), found
    assert line_of(found, text, "storages goes with").startswith("storages")
    found = problems(tmp_path, HEAD + DB + FILES + "storages = {}\n")
    assert any("storages is empty" in p for p in found), found
