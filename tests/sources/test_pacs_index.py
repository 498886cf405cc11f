"""The PACS index readers (docs/pacs.md): Orthanc's real index (SQLite here; its
PostgreSQL index in tests/e2e/test_group_cli.py) names exactly the files in its
storage; dcm4chee's `location` (its OK DICOM objects, each with its storage ID) and a
configured query give paths relative to the storage root, absolute ones outside it;
dcm4chee's storages are placed under the root by the group's map, and objects on a
storage it leaves out are counted, never missing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dicom_samples import encode, sample_instances
from orthanc_server import PG_HOST, PG_PORT, can_run_orthanc, running_orthanc

from medark.errors import SourceError, UsageError
from medark.sources.pacs.index import Reference, place_storages, read_references, relative
from medark.sources.pacs.orthanc import sqlite_references, storage_path


def admin(statement: str) -> None:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def index_db() -> Iterator[str]:
    name = f"medark_pacs_{uuid.uuid4().hex[:10]}"
    admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"host={PG_HOST} port={PG_PORT} user=postgres dbname={name}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and len(p.name) == 36}  # Orthanc's uuid-named attachments


def test_relative_paths_stay_inside_the_root() -> None:
    assert relative("/srv/pacs/a/b.dcm", "/srv/pacs") == "a/b.dcm"
    assert relative("/srv/pacs/./a//b.dcm", "/srv/pacs/") == "a/b.dcm"
    assert relative("a/b.dcm", "/srv/pacs") == "a/b.dcm"
    assert relative("/srv/other/x.dcm", "/srv/pacs") == "/srv/other/x.dcm"
    assert relative("/srv/pacsX/x.dcm", "/srv/pacs") == "/srv/pacsX/x.dcm"
    assert relative("../x.dcm", "/srv/pacs") == "/srv/x.dcm"
    assert storage_path("dba08011-77a6-431f-87a7-e4fc930e228c") == \
        "db/a0/dba08011-77a6-431f-87a7-e4fc930e228c"
    with pytest.raises(SourceError):
        storage_path("../x")


def test_dcm4chee_location_and_a_configured_query(index_db: str) -> None:
    with psycopg.connect(index_db) as conn:
        # dcm4chee-arc 5's columns (a metadata object and a shared file are not files
        # of the DICOM storage twice)
        conn.execute("CREATE TABLE location (pk int8 PRIMARY KEY, created_time timestamp "
                     "NOT NULL DEFAULT now(), digest varchar(255), multi_ref int4, "
                     "object_type int4 NOT NULL, object_size int8 NOT NULL, status int4 NOT "
                     "NULL DEFAULT 0, storage_id varchar(255) NOT NULL, storage_path "
                     "varchar(255) NOT NULL, tsuid varchar(255), instance_fk int8, "
                     "uidmap_fk int8)")
        conn.execute("INSERT INTO location (pk, object_type, object_size, storage_id, "
                     "storage_path, multi_ref) VALUES "
                     "(1, 0, 1200, 'fs1', '2026/11/03/A1/B2/I1', NULL), "
                     "(2, 0, 800, 'fs1', '2026/11/03/A1/B2/I2', 7), "
                     "(3, 0, 800, 'fs1', '2026/11/03/A1/B2/I2', 7), "
                     "(4, 1, 90, 'metadata', '2026/11/03/A1/B2.zip', NULL), "
                     "(5, 0, 700, 'fs2', '2026/11/04/C3/D4/I5', NULL)")
        # not OK: deleted instances' objects waiting for (or failing) their deletion,
        # an orphan kept on disk, one dcm4chee's storage verification found missing
        conn.execute("INSERT INTO location (pk, object_type, object_size, storage_id, "
                     "storage_path, status) VALUES "
                     "(6, 0, 10, 'fs1', 'gone/I6', 1), (7, 0, 10, 'fs1', 'gone/I7', 2), "
                     "(8, 0, 10, 'fs1', 'gone/I8', 3), (9, 0, 10, 'fs2', 'gone/I9', 10)")
        conn.execute("CREATE TABLE images (path text, bytes bigint)")
        conn.execute("INSERT INTO images VALUES ('/srv/pacs/s1/i1.dcm', 10), "
                     "('s1/i2.dcm', NULL), ('/mnt/old/i3.dcm', 30), ('', 0)")
        conn.commit()
        with conn.transaction(), conn.cursor() as cur:
            found = sorted(read_references(cur, "dcm4chee", "/srv/dcm4chee"),
                           key=lambda r: r.path)
            assert found == [Reference("2026/11/03/A1/B2/I1", 1200, "fs1"),
                             Reference("2026/11/03/A1/B2/I2", 800, "fs1"),
                             Reference("2026/11/04/C3/D4/I5", 700, "fs2")]
            with pytest.raises(UsageError, match=r"2 storages \(fs1 \(2\), fs2 \(1\)\): "
                               r"map each to its directory with storages = "):
                place_storages(found, None, "/srv/dcm4chee")
            placed = place_storages(found, {"fs1": "/srv/dcm4chee/fs1", "fs2": "fs2"},
                                    "/srv/dcm4chee")
            assert sorted(r.path for r in placed.references) == [
                "fs1/2026/11/03/A1/B2/I1", "fs1/2026/11/03/A1/B2/I2",
                "fs2/2026/11/04/C3/D4/I5"]
            assert placed.not_covered == {}
            one = place_storages(found[:2], None, "/srv/dcm4chee")  # one storage: the root
            assert [r.path for r in one.references] == [r.path for r in found[:2]]
            found = read_references(cur, "sql", "/srv/pacs",
                                    "SELECT path, bytes FROM images ORDER BY path")
            assert sorted(found, key=lambda r: r.path) == [
                Reference("/mnt/old/i3.dcm", 30), Reference("s1/i1.dcm", 10),
                Reference("s1/i2.dcm", None)]
            only_paths = read_references(cur, "sql", "/srv/pacs", "SELECT path FROM images")
            assert {r.size for r in only_paths} == {None}
            with pytest.raises(SourceError, match="needs index_query"):
                read_references(cur, "sql", "/srv/pacs")


@pytest.mark.parametrize("index", ["sqlite"])  # PostgreSQL's: tests/e2e/test_group_cli.py
def test_orthanc_index_names_exactly_its_stored_files(index: str) -> None:
    reason = can_run_orthanc(index)
    if reason:
        pytest.skip(reason)
    instances = sample_instances()[:3]
    with running_orthanc(index=index) as pacs:
        pacs.upload_many(encode(i) for i in instances)
        files = stored_files(pacs.storage_dir)
        assert len(files) == 3
        if index == "postgresql":
            assert pacs.index_dsn is not None
            with psycopg.connect(pacs.index_dsn) as conn, conn.cursor() as cur:
                found = read_references(cur, "orthanc", str(pacs.storage_dir))
        else:
            pacs.stop()  # Orthanc holds its SQLite index locked while it runs
            found = sqlite_references(str(pacs.storage_dir / "index"))
        assert {r.path for r in found} == files
        for ref in found:
            assert ref.size == os.path.getsize(pacs.storage_dir / ref.path)


def test_objects_on_a_storage_the_map_leaves_out_are_counted_not_placed() -> None:
    refs = [Reference("2026/a", 1, "fs1"), Reference("2026/b", 2, "nearline"),
            Reference("2026/c", 3, "nearline"), Reference("2026/d", 4, "s3")]
    placed = place_storages(refs, {"fs1": "/storage/fs1"}, "/storage")
    assert placed.references == [Reference("fs1/2026/a", 1, "fs1")]
    assert placed.not_covered == {"nearline": 2, "s3": 1}
    # a storage at the root itself, and one outside it (not in the scan: refused)
    assert place_storages(refs[:1], {"fs1": "/storage"}, "/storage").references == \
        [Reference("2026/a", 1, "fs1")]
    with pytest.raises(UsageError, match="not inside /storage"):
        place_storages(refs, {"fs1": "/other/fs1"}, "/storage")
    with pytest.raises(UsageError, match="not inside /storage"):
        place_storages(refs, {"fs1": "../fs1"}, "/storage")
