"""`group check`: the PACS's "storage commitment" applied to a backup or a restore —
index rows without their file, and files without an index row (docs/pacs.md, "Check").

On a group snapshot the references recorded at the point are compared with the files
its tree holds; on a restored (or live) pair, the references an index database holds
now with the files under a directory."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from typing import Any

from medark.engine.group_tree import TreeReader, files_tree, read_list
from medark.snapshot.model import Snapshot
from medark.snapshot.store import SnapshotRepo
from medark.sources.pacs.index import Reference


def compare(references: Iterable[str], present: Iterable[str]) -> dict[str, Any]:
    """Both lists, sorted; a reference outside the root (absolute) has no file here."""
    wanted = set(references)
    files = set(present)
    return {"references": len(wanted), "files": len(files),
            "rows_without_files": sorted(wanted - files),
            "files_without_rows": sorted(files - wanted)}


def check_point(repo: SnapshotRepo, point: Snapshot) -> dict[str, Any]:
    root = str(point.source["root"])
    references = read_list(repo, point.tree, "references")
    present = (rel for rel, _node in TreeReader(repo, files_tree(repo, point.tree))
               .files_under(root))
    return {"message_type": "group_check", "of": "snapshot", "snapshot_id": point.id,
            "group": point.source.get("group"), "root": root,
            **compare(references, present),
            "not_covered": dict(point.source.get("not_covered") or {})}


def disk_files(root: str) -> list[str]:
    """Every regular file under `root`, relative to it."""
    found = []
    for top, _dirs, names in os.walk(root):
        for name in names:
            full = os.path.join(top, name)
            if os.path.isfile(full) and not os.path.islink(full):
                found.append(posixpath.relpath(full, root))
    return found


def check_pair(references: list[Reference], root: str,
               not_covered: dict[str, int] | None = None) -> dict[str, Any]:
    """`not_covered`: objects on storages the group does not map (dcm4chee), per ID:
    neither rows with nor without files here."""
    return {"message_type": "group_check", "of": "pair", "root": root,
            **compare((r.path for r in references), disk_files(root)),
            "not_covered": dict(not_covered or {})}
