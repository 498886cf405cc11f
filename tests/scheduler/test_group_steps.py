"""The daemon's backup of a plan whose system holds a consistency group: one `group
backup` step for the group's two sources (database point first), the other sources as
before (scheduler/runner.py, docs/pacs.md)."""

from __future__ import annotations

from pathlib import Path

from pacs_config import HEAD, load

from medark.scheduler.runner import backup_steps

CONFIG = HEAD + """
[[systems.pacs.sources]]
type = "files"
paths = ["/etc/orthanc"]

[[systems.pacs.sources]]
type = "files"
paths = ["/var/lib/pacs"]
group = "images"
pacs = "sql"
index_query = "SELECT path FROM files"

[[systems.pacs.sources]]
type = "postgres"
dsn = "host=db dbname=pacs"
group = "images"
"""


def test_a_group_is_one_step_and_the_other_sources_stay(tmp_path: Path) -> None:
    steps = backup_steps(load(tmp_path, CONFIG), "pacs", medark=["medark"])
    assert [s.source for s in steps] == ["files /etc/orthanc", "group images"]
    group = steps[1]
    assert group.argv == ["medark", "--json", "--retry-lock", "30m", "group", "backup",
                          "--name", "images", "--pacs", "sql", "--root", "/var/lib/pacs",
                          "--index-query", "SELECT path FROM files", "--tag", "plan=pacs", "--tag",
                          "system=pacs"]
    assert group.env["MEDARK_PG_DSN"] == "host=db dbname=pacs"
    assert group.env["MEDARK_REPO"] == "/backup"


DCM4CHEE = HEAD + """
[[systems.pacs.sources]]
type = "files"
paths = ["/storage"]
group = "images"
pacs = "dcm4chee"
storages = { fs2 = "/storage/fs2", fs1 = "/storage/fs1" }

[[systems.pacs.sources]]
type = "postgres"
dsn = "host=db dbname=pacsdb"
group = "images"
"""


def test_a_dcm4chee_group_passes_its_storages(tmp_path: Path) -> None:
    """The daemon's step carries the storage map, so a several-storage archive is not
    refused for want of one."""
    (step,) = backup_steps(load(tmp_path, DCM4CHEE), "pacs", medark=["medark"])
    argv = step.argv
    assert argv[argv.index("--root"):argv.index("--tag")] == [
        "--root", "/storage", "--storage", "fs1=/storage/fs1", "--storage",
        "fs2=/storage/fs2"]
