"""The file references of a PACS index, whichever kind: read through any DB-API cursor
(psycopg for PostgreSQL, sqlite3 for Orthanc's SQLite index) inside the caller's
transaction, so they belong to the caller's database point."""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from medark.config.groups import storage_dirs
from medark.errors import SourceError, UsageError

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
    storage: str | None = None
    """dcm4chee: the storage ID the row names (`path` is then relative to that storage's
    directory until place_storages() puts it under the root)."""


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


@dataclass
class Placed:
    """The references under the root, and the objects left out by storage ID."""

    references: list[Reference]
    not_covered: dict[str, int] = field(default_factory=dict)
    """Objects on a storage the map leaves out (nearline, S3...), counted per ID: not
    in the scan, so neither present nor missing."""


def place_storages(references: list[Reference], storages: Mapping[str, str] | None,
                   root: str) -> Placed:
    """Each reference's path relative to the root: under its storage's directory (the
    map: storage ID -> directory, relative to the root or absolute inside it). Without
    a map the paths are already the root's, which holds only when the index names one
    storage: several are refused with the setting to give."""
    named = Counter(r.storage for r in references if r.storage is not None)
    if not storages:
        if len(named) > 1:
            ids = ", ".join(f"{s} ({n})" for s, n in sorted(named.items()))
            example = ", ".join(f'{s} = "DIR"' for s in sorted(named)[:2])
            raise UsageError(f"the dcm4chee index names objects on {len(named)} storages "
                             f"({ids}): map each to its directory with storages = "
                             f"{{ {example} }} on the group's files source (or --storage "
                             "ID=DIR); docs/pacs.md")
        return Placed(references)
    try:
        dirs = storage_dirs(storages, root)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    placed: list[Reference] = []
    left: Counter[str] = Counter()
    for ref in references:  # millions: no more than a join each
        if ref.storage is None or posixpath.isabs(ref.path):
            placed.append(ref)
        elif ref.storage in dirs:
            # both normalized and inside the root (relative() made a path leaving it
            # absolute), so the join is too
            under = dirs[ref.storage]
            placed.append(Reference(ref.path if under == "." else f"{under}/{ref.path}",
                                    ref.size, ref.storage))
        else:
            left[ref.storage] += 1
    return Placed(placed, dict(sorted(left.items())))
