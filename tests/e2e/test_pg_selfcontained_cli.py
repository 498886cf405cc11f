"""PostgreSQL with no WAL archive at all (archive_mode = off, no wal-stream): `pg backup`
streams the WAL its base backup needs itself, so the backup restores on its own after
the server is gone; and when that WAL cannot be streamed it fails at once, saying why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, TEST_KDF, Result
from pg_server import RepoSite, as_pg, can_run_servers, free_port, repo_site

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


@dataclass
class Site(RepoSite):
    def medark_as_pg(self, *args: str) -> Result:
        """As the postgres OS user, which owns the repository (as in production)."""
        argv = [*self.medark.split(), "--repo", str(self.repo), "--password-file",
                str(self.password_file), *args]
        done = as_pg(argv, env=self.env, timeout=600, cwd=str(self.server.base))
        return Result(done.returncode, done.stdout, done.stderr)

    def medark_as_root(self, *args: str) -> Result:
        done = subprocess.run([MEDARK, "--repo", str(self.repo), *args],
                              env=dict(self.env, MEDARK_PASSWORD=PASSWORD),
                              capture_output=True, text=True, check=False, timeout=900)
        return Result(done.returncode, done.stdout, done.stderr)


def _site(settings: dict[str, str]) -> Iterator[Site]:
    with repo_site(PASSWORD, TEST_KDF, archive=False, settings=settings) as site:
        yield Site(**site.parts())


@pytest.fixture
def site() -> Iterator[Site]:
    yield from _site({})


@pytest.fixture
def one_sender_site() -> Iterator[Site]:
    yield from _site({"max_wal_senders": "1"})


def test_backup_without_an_archive_restores_on_its_own(site: Site) -> None:
    sql = site.server.sql
    sql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS drug "
        "FROM generate_series(1, 20000) g")
    expected = sql("SELECT count(*), sum(id) FROM orders")

    backup = site.medark_as_pg("pg", "backup", "--dsn", site.server.dsn)
    assert backup.returncode == 0, backup.stderr
    # one note, wrapped at 80 columns: its later lines are indented
    notes = [" ".join(n.split()) for n in re.findall(r"^note: .*(?:\n {4}.*)*", backup.stdout,
                                                      re.M)]
    assert len(notes) == 1 and "archive_mode is off" in notes[0], backup.stdout
    assert "point-in-time recovery past it needs `medark pg wal-stream`" in notes[0]
    assert "Traceback" not in backup.stderr
    # The temporary slot that held the WAL went with the backup's session.
    assert sql("SELECT count(*) FROM pg_replication_slots") == "0"

    status = site.medark_as_root("pg", "status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["newest_backup"]["snapshot_id"] and doc["wal_segments"] >= 1
    snaps = json.loads(site.medark_as_root("snapshots", "--json").stdout)
    assert [s["source"]["wal"] for s in snaps] == ["captured"]

    site.server.stop()
    shutil.rmtree(site.server.data)  # the server is gone: only the repository is left

    target = Path(str(site.server.base) + "-restored")
    port = free_port()
    restore = site.medark_as_root(
        "pg", "restore", "--target-dir", str(target), "--backup-only", "--start",
        "--port", str(port), "--archive-mode-off", "--medark-command", site.medark,
        "--password-file", str(site.password_file), "--timeout", "300")
    try:
        assert restore.returncode == 0, restore.stderr
        assert sql("SELECT count(*), sum(id) FROM orders", port=port) == expected
        assert sql("SELECT pg_is_in_recovery()", port=port) == "f"
    finally:
        site.server.stop(target)


def test_backup_fails_at_once_when_its_wal_cannot_be_streamed(
        one_sender_site: Site) -> None:
    """One WAL sender: the backup's own WAL receiver takes it, so the base backup cannot
    start. One line that says why, no snapshot, no slot left behind (before, the backup
    ran and then waited a minute for WAL that nothing archives)."""
    site = one_sender_site
    backup = site.medark_as_pg("pg", "backup", "--dsn", site.server.dsn)
    assert backup.returncode == 1, backup.stdout + backup.stderr
    lines = backup.stderr.strip().splitlines()
    assert len(lines) == 1, backup.stderr
    assert "max_wal_senders" in lines[0] and "two free WAL senders" in lines[0], lines[0]
    assert site.server.sql("SELECT count(*) FROM pg_replication_slots") == "0"
    assert site.server.sql("SELECT count(*) FROM pg_stat_replication") == "0"
    snaps = site.medark_as_root("snapshots", "--json")
    assert json.loads(snaps.stdout) == [], "no snapshot for a backup without its WAL"
