"""Orthanc's index (1.10; PostgreSQL plugin 4.0 and the SQLite index alike): each
attachment of `AttachedFiles` is a file stored as ROOT/u[0:2]/u[2:4]/u, where u is its
uuid (Orthanc's FilesystemStorage); `compressedSize` is the size on disk."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from medark.errors import SourceError
from medark.sources.pacs.index import Cursor, Reference, rows, size_of

QUERY = "SELECT uuid, compressedSize FROM AttachedFiles"


def storage_path(uuid: str) -> str:
    """Where Orthanc's FilesystemStorage keeps the attachment `uuid`."""
    if len(uuid) < 4 or "/" in uuid or uuid.startswith("."):
        raise SourceError(f"Orthanc attachment uuid {uuid!r} is not a file name")
    return f"{uuid[0:2]}/{uuid[2:4]}/{uuid}"


def references(cursor: Cursor) -> list[Reference]:
    return [Reference(storage_path(str(uuid)), size_of(size))
            for uuid, size in rows(cursor, QUERY)]


def sqlite_references(index_file: str) -> list[Reference]:
    """From Orthanc's SQLite index file (IndexDirectory/index), opened read-only."""
    try:
        with closing(sqlite3.connect(f"file:{index_file}?mode=ro", uri=True)) as conn:
            return references(conn.cursor())
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read Orthanc's SQLite index {index_file}: {exc}") from None
