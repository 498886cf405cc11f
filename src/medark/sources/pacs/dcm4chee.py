"""dcm4chee-arc 5's index: each row of `location` is a stored object on one storage,
`storage_id` that storage's ID (dcmStorageID; its URI, dcmURI, is configured in LDAP, not
in the database), `storage_path` the object's path relative to that storage's root,
`object_size` its size. The columns are those of dcm4chee-arc 5.x's `location` table
(pk, created_time, digest, multi_ref, object_type, object_size, status, storage_id,
storage_path, tsuid, instance_fk, uidmap_fk). Where each storage lives on disk comes from
the group's `storages` map (index.place_storages); without one, the paths are the
files source's root's (docs/pacs.md, "dcm4chee")."""

from __future__ import annotations

from medark.sources.pacs.index import Cursor, Reference, relative, rows, size_of

QUERY = ("SELECT DISTINCT storage_id, storage_path, object_size FROM location "
         "WHERE object_type = 0 AND status = 0")
"""object_type 0: DICOM files (1: the series metadata, kept on a metadata storage).
status 0 (OK): an object of a live instance that dcm4chee holds as stored; the other
values mark objects of deleted instances waiting for (or having failed) their deletion,
kept on disk as orphans, or found missing, unreadable or differing by dcm4chee's own
storage verification (docs/pacs.md): none is a file the point promises.
DISTINCT: several locations may share one file (multi_ref)."""


def references(cursor: Cursor, root: str) -> list[Reference]:
    return [Reference(relative(str(path), root), size_of(size), str(storage))
            for storage, path, size in rows(cursor, QUERY) if path]
