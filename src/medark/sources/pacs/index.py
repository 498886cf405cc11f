"""The file references of a PACS index, whichever kind: read through any DB-API cursor
(psycopg for PostgreSQL, sqlite3 for Orthanc's SQLite index) inside the caller's
transaction, so they belong to the caller's database point."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from medark.errors import SourceError

KINDS = ("orthanc", "dcm4chee", "sql")
BATCH = 10_000


class Cursor(Protocol):
    """What a reader needs of a DB-API cursor."""

    def execute(self, query: Any, params: Any = ...) -> Any: ...
    def fetchmany(self, size: int = ...) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Reference:
    """One file the index names: its path relative to the storage root (absolute when
    the index names a file outside it) and its size when the index records one."""

    path: str
    size: int | None = None


def relative(path: str, root: str) -> str:
    """`path` relative to `root` when it is inside it (or already relative), else the
    absolute path, normalized either way."""
    root = posixpath.normpath(root)
    if not posixpath.isabs(path):
        clean = posixpath.normpath(path)
        return clean if not clean.startswith("../") and clean != ".." else \
            posixpath.normpath(posixpath.join(root, clean))
    clean = posixpath.normpath(path)
    if clean == root or clean.startswith(root.rstrip("/") + "/"):
        return posixpath.relpath(clean, root)
    return clean


def rows(cursor: Cursor, query: str) -> Iterator[Sequence[Any]]:
    """Every row of `query`, fetched in batches (an index of millions of files)."""
    cursor.execute(query)
    while True:
        batch = cursor.fetchmany(BATCH)
        if not batch:
            return
        yield from batch


def size_of(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_references(cursor: Cursor, kind: str, root: str, query: str | None = None
                    ) -> list[Reference]:
    """The references of an index of `kind` (orthanc, dcm4chee, sql)."""
    from medark.sources.pacs import dcm4chee, orthanc, sql_index

    if kind == "orthanc":
        return orthanc.references(cursor)
    if kind == "dcm4chee":
        return dcm4chee.references(cursor, root)
    if kind == "sql":
        if not query:
            raise SourceError("pacs = \"sql\" needs index_query")
        return sql_index.references(cursor, query, root)
    raise SourceError(f"unknown PACS kind {kind!r} (known: {', '.join(KINDS)})")
