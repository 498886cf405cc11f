"""A dcm4chee-arc 5 consistency group end to end (docs/pacs.md, "dcm4chee"): a throwaway
archiving PostgreSQL cluster holds dcm4chee's own `instance` and `location` tables (their
DDL from dcm4chee-arc-light's create-psql.sql), and its objects lie on two filesystem
storages, fs1 and fs2, under one storage root, at dcm4chee's default storage path
(`{now,date,yyyy/MM/dd}/{0020000D,hash}/{0020000E,hash}/{00080018,hash}`), plus a few on
a `nearline` storage the group does not map. The files are real DICOM (pydicom), each
written and synced before its rows commit, as dcm4chee stores; a loader keeps storing
during `medark group backup`. Then the storage root and the cluster are destroyed,
`medark group restore` brings both back, and every OK row of the restored index has its
file, byte-identical; `group check` finds no row without its file; the nearline objects
are reported as not covered, never as missing. Real programs, no mocks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PASSWORD, TEST_KDF
from dcm4chee_objects import Stored, assert_restored, write_object
from group_site import GroupSite, pacs_plan, site_head
from pg_server import can_run_servers, free_port, repo_site

pytestmark = [pytest.mark.skipif(can_run_servers() is not None,
                                 reason=str(can_run_servers())),
              pytest.mark.timeout(240)]

SCHEMA = [
    # dcm4chee-arc-light, dcm4chee-arc-entity/src/main/resources/sql/psql/create-psql.sql:
    # the two tables as created there, their sequences, the location indexes and the
    # location -> instance key (instance's own keys, to series and dicomattrs, left out)
    "create sequence instance_pk_seq start with 1 increment by 1",
    "create sequence location_pk_seq start with 1 increment by 1",
    "create table instance (pk bigint not null, availability smallint not null check "
    "(availability between 0 and 3), sr_complete varchar(255) not null, content_date "
    "varchar(255) not null, content_time varchar(255) not null, created_time timestamp(6) "
    "not null, ext_retrieve_aet varchar(255) not null, inst_custom1 varchar(255) not null, "
    "inst_custom2 varchar(255) not null, inst_custom3 varchar(255) not null, inst_no "
    "integer, num_frames integer, retrieve_aets varchar(255), sop_cuid varchar(255) not "
    "null, sop_iuid varchar(255) not null, updated_time timestamp(6) not null, sr_verified "
    "varchar(255) not null, version bigint, dicomattrs_fk bigint not null unique, "
    "srcode_fk bigint, series_fk bigint not null, primary key (pk), unique (series_fk, "
    "sop_iuid))",
    "create table location (pk bigint not null, created_time timestamp(6) not null, digest "
    "varchar(255), multi_ref integer, object_type smallint not null check (object_type "
    "between 0 and 1), object_size bigint not null, status smallint not null check (status "
    "between 0 and 17), storage_id varchar(255) not null, storage_path varchar(255) not "
    "null, tsuid varchar(255), uidmap_fk bigint, instance_fk bigint, primary key (pk))",
    "create index IDXr3oh859i9osv3aluoc8dcx9wk on location (storage_id, status)",
    "create index IDXi1lnahmehau3r3j9pdyxg3p3y on location (multi_ref)",
    "alter table if exists location add constraint FKpp9xjy946uspo3piayc6ofels foreign "
    "key (instance_fk) references instance",
]
MAPPED = ("fs1", "fs2")
NEARLINE = 3
"""Objects on the unmapped `nearline` storage (stored before the point, none after)."""


@dataclass
class World(GroupSite):
    root: Path
    """The files source's path: fs1 and fs2 below it."""
    nearline: Path
    """The nearline storage's directory, outside the root (Medark does not back it up)."""
    stored: dict[str, Stored] = field(default_factory=dict)
    """SOP Instance UID -> its object, for every instance committed."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    n: int = 0

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.server.port} user=postgres dbname=dcm4chee"

    def storage_dir(self, storage: str) -> Path:
        return self.nearline if storage == "nearline" else self.root / storage

    def store(self, conn: psycopg.Connection[Any], storage: str) -> str:
        """One instance as dcm4chee stores it: the file written and synced on its
        storage, then its instance and location rows committed together."""
        self.n += 1
        written = write_object(self.storage_dir(storage), self.n)
        instance = written.instance
        with conn.transaction():
            pk = conn.execute(
                "INSERT INTO instance (pk, availability, sr_complete, content_date, "
                "content_time, created_time, ext_retrieve_aet, inst_custom1, inst_custom2, "
                "inst_custom3, inst_no, sop_cuid, sop_iuid, updated_time, sr_verified, "
                "dicomattrs_fk, series_fk) VALUES (nextval('instance_pk_seq'), 0, '*', "
                "'*', '*', now(), '*', '*', '*', '*', 1, %s, %s, now(), '*', "
                "currval('instance_pk_seq'), %s) RETURNING pk",
                (instance.sop_class, instance.sop_uid, 5000 + self.n)).fetchone()
            assert pk is not None
            conn.execute(
                "INSERT INTO location (pk, created_time, digest, object_type, object_size, "
                "status, storage_id, storage_path, tsuid, instance_fk) VALUES "
                "(nextval('location_pk_seq'), now(), %s, 0, %s, 0, %s, %s, %s, %s)",
                (written.md5, len(written.data), storage, written.rel,
                 instance.transfer_syntax, pk[0]))
        with self.lock:
            self.stored[instance.sop_uid] = written.stored(storage)
        return instance.sop_uid


@pytest.fixture
def world() -> Iterator[World]:
    with repo_site(PASSWORD, TEST_KDF) as site:
        site.server.sql("CREATE DATABASE dcm4chee")
        root, nearline = site.base / "storage", site.base / "nearline"
        for storage in (root / "fs1", root / "fs2", nearline):
            storage.mkdir(parents=True)
        with psycopg.connect(f"host=127.0.0.1 port={site.server.port} user=postgres "
                             "dbname=dcm4chee", autocommit=True) as conn:
            for statement in SCHEMA:
                conn.execute(statement)  # type: ignore[arg-type]
        config = site.base / "medark.toml"
        config.write_text(site_head(site.repo) + pacs_plan(
            f"host=127.0.0.1 port={site.server.port} user=postgres dbname=dcm4chee", root,
            "dcm4chee", files_extra=f'storages = {{ fs1 = "{root}/fs1", fs2 = "{root}/fs2" '
                                    "}\n"))
        config.chmod(0o644)
        yield World(**site.parts(), config=config, root=root, nearline=nearline)


def test_a_dcm4chee_point_on_two_storages_restores_every_row_with_its_file(world: World
                                                                          ) -> None:
    with psycopg.connect(world.dsn) as conn:
        for i in range(8):
            world.store(conn, MAPPED[i % 2])
        for _ in range(NEARLINE):
            world.store(conn, "nearline")
        # dcm4chee's own bookkeeping, not files the point promises: an object of a
        # deleted instance whose file the purge already removed (TO_DELETE), and one
        # kept on disk as an orphan (ORPHANED)
        conn.execute("INSERT INTO location (pk, created_time, object_type, object_size, "
                     "status, storage_id, storage_path) VALUES (nextval('location_pk_seq'), "
                     "now(), 0, 10, 1, 'fs1', '2026/01/01/00000000/00000000/DELETED0'), "
                     "(nextval('location_pk_seq'), now(), 0, 16, 10, 'fs2', "
                     "'2026/01/01/00000000/00000000/ORPHAN00')")
        conn.commit()
    orphan = world.root / "fs2/2026/01/01/00000000/00000000/ORPHAN00"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"orphaned object!")

    malformed = world.as_postgres("group", "backup", "--name", "pacs", "--pacs",
                                  "dcm4chee", "--root", str(world.root), "--dsn", world.dsn,
                                  "--storage", "fs1")
    assert malformed.returncode == 2 and "give ID=DIR" in malformed.stderr, malformed.stderr
    twice = world.as_postgres("group", "backup", "pacs", "--config", str(world.config),
                              "--storage", f"fs1={world.root}/fs1")
    assert twice.returncode == 2 and "drop --storage" in twice.stderr, twice.stderr

    doc, after = backup_while_storing(world)
    counts = doc["counts"]
    assert counts["missing"] == 0 and counts["outside"] == 0, doc
    assert counts["referenced"] == counts["references"] >= 8 + 3  # the loader's before it
    assert doc["not_covered"] == {"nearline": NEARLINE}
    assert counts["not_covered"] == NEARLINE
    assert doc["storages"] == {"fs1": "fs1", "fs2": "fs2"}
    assert "fs2/2026/01/01/00000000/00000000/ORPHAN00" in doc["after_point"]

    # without the map, a point would take fs1 and fs2 as the root's: refused in one line
    refused = world.as_postgres("group", "backup", "--name", "pacs", "--pacs", "dcm4chee",
                                "--root", str(world.root), "--dsn", world.dsn)
    assert refused.returncode == 2, refused.stderr
    assert "the dcm4chee index names objects on 3 storages (fs1 (" in refused.stderr
    assert "storages = { fs1 = \"DIR\", fs2 = \"DIR\" }" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    prose = world.as_root("group", "check", doc["snapshot_id"])
    assert prose.returncode == 0, prose.stderr
    assert "0 rows without files" in prose.stdout
    assert f"{NEARLINE} index objects on storages this group does not cover" in \
        " ".join(prose.stdout.split())
    with destroyed(world):
        restored_point(world, doc, after)


def backup_while_storing(world: World) -> tuple[dict[str, Any], set[str]]:
    """`group backup PLAN` while a loader stores on fs1 and fs2; returns its document and
    the instances committed after it returned (surely after the point)."""
    stop = threading.Event()
    started = threading.Event()
    after: set[str] = set()
    returned = threading.Event()

    def keep_storing() -> None:
        with psycopg.connect(world.dsn) as conn:
            i = 0
            while not stop.is_set() and i < 20_000:
                late = returned.is_set()  # before its file: surely after the point
                sop = world.store(conn, MAPPED[i % 2])
                i += 1
                if i == 3:
                    started.set()
                if late:
                    after.add(sop)
                stop.wait(0.005)
        started.set()

    loader = threading.Thread(target=keep_storing, name="dcm4chee-loader")
    loader.start()
    try:
        assert started.wait(60)
        done = world.as_postgres("--json", "group", "backup", "pacs", "--config",
                                 str(world.config))
        returned.set()
        while not after and loader.is_alive():
            loader.join(timeout=0.05)
    finally:
        stop.set()
        loader.join()
    assert done.returncode == 0, done.stderr
    assert after, "the loader stored past the backup"
    return done.json(), after


@contextmanager
def destroyed(world: World) -> Iterator[None]:
    """The storage root and the cluster's data directory gone (the server stopped) for
    the block."""
    world.server.stop()
    gone_root, gone_data = world.base / "destroyed-storage", world.base / "destroyed-db"
    world.root.rename(gone_root)
    world.server.data.rename(gone_data)
    assert not world.root.exists() and not world.server.data.exists()
    yield


def restored_point(world: World, doc: dict[str, Any], after: set[str]) -> None:
    files_target = world.base / "restored-files"
    data_dir = world.base / "restored-db"
    port = free_port()
    restored = world.as_root(
        "group", "restore", str(doc["snapshot_id"]), "--target-dir", str(data_dir),
        "--files-target", str(files_target), "--start", "--port", str(port),
        "--archive-mode-off", "--medark-command", world.medark, "--password-file",
        str(world.password_file), "--timeout", "120")
    assert restored.returncode == 0, restored.stderr
    root = files_target / str(world.root).lstrip("/")
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=dcm4chee"
    try:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT i.sop_iuid, l.storage_id, l.storage_path, l.object_size FROM "
                "location l JOIN instance i ON i.pk = l.instance_fk WHERE l.status = 0 "
                "AND l.object_type = 0").fetchall()
        # the point's references, and perhaps rows committed in the instant between its
        # snapshot and the reading of its LSN (docs/pacs.md): their files are in the scan
        assert len(rows) >= doc["counts"]["references"] + NEARLINE
        assert assert_restored(rows, world.stored, root, "nearline") == NEARLINE
        point = {sop for sop, *_ in rows}
        assert not point & after, "instances stored after the point are not in it"

        # the restored pair: the point's storages under the restored root, nearline not
        # covered; the same with the map given by --storage
        for extra in ([], ["--pacs", "dcm4chee", "--storage", "fs1=fs1", "--storage",
                           f"fs2={root}/fs2"]):
            snapshot = [str(doc["snapshot_id"])] if not extra else []
            check = world.as_root("--json", "group", "check", *snapshot, "--dsn", dsn,
                                  "--files-root", str(root), *extra)
            assert check.returncode == 0, check.stderr
            report = check.json()
            assert report["rows_without_files"] == []
            assert report["references"] == len(rows) - NEARLINE
            assert report["not_covered"] == {"nearline": NEARLINE}
            assert "fs2/2026/01/01/00000000/00000000/ORPHAN00" in report["files_without_rows"]
    finally:
        world.server.stop(data_dir)
