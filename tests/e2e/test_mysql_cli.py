"""MariaDB end to end: a throwaway server under a write load, hot backups streamed into
the repository while `medark mysql binlog-stream` archives the binary logs, and
point-in-time restores started as real servers and queried. Real programs, no mocks."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, TEST_KDF
from mysql_server import (
    Load,
    MariaServer,
    MariaSite,
    can_run_servers,
    free_port,
    have_mariadb_backup,
    make_base,
    sql,
    stop_pid,
    stop_stream,
)

pytestmark = [pytest.mark.skipif(can_run_servers() is not None,
                                 reason=str(can_run_servers())),
              pytest.mark.timeout(180)]


@dataclass
class Site(MariaSite):
    def restore(self, target: Path, *goal: str) -> tuple[int, dict[str, Any]]:
        port = free_port()
        result = self.medark("mysql", "restore", "--target-dir", str(target), *goal,
                             "--start", "--port", str(port), "--json", "--timeout", "120")
        doc = result.json()
        self.restored.append(int(doc["pid"]))
        return port, doc

    def caught_up(self) -> bool:
        """The archive holds the source's binlog up to its current position."""
        file, position = self.server.root_sql("SHOW MASTER STATUS").split("\t")[:2]
        status = self.medark("mysql", "status", "--json", check=False)
        if status.returncode != 0:
            return False
        doc = status.json()
        return bool(doc["newest_binlog"] == file and
                    doc["newest_binlog_position"] >= int(position))


@pytest.fixture
def site() -> Iterator[Site]:
    with _site(log_bin=True) as s:
        yield s


@pytest.fixture
def site_without_binlog() -> Iterator[Site]:
    with _site(log_bin=False) as s:
        yield s


@contextmanager
def _site(log_bin: bool) -> Iterator[Site]:
    base = make_base()
    server = MariaServer(base, log_bin=log_bin)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_PASSWORD=PASSWORD,
               MEDARK_CACHE_DIR=str(base / "cache"))
    s = Site(server, base / "repo", env)
    with s.running("CREATE DATABASE h; CREATE TABLE h.load (id INT AUTO_INCREMENT "
                   "PRIMARY KEY, note VARCHAR(64), at DATETIME(6) DEFAULT NOW(6))"):
        yield s


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _under_load(site: Site, *backup_args: str) -> tuple[datetime, str]:
    """Backup under load while streaming; a marker, then T, then more writes. Returns T
    and the source's final (count, max id, markers)."""
    stream = site.stream()
    load = Load(site.server)
    try:
        time.sleep(1.0)
        backup = site.medark("mysql", "backup", "--dsn", site.server.dsn, *backup_args,
                             "--json").json()
        src = backup["source"]
        assert src["kind"] == "mysql" and src["binlog_file"] and src["binlog_position"] > 0
        assert src["gtid"]
        time.sleep(0.5)
        site.server.root_sql("INSERT INTO h.load (note) VALUES ('marker')")
        time.sleep(1.1)
        target = datetime.now(UTC)
        time.sleep(1.1)
        site.server.root_sql("INSERT INTO h.load (note) VALUES ('after marker')")
        time.sleep(1.0)
    finally:
        load.stop()
    site.server.root_sql("FLUSH BINARY LOGS")  # a rotation: a complete file and a new one
    site.server.root_sql("INSERT INTO h.load (note) VALUES ('last')")
    expected = site.server.root_sql("SELECT COUNT(*), MAX(id), SUM(note LIKE '%marker') "
                                    "FROM h.load")
    try:
        _wait(site.caught_up, 30, "the stream to catch up")
    finally:
        summary = stop_stream(stream)
    assert summary["message_type"] == "binlog_stream" and summary["files"] >= 1
    return target, expected


def _check_restores(site: Site, target: datetime, expected: str) -> None:
    base = site.server.base
    cut = target.replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S")
    port, doc = site.restore(Path(f"{base}-pitr"), "--time", target.isoformat())
    assert doc["started"] is True
    q = lambda text: sql(text, port=port)  # noqa: E731  (as the backup user: grants kept)
    assert q("SELECT COUNT(*) FROM h.load WHERE note = 'marker'") == "1"
    assert q("SELECT COUNT(*) FROM h.load WHERE note = 'after marker'") == "0"
    assert q(f"SELECT COUNT(*) FROM h.load WHERE at > '{target:%Y-%m-%d %H:%M:%S.%f}'") == "0"
    # Every row from before T's whole second is there (binlog times have whole seconds).
    before = f"SELECT COUNT(*) FROM h.load WHERE at < '{cut}'"
    assert q(before) == site.server.root_sql(before)
    stop_pid(site.restored.pop())

    port, doc = site.restore(Path(f"{base}-latest"), "--latest")
    got = sql("SELECT COUNT(*), MAX(id), SUM(note LIKE '%marker') FROM h.load", port=port)
    assert got == expected
    stop_pid(site.restored.pop())


@pytest.mark.skipif(not have_mariadb_backup(), reason="mariadb-backup is not installed")
def test_physical_backup_under_load_pitr_and_latest(site: Site) -> None:
    target, expected = _under_load(site)
    status = site.medark("mysql", "status", "--json").json()
    assert status["backups"] == 1 and status["gaps"] == []
    assert status["newest_backup"]["method"] == "physical"
    assert status["rpo_seconds"] is not None and status["rpo_seconds"] < 60
    _check_restores(site, target, expected)


def test_logical_backup_under_load_pitr_and_latest(site: Site) -> None:
    target, expected = _under_load(site, "--logical")
    _check_restores(site, target, expected)


def test_stream_survives_a_server_restart(site: Site) -> None:
    """mariadb-binlog dies with the server; the stream restarts it (backoff), fetches the
    file being written again and archives on, without losing or duplicating events."""
    stream = site.stream()
    try:
        site.medark("mysql", "backup", "--dsn", site.server.dsn, "--logical")
        site.server.root_sql("INSERT INTO h.load (note) VALUES ('before restart')")
        time.sleep(1.0)
        site.server.stop()
        time.sleep(0.5)
        site.server.start()
        site.server.root_sql("INSERT INTO h.load (note) VALUES ('after restart')")
        expected = site.server.root_sql("SELECT COUNT(*), MAX(id) FROM h.load")
        _wait(site.caught_up, 40, "the stream to resume")
    finally:
        summary = stop_stream(stream)
    assert summary["restarts"] >= 1 and summary["files"] >= 1
    status = site.medark("mysql", "status", "--json").json()
    assert status["gaps"] == [] and status["windows"][0]["gap_after"] is None
    port, _doc = site.restore(Path(f"{site.server.base}-latest"), "--latest")
    assert sql("SELECT COUNT(*), MAX(id) FROM h.load", port=port) == expected


def test_bad_inputs_get_one_line_and_distinct_exit_codes(site: Site, tmp_path: Path) -> None:
    wrong = site.medark("mysql", "backup", "--host", "127.0.0.1", "--port", str(free_port()),
                        "--user", "medark", check=False)
    assert wrong.returncode == 20, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    denied = site.medark("mysql", "backup", "--dsn",
                         f"mysql://medark:wrong-pw@127.0.0.1:{site.server.port}", check=False)
    assert denied.returncode == 20, denied.stderr
    assert "wrong-pw" not in denied.stderr and "Hosp1tal" not in denied.stderr

    none_yet = site.medark("mysql", "restore", "--target-dir", str(tmp_path / "x"),
                           "--latest", check=False)
    assert none_yet.returncode == 1 and "no MariaDB/MySQL backup" in none_yet.stderr

    site.medark("mysql", "backup", "--dsn", site.server.dsn, "--logical")
    for when, words in (("2001-01-01T00:00:00Z", "before the oldest backup"),
                        ("2999-01-01T00:00:00Z", "after the newest archived binlog")):
        refused = site.medark("mysql", "restore", "--target-dir", str(tmp_path / "y"),
                              "--time", when, check=False)
        assert refused.returncode == 24, refused.stderr
        assert words in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "y").exists()  # nothing written for a refused target
    assert site.medark("check").returncode == 0


@pytest.mark.parametrize("method", ["physical", "logical"])
def test_a_backup_without_binary_logging_restores_as_it_is(site_without_binlog: Site,
                                                            method: str, tmp_path: Path
                                                            ) -> None:
    """Binary logging off: the backup says point-in-time restore is impossible, a restore
    that would replay refuses with one line naming --backup-only, --backup-only restores
    the backup as it is, and no output says None."""
    if method == "physical" and not have_mariadb_backup():
        pytest.skip("mariadb-backup is not installed")
    site = site_without_binlog
    assert site.server.root_sql("SELECT @@log_bin") == "0"
    site.server.root_sql("INSERT INTO h.load (note) VALUES ('a'), ('b'), ('c')")
    query = "SELECT COUNT(*), MAX(id), SUM(CRC32(note)) FROM h.load"
    expected = site.server.root_sql(query)
    method_args = ["--logical"] if method == "logical" else []
    backup = site.medark("mysql", "backup", "--dsn", site.server.dsn, *method_args)
    outputs = [backup.stdout, backup.stderr]
    warning = [ln for ln in backup.stderr.splitlines() if "binary logging is off" in ln]
    assert len(warning) == 1, backup.stderr
    assert "point-in-time restore" in warning[0] and "log_bin" in warning[0]
    assert f"{method} backup of server" in backup.stdout
    said = " ".join(backup.stdout.split())  # wrapped at 80 columns
    assert "with no binlog position (binary logging was off)" in said
    site.server.root_sql("INSERT INTO h.load (note) VALUES ('after the backup')")

    status = site.medark("mysql", "status")
    outputs += [status.stdout, status.stderr]
    assert "no binlog position (binary logging was off)" in " ".join(status.stdout.split())
    assert "--backup-only" in status.stdout

    for goal in (["--latest"], ["--time", datetime.now(UTC).isoformat()]):
        refused = site.medark("mysql", "restore", "--target-dir", str(tmp_path / "x"), *goal,
                              check=False)
        outputs += [refused.stdout, refused.stderr]
        assert refused.returncode == 23, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "binary logging off" in refused.stderr
        assert "--backup-only" in refused.stderr
        assert not (tmp_path / "x").exists()  # refused before anything is written

    port = free_port()
    target = Path(f"{site.server.base}-backup-only")
    restored = site.medark("mysql", "restore", "--target-dir", str(target), "--backup-only",
                           "--start", "--port", str(port), "--timeout", "120")
    pid = re.search(r"\(pid (\d+),", restored.stdout)
    assert pid is not None, restored.stdout
    site.restored.append(int(pid.group(1)))
    outputs += [restored.stdout, restored.stderr]
    assert f"restored {method} backup" in restored.stdout
    assert "as of the end of the backup (no binlog replayed)" in " ".join(
        restored.stdout.split())
    assert sql(query, port=port) == expected  # as the backup user: grants kept
    assert sql("SELECT COUNT(*) FROM h.load WHERE note = 'after the backup'",
               port=port) == "0"
    assert not any("None" in text for text in outputs), outputs
