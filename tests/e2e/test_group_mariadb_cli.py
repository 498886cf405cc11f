"""A consistency group on MariaDB end to end (docs/pacs.md, "A group on MariaDB"): a
throwaway MariaDB with binary logging holds a PACS-like index (`images`: path, size), a
storage directory gets each image file BEFORE its row is committed (as a PACS writes),
and a loader keeps adding images while `medark group backup` runs, with `medark mysql
binlog-stream` archiving the binlogs. `forget` keeps the point's mysql backup although
a newer one would replace it, and the point alone is copied to another repository. Then
the server's data and the storage are destroyed, `medark group restore` from the copy
brings both back, and MariaDB started on the restored data directory holds exactly the
point's rows, each with its file. A dcm4chee-arc 5 index on MariaDB (its own `instance`
and `location` tables, DDL from create-mysql.sql) with objects on two storages and an
unmapped one goes through the same: refused without its storage map before any wait,
backed up with it, the plan's restore test, destroyed, restored with every OK row's file
byte-identical and the unmapped storage reported not covered. Real programs, no mocks."""

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
from dcm4chee_objects import Stored, assert_restored, write_object
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
    assert step["check"]["not_covered"] == 0 and step["check"]["not_covered_by_storage"] == {}

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


DCM4CHEE_SCHEMA = [
    # dcm4chee-arc-light, dcm4chee-arc-entity/src/main/resources/sql/mysql/create-mysql.sql:
    # the two tables as created there, the location indexes, instance's unique keys and
    # the location -> instance key (instance's own keys, to series and dicomattrs, and
    # location's to uidmap left out)
    "CREATE DATABASE dcm4chee",
    "create table dcm4chee.instance (pk bigint not null auto_increment, availability "
    "tinyint not null, sr_complete varchar(255) not null, content_date varchar(255) not "
    "null, content_time varchar(255) not null, created_time datetime(6) not null, "
    "ext_retrieve_aet varchar(255) not null, inst_custom1 varchar(255) not null, "
    "inst_custom2 varchar(255) not null, inst_custom3 varchar(255) not null, inst_no "
    "integer, num_frames integer, retrieve_aets varchar(255), sop_cuid varchar(255) not "
    "null, sop_iuid varchar(255) not null, updated_time datetime(6) not null, sr_verified "
    "varchar(255) not null, version bigint, dicomattrs_fk bigint not null, srcode_fk "
    "bigint, series_fk bigint not null, primary key (pk)) engine=InnoDB",
    "create table dcm4chee.location (pk bigint not null auto_increment, created_time "
    "datetime(6) not null, digest varchar(255), multi_ref integer, object_type tinyint not "
    "null, object_size bigint not null, status tinyint not null, storage_id varchar(255) "
    "not null, storage_path varchar(255) not null, tsuid varchar(255), uidmap_fk bigint, "
    "instance_fk bigint, primary key (pk)) engine=InnoDB",
    "create index IDXr3oh859i9osv3aluoc8dcx9wk on dcm4chee.location (storage_id, status)",
    "create index IDXi1lnahmehau3r3j9pdyxg3p3y on dcm4chee.location (multi_ref)",
    "alter table dcm4chee.instance add constraint UK247lgirehl8i2vuanyfjnuyjb unique "
    "(series_fk, sop_iuid)",
    "alter table dcm4chee.instance add constraint UK_jxfu47kwjk3kkkyrwewjw8a4n unique "
    "(dicomattrs_fk)",
    "alter table dcm4chee.location add constraint FKpp9xjy946uspo3piayc6ofels foreign key "
    "(instance_fk) references dcm4chee.instance (pk)",
]
NEARLINE = 2
"""Objects on the `nearline` storage the group does not map."""


def store_dcm4chee(site: Site, stored: dict[str, Stored], storage: str, directory: Path
                   ) -> None:
    """One instance as dcm4chee stores it: the file synced on its storage, then its
    instance and location rows committed in one transaction."""
    n = len(stored) + 1
    written = write_object(directory, n)
    i = written.instance
    site.server.root_sql(
        "START TRANSACTION; INSERT INTO dcm4chee.instance (availability, sr_complete, "
        "content_date, content_time, created_time, ext_retrieve_aet, inst_custom1, "
        "inst_custom2, inst_custom3, inst_no, sop_cuid, sop_iuid, updated_time, "
        f"sr_verified, dicomattrs_fk, series_fk) VALUES (0, '*', '*', '*', NOW(6), '*', "
        f"'*', '*', '*', 1, '{i.sop_class}', '{i.sop_uid}', NOW(6), '*', {n}, {n}); "
        "INSERT INTO dcm4chee.location (created_time, digest, object_type, object_size, "
        "status, storage_id, storage_path, tsuid, instance_fk) VALUES (NOW(6), "
        f"'{written.md5}', 0, {len(written.data)}, 0, '{storage}', '{written.rel}', "
        f"'{i.transfer_syntax}', LAST_INSERT_ID()); COMMIT")
    stored[i.sop_uid] = written.stored(storage)


def test_dcm4chee_on_mariadb_with_an_unmapped_storage(site: Site) -> None:
    site.server.root_sql("; ".join(DCM4CHEE_SCHEMA))
    base = site.server.base
    root, nearline = site.storage, base / "nearline"
    dsn = f"{site.server.dsn}/dcm4chee"
    stored: dict[str, Stored] = {}
    for k in range(6):
        storage = ("fs1", "fs2")[k % 2]
        store_dcm4chee(site, stored, storage, root / storage)
    for _ in range(NEARLINE):
        store_dcm4chee(site, stored, "nearline", nearline)
    # an object of a deleted instance (TO_DELETE), its file already purged: not a
    # reference (status 0 only)
    site.server.root_sql("INSERT INTO dcm4chee.location (created_time, object_type, "
                         "object_size, status, storage_id, storage_path) VALUES (NOW(6), "
                         "0, 10, 1, 'fs1', '2026/01/01/00000000/00000000/DELETED0')")

    # several storages without a map: refused in one line once the point is read, before
    # waiting for its binlog (no stream runs: a wait would last the whole timeout)
    t0 = time.monotonic()
    refused = site.medark("group", "backup", "--name", "pacs", "--pacs", "dcm4chee",
                          "--root", str(root), "--mariadb", "--dsn", dsn,
                          "--archive-timeout", "120", check=False)
    assert refused.returncode == 2, refused.stderr
    assert time.monotonic() - t0 < 60
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "the dcm4chee index names objects on 3 storages (fs1 (3), fs2 (3), " \
        f"nearline ({NEARLINE}))" in refused.stderr
    assert 'storages = { fs1 = "DIR", fs2 = "DIR" }' in refused.stderr

    config = base / "medark.toml"
    password_file = base / "password"
    password_file.write_text(PASSWORD)
    config.write_text(site_head(site.repo, password_file) + pacs_plan(
        "", root, "dcm4chee", database=f'type = "mariadb"\ndsn = "{dsn}"',
        files_extra=f'storages = {{ fs1 = "{root}/fs1", fs2 = "{root}/fs2" }}\n'))
    stream = site.stream()
    try:
        doc = site.medark("--json", "group", "backup", "pacs", "--config", str(config),
                          "--archive-timeout", "30").json()
    finally:
        stop_stream(stream)
    counts = doc["counts"]
    assert counts["references"] == counts["referenced"] == 6, doc
    assert counts["missing"] == 0 and counts["outside"] == 0, doc
    assert doc["not_covered"] == {"nearline": NEARLINE}
    assert counts["not_covered"] == NEARLINE
    assert doc["storages"] == {"fs1": "fs1", "fs2": "fs2"}
    assert doc["database"]["kind"] == "mariadb"

    # the plan's restore test: its evidence carries the objects the point does not cover
    verified = site.medark("--json", "verify", "pacs", "--config", str(config), "--catalog",
                           f"sqlite:///{base / 'catalog.sqlite'}")
    step = json.loads(verified.stdout.splitlines()[-1])["steps"][0]
    assert step["restore"] == "group" and step["database"] == "mariadb", step
    assert step["check"]["rows_without_files"] == 0 and step["check"]["references"] == 6
    assert step["check"]["not_covered"] == NEARLINE
    assert step["check"]["not_covered_by_storage"] == {"nearline": NEARLINE}

    # disaster: the server's data and the storage root gone
    site.server.stop()
    shutil.rmtree(site.server.data)
    shutil.rmtree(root)
    port = free_port()
    restored = site.medark("group", "restore", doc["snapshot_id"], "--target-dir",
                           str(base / "restored"), "--files-target", str(base / "files"),
                           "--start", "--port", str(port), "--timeout", "120",
                           "--json").json()
    site.restored.append(int(restored["database"]["pid"]))
    files_root = Path(restored["files_root"])
    rows = [line.split("\t") for line in sql(
        "SELECT i.sop_iuid, l.storage_id, l.storage_path, l.object_size FROM "
        "dcm4chee.location l JOIN dcm4chee.instance i ON i.pk = l.instance_fk WHERE "
        "l.status = 0 AND l.object_type = 0", port=port).splitlines()]
    assert len(rows) == 6 + NEARLINE
    assert assert_restored([(sop, storage, path, int(size)) for sop, storage, path, size
                            in rows], stored, files_root, "nearline") == NEARLINE

    restored_dsn = f"mysql://{BACKUP_USER}:{BACKUP_PASSWORD}@127.0.0.1:{port}/dcm4chee"
    check = site.medark("--json", "group", "check", doc["snapshot_id"], "--dsn",
                        restored_dsn, "--files-root", str(files_root)).json()
    assert check["rows_without_files"] == [] and check["references"] == 6
    assert check["not_covered"] == {"nearline": NEARLINE}
    prose = site.medark("group", "check", doc["snapshot_id"], "--dsn", restored_dsn,
                        "--files-root", str(files_root))
    assert f"{NEARLINE} index objects on storages this group does not cover" in \
        " ".join(prose.stdout.split())
