"""Any other PACS: a configured query whose first column is a file's path (relative to
the storage root, or absolute) and whose optional second column is its size."""

from __future__ import annotations

from medark.errors import SourceError
from medark.sources.pacs.index import Cursor, Reference, relative, rows, size_of


def references(cursor: Cursor, query: str, root: str) -> list[Reference]:
    found = []
    for row in rows(cursor, query):
        if not row:
            raise SourceError("index_query returns no column: its first column is a path")
        if row[0] is None or row[0] == "":
            continue
        found.append(Reference(relative(str(row[0]), root),
                               size_of(row[1]) if len(row) > 1 else None))
    return found
