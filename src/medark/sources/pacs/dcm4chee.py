"""dcm4chee-arc 5's index: each row of `location` is a stored object, `storage_path`
relative to its storage's root (the storage's URI is configured in LDAP, not in the
database: the group's files source is that root), `object_size` its size."""

from __future__ import annotations

from medark.sources.pacs.index import Cursor, Reference, relative, rows, size_of

QUERY = "SELECT storage_path, object_size FROM location"


def references(cursor: Cursor, root: str) -> list[Reference]:
    return [Reference(relative(str(path), root), size_of(size))
            for path, size in rows(cursor, QUERY) if path]
