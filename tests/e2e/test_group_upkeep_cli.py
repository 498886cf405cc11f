"""A consistency group's upkeep end to end: retention and the plan's restore test.

A PACS-shaped pair without Orthanc (pacs = "sql": an `images(path, size)` table in a
throwaway archiving cluster, files under a storage root):
- `forget` with a policy that would drop the first point's base backup, files snapshot
  and the WAL after it keeps them, and `group restore` of that point still runs through
  to a started database on its LSN, with its files;
- `medark verify PLAN` (the daemon's restore test) restores the plan's newest point as a
  pair, checks it (index rows without files: 0) and records the pair's RTO and counts; a
  point whose index names a file that was never backed up fails it, and nothing is left
  running."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, TEST_KDF, Result, nothing_left_in
from group_site import GroupSite, pacs_plan
from pg_server import can_run_servers, free_port, repo_site
from plan_site import SITE

REASON = can_run_servers()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=str(REASON)),
              pytest.mark.usefixtures("private_tmp")]
QUERY = "SELECT path, size FROM images"

RESTORE_TEST = ('restore_test = { schedule = "0 3 * * 0", '
                'sql = ["SELECT count(*) >= 2 FROM images"] }\n')


@dataclass
class World(GroupSite):
    storage: Path

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.server.port} user=postgres dbname=pacs"

    def store(self, name: str, data: bytes) -> None:
        """A file in the storage, then its row (a PACS writes before it commits)."""
        path = self.storage / name[:2] / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        self.server.sql(f"INSERT INTO images VALUES ('{name[:2]}/{name}', {len(data)})",
                        db="pacs")

    def group_backup(self, *extra: str) -> Result:
        return self.as_postgres(
            "--json", "group", "backup", "--name", "pacs", "--pacs", "sql", "--root",
            str(self.storage), "--index-query", QUERY, "--dsn", self.dsn, "--tag",
            "plan=pacs", *extra)

    def verify(self) -> Result:
        env = {k: v for k, v in self.env.items()}
        env["TMPDIR"] = os.environ["TMPDIR"]
        done = subprocess.run([MEDARK, "--json", "verify", "pacs", "--config",
                               str(self.config)], env=env, capture_output=True, text=True,
                              check=False, timeout=900)
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with repo_site(PASSWORD, TEST_KDF) as site:
        storage = site.base / "storage"
        storage.mkdir()
        site.server.sql("CREATE DATABASE pacs")
        site.server.sql("CREATE TABLE images (path text PRIMARY KEY, size bigint); "
                        "CREATE TABLE marks (n int)", db="pacs")
        config = site.base / "medark.toml"
        config.write_text(SITE.format(
            state=site.base / "state", repo=site.repo, password_file=site.password_file)
            + pacs_plan(f"host=127.0.0.1 port={site.server.port} user=postgres dbname=pacs",
                        storage, "sql", files_extra=f'index_query = "{QUERY}"',
                        plan_extra=RESTORE_TEST), encoding="utf-8")
        yield World(**site.parts(), config=config, storage=storage)


def test_forget_keeps_what_a_kept_point_restores_from(world: World) -> None:
    world.store("aa-first", b"first image")
    world.server.sql("INSERT INTO marks VALUES (1)", db="pacs")
    first = world.group_backup()
    assert first.returncode == 0, first.stderr
    p1 = first.json()
    b1 = p1["database"]["base_backup"]
    assert b1, "the first point took a base backup"
    world.store("bb-second", b"second image")
    world.server.sql("INSERT INTO marks VALUES (2)", db="pacs")
    second = world.group_backup("--base-backup")
    assert second.returncode == 0, second.stderr
    p2 = second.json()
    assert p2["database"]["base_backup"] != b1

    # per host and paths, keep-last 1 drops the first base backup and files snapshot
    # (and with them the WAL from the first backup to the second); the points stay
    done = world.as_root("--json", "forget", "--keep-last", "1", "--keep-tag", "group")
    assert done.returncode == 0, done.stderr
    docs = done.json_lines()
    points = next(d for d in docs if isinstance(d, dict)
                  and d.get("message_type") == "group_points")
    assert {k["id"] for k in points["kept"]} == {b1, p1["files_snapshot"]}
    assert {p["id"]: p["base_backup"] for p in points["points"]} == {
        p1["snapshot_id"]: b1, p2["snapshot_id"]: p2["database"]["base_backup"]}
    # (WAL from before the first base backup may go: the restore below needs none of it)

    data_dir, files = world.base / "restored-db", world.base / "restored-files"
    port = free_port()
    restored = world.as_root(
        "--json", "group", "restore", p1["snapshot_id"], "--target-dir", str(data_dir),
        "--files-target", str(files), "--start", "--port", str(port), "--archive-mode-off",
        "--medark-command", world.medark, "--password-file", str(world.password_file),
        "--timeout", "300")
    assert restored.returncode == 0, restored.stderr
    doc = restored.json()
    try:
        assert doc["database"]["backup"]["snapshot_id"] == b1
        assert doc["database"]["recovery_target"] == p1["database"]["lsn"]
        assert doc["database"]["started"] is True
        assert world.server.sql("SELECT string_agg(n::text, ',') FROM marks", port=port,
                                db="pacs") == "1"
        assert world.server.sql("SELECT path FROM images", port=port, db="pacs") \
            == "aa/aa-first"
        root = Path(doc["files_root"])
        assert (root / "aa" / "aa-first").read_bytes() == b"first image"
    finally:
        world.server.stop(data_dir)

    # once the policy drops the first point, its base backup goes too
    dropped = world.as_root("--json", "forget", "--keep-last", "1")
    assert dropped.returncode == 0, dropped.stderr
    points = next(d for d in dropped.json_lines() if isinstance(d, dict)
                  and d.get("message_type") == "group_points")
    assert points["kept"] == [] and [p["id"] for p in points["points"]] == [
        p2["snapshot_id"]]
    listed = world.as_root("--json", "snapshots")
    assert b1 not in {s["id"] for s in listed.json()}


def test_the_plans_restore_test_restores_and_checks_the_group_as_a_pair(
        world: World) -> None:
    world.store("cc-third", b"third image")
    taken = world.group_backup()
    assert taken.returncode == 0, taken.stderr
    point = taken.json()

    done = world.verify()
    assert done.returncode == 0, done.stderr
    doc = done.json()
    assert doc["status"] == "succeeded", doc
    (step,) = doc["steps"]
    assert step["restore"] == "group" and step["group"] == "pacs"
    assert step["snapshot"] == step["point"] == point["snapshot_id"]
    assert step["lsn"] == step["recovery_target"] == point["database"]["lsn"]
    assert step["check"] == {"references": 3, "files": 3, "rows_without_files": 0,
                             "files_without_rows": 0, "not_covered": 0,
                             "not_covered_by_storage": {}}
    assert step["kind"] == "postgres" and step["amcheck"] == "passed"
    assert step["queries"] == 1 and step["files"] == 3
    assert 0 < step["ready_seconds"] <= step["rto_seconds"] <= doc["rto_seconds"]
    nothing_left_in(Path(os.environ["TMPDIR"]))

    # a row whose file never reached the repository: the point is saved (exit 35) and
    # its restored pair fails the restore test
    world.store("dd-lost", b"never backed up")
    (world.storage / "dd" / "dd-lost").unlink()
    incomplete = world.group_backup()
    assert incomplete.returncode == 35, incomplete.stderr
    failed = world.verify()
    assert failed.returncode == 1
    assert ("group pacs: the restored index names 1 file(s) the restored files lack "
            "(first: dd/dd-lost)") in failed.stderr
    assert failed.json()["status"] == "failed"
    nothing_left_in(Path(os.environ["TMPDIR"]))
