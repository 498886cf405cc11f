"""A consistency group on MariaDB end to end (docs/pacs.md, "A group on MariaDB"): a
throwaway MariaDB with binary logging holds a PACS-like index (`images`: path, size), a
storage directory gets each image file BEFORE its row is committed (as a PACS writes),
and a loader keeps adding images while `medark group backup` runs, with `medark mysql
binlog-stream` archiving the binlogs. `forget` keeps the point's mysql backup although
a newer one would replace it, and the point alone is copied to another repository. Then
the server's data and the storage are destroyed, `medark group restore` from the copy
brings both back, and MariaDB started on the restored data directory holds exactly the
point's rows, each with its file. Real programs, no mocks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, TEST_KDF
from group_site import pacs_plan, site_head
from mysql_server import (
    BACKUP_PASSWORD,
    BACKUP_USER,
    MariaServer,
    MariaSite,
    can_run_servers,
    free_port,
    have_mariadb_backup,
    make_base,
    sql,
    stop_stream,
)

pytestmark = [pytest.mark.skipif(can_run_servers() is not None,
                                 reason=str(can_run_servers())),
              pytest.mark.skipif(not have_mariadb_backup(),
                                 reason="mariadb-backup is not installed"),
              pytest.mark.timeout(180)]

QUERY = "SELECT path, size FROM images"


@dataclass
class Site(MariaSite):
    storage: Path = field(kw_only=True)

    @property
    def dsn(self) -> str:
        return f"{self.server.dsn}/pacsdb"


class Pacs:
    """Images arriving as a PACS stores them: the file written (and synced), then its row
    committed, by one client session; numbered from 1 in commit order."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.count = 0
        self.proc = subprocess.Popen(
            ["mariadb", "--no-defaults", f"--socket={site.server.socket}", "--user=root",
             "--batch", "--skip-column-names", "--unbuffered", "--database=pacsdb"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, n: int = 1) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        for _ in range(n):
            self.count += 1
            rel = f"{self.count % 7:02d}/img-{self.count:05d}.dcm"
            path = self.site.storage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = os.urandom(200 + self.count % 300)
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self.proc.stdin.write(f"INSERT INTO images VALUES ('{rel}', {len(data)}); "
                                  f"SELECT {self.count};\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == str(self.count)  # committed

    def start(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self.add()
                time.sleep(0.005)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        status = self.proc.wait(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        assert status == 0


@pytest.fixture
def site() -> Iterator[Site]:
    base = make_base()
    server = MariaServer(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_PASSWORD=PASSWORD, MEDARK_FROM_PASSWORD=PASSWORD,
               HOME=str(base / "home"),
               MEDARK_CACHE_DIR=str(base / "cache"))
    s = Site(server, base / "repo", env, storage=base / "storage")
    s.storage.mkdir()
    with s.running("CREATE DATABASE pacsdb; CREATE TABLE pacsdb.images "
                   "(path VARCHAR(255), size BIGINT) ENGINE=InnoDB"):
        yield s


def test_group_backup_under_load_and_restore_of_the_pair(site: Site) -> None:
    pacs = Pacs(site)
    pacs.add(40)
    stream = site.stream()
    try:
        pacs.start()
        time.sleep(0.5)
        # as the daemon runs it (scheduler/runner.py _group_step): the DSN by environment
        done = site.medark("group", "backup", "--name", "pacs", "--pacs", "sql",
                           "--root", str(site.storage), "--index-query", QUERY,
                           "--mariadb", "--tag", "plan=pacs", "--tag", "system=pacs",
                           "--archive-timeout", "30", "--json",
                           env={"MEDARK_MYSQL_DSN": site.dsn})
        time.sleep(0.5)  # rows committed after the point
    finally:
        pacs.stop()
        stop_stream(stream)
    summary: dict[str, Any] = json.loads(done.stdout)
    db = summary["database"]
    assert db["kind"] == "mariadb" and db["base_backup"]
    assert db["archive_id"] == "1" and db["server_id"] == 1
    assert db["binlog_file"].startswith("binlog.") and db["binlog_position"] > 0
    counts = summary["counts"]
    at_point = counts["references"]
    assert 40 <= at_point < pacs.count, (at_point, pacs.count)
    assert counts["missing"] == 0 and counts["referenced"] == at_point
    point = summary["snapshot_id"]
    snaps = site.medark("snapshots", "--json").json()
    assert any(s["id"] == db["base_backup"] and "mysql" in s["tags"] for s in snaps)

    # a newer mysql backup: the policy would drop the point's, the point keeps it
    site.medark("mysql", "backup", "--dsn", site.server.dsn)
    forget = site.medark("forget", "--keep-last", "1", "--group-by", "host,paths")
    assert (f"snapshot {db['base_backup'][:8]} kept: the base backup of group point "
            f"{point[:8]} (group pacs, binlog {db['binlog_file']}:"
            f"{db['binlog_position']})") in forget.stdout, forget.stdout
    # the point alone copied offsite brings its backup, files snapshot and binlogs
    offsite = site.server.base / "offsite"
    site.medark("init", repo=offsite)
    copied = site.medark("copy", "--from-repo", str(site.repo), "--no-archives", point,
                         "--json", repo=offsite).json_lines()[-1]
    sent = copied["group_points"][0]
    assert sent["base_backup"] == db["base_backup"] and sent["problem"] is None
    assert sent["binlog"] == f"{db['binlog_file']}:{db['binlog_position']}"
    assert db["base_backup"] in sent["added"] and sent["wal_records"] >= 1

    # the plan's restore test: the pair restored into a sandbox, started, checked
    config = site.server.base / "medark.toml"
    password_file = site.server.base / "password"
    password_file.write_text(PASSWORD)
    config.write_text(site_head(site.repo, password_file) + pacs_plan(
        "", site.storage, "sql", files_extra=f'index_query = "{QUERY}"\n',
        database=f'type = "mariadb"\ndsn = "{site.dsn}"'))
    verified = site.medark("--json", "verify", "pacs", "--config", str(config), "--catalog",
                           f"sqlite:///{site.server.base / 'catalog.sqlite'}")
    step = json.loads(verified.stdout.splitlines()[-1])["steps"][0]
    assert step["restore"] == "group" and step["database"] == "mariadb", step
    assert step["binlog"] == f"{db['binlog_file']}:{db['binlog_position']}"
    assert step["check"]["rows_without_files"] == 0
    assert step["check"]["references"] == at_point

    # disaster: the database server's data and the PACS storage are gone
    site.server.stop()
    shutil.rmtree(site.server.data)
    shutil.rmtree(site.storage)

    base = site.server.base
    port = free_port()
    restored = site.medark("group", "restore", "--group", "pacs", "--target-dir",
                           str(base / "restored"), "--files-target", str(base / "files"),
                           "--start", "--port", str(port), "--timeout", "120", "--json",
                           repo=offsite).json()
    site.restored.append(int(restored["database"]["pid"]))
    assert restored["database"]["kind"] == "mariadb"
    assert restored["point"]["binlog"] == f"{db['binlog_file']}:{db['binlog_position']}"
    files_root = restored["files_root"]

    # exactly the rows of the point: images 1..N in commit order, N the point's count
    rows = sql("SELECT path FROM pacsdb.images", port=port).splitlines()
    assert len(rows) == at_point
    assert sorted(rows) == sorted(f"{i % 7:02d}/img-{i:05d}.dcm"
                                  for i in range(1, at_point + 1))
    restored_dsn = f"mysql://{BACKUP_USER}:{BACKUP_PASSWORD}@127.0.0.1:{port}/pacsdb"
    check = site.medark("group", "check", restored["snapshot_id"], "--dsn", restored_dsn,
                        "--files-root", files_root, "--index-query", QUERY, "--json",
                        repo=offsite).json()
    assert check["rows_without_files"] == [] and check["references"] == at_point
    assert len(check["files_without_rows"]) == check["files"] - at_point


def test_mysql_restore_to_a_position_inside_a_file(site: Site) -> None:
    """`mysql restore --position FILE:POS` replays the last file up to POS only: rows
    committed after it in the same file are not restored."""
    site.medark("mysql", "backup", "--dsn", site.server.dsn, "--json")
    stream = site.stream()
    try:
        site.server.root_sql("INSERT INTO pacsdb.images VALUES ('before', 1)")
        file, position = site.server.root_sql("SHOW MASTER STATUS").split("\t")[:2]
        site.server.root_sql("INSERT INTO pacsdb.images VALUES ('after', 2)")
        site.server.root_sql("FLUSH BINARY LOGS")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = site.medark("mysql", "status", "--json").json()
            if status["binlog_files"] >= 2:
                break
            time.sleep(0.3)
    finally:
        stop_stream(stream)
    nodb = site.medark("group", "backup", "--name", "pacs", "--pacs", "sql", "--root",
                       str(site.storage), "--index-query", QUERY, "--mariadb", "--dsn",
                       site.server.dsn, check=False)
    assert nodb.returncode != 0 and len(nodb.stderr.strip().splitlines()) == 1, nodb.stderr
    assert "name the index's database in the DSN" in nodb.stderr
    bad = site.medark("mysql", "restore", "--target-dir", str(site.server.base / "bad"),
                      "--position", "binlog.000001", check=False)
    assert bad.returncode == 2 and "FILE:POS" in bad.stderr
    port = free_port()
    doc = site.medark("mysql", "restore", "--target-dir", str(site.server.base / "at"),
                      "--position", f"{file}:{position}", "--start", "--port", str(port),
                      "--timeout", "120", "--json").json()
    site.restored.append(int(doc["pid"]))
    assert doc["recovery_target"] == f"binlog {file}:{position}"
    assert sql("SELECT path FROM pacsdb.images", port=port) == "before"
