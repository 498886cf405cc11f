"""dcm4chee-arc 5's index: each row of `location` is a stored object, `storage_path`
relative to its storage's root (the storage's URI is configured in LDAP, not in the
database: the group's files source is that root), `object_size` its size. The columns
are those of dcm4chee-arc 5.x's `location` table (pk, created_time, digest, multi_ref,
object_type, object_size, status, storage_id, storage_path, tsuid, instance_fk,
uidmap_fk)."""

from __future__ import annotations

from medark.sources.pacs.index import Cursor, Reference, relative, rows, size_of

QUERY = ("SELECT DISTINCT storage_path, object_size FROM location "
         "WHERE object_type = 0")
"""object_type 0: DICOM files (1: the series metadata, kept on a metadata storage);
DISTINCT: several locations may share a file (multi_ref)."""


def references(cursor: Cursor, root: str) -> list[Reference]:
    return [Reference(relative(str(path), root), size_of(size))
            for path, size in rows(cursor, QUERY) if path]
