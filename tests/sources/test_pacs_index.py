"""The PACS index readers (docs/pacs.md): Orthanc's real index (SQLite here; its
PostgreSQL index in tests/e2e/test_group_cli.py) names exactly the files in its
storage; dcm4chee's `location` and a configured query give paths relative to the
storage root, absolute ones outside it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dicom_samples import encode, sample_instances
from orthanc_server import PG_HOST, PG_PORT, can_run_orthanc, running_orthanc

from medark.errors import SourceError
from medark.sources.pacs.index import Reference, read_references, relative
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
                     "(4, 1, 90, 'metadata', '2026/11/03/A1/B2.zip', NULL)")
        conn.execute("CREATE TABLE images (path text, bytes bigint)")
        conn.execute("INSERT INTO images VALUES ('/srv/pacs/s1/i1.dcm', 10), "
                     "('s1/i2.dcm', NULL), ('/mnt/old/i3.dcm', 30), ('', 0)")
        conn.commit()
        with conn.transaction(), conn.cursor() as cur:
            found = sorted(read_references(cur, "dcm4chee", "/srv/dcm4chee"),
                           key=lambda r: r.path)
            assert found == [Reference("2026/11/03/A1/B2/I1", 1200),
                             Reference("2026/11/03/A1/B2/I2", 800)]
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
