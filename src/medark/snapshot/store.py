"""Saving, listing and finding snapshots; walking their trees.

Consumers give a narrow `SnapshotRepo` (docs/architecture.md, convention 4), not the
concrete Repository.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from medark.errors import AmbiguousId, ObjectNotFound
from medark.repo.pack import BlobType, SaveResult
from medark.snapshot.model import Node, Snapshot, decode_tree, encode_tree
from medark.snapshot.retention import NeedsRepo, protect_snapshot

SNAPSHOTS_PREFIX = "snapshots/"


class SnapshotRepo(Protocol):
    def save_unpacked(self, prefix: str, plaintext: bytes) -> str: ...

    def load_unpacked(self, name: str) -> bytes: ...

    def list_names(self, prefix: str) -> Iterator[str]: ...

    def load_blob(self, blob_id: bytes) -> bytes: ...

    def save_blob(
        self, blob_type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None
    ) -> SaveResult: ...


def save_snapshot(repo: SnapshotRepo, snapshot: Snapshot) -> str:
    if isinstance(repo, NeedsRepo):
        protect_snapshot(repo, snapshot)  # a lock period: lock what it needs first
    name = repo.save_unpacked(SNAPSHOTS_PREFIX, snapshot.to_json())
    snapshot.id = name.removeprefix(SNAPSHOTS_PREFIX)
    return snapshot.id


_loaded: weakref.WeakKeyDictionary[SnapshotRepo, dict[str, bytes]] = \
    weakref.WeakKeyDictionary()
"""Per open repository, the snapshot files already read (and verified). A snapshot file
is named by its content and never changes, so a long-lived process (`copy --follow`, the
daemon's readers) reads each one once, not at every pass."""


def load_snapshot(repo: SnapshotRepo, snapshot_id: str) -> Snapshot:
    try:
        seen = _loaded.setdefault(repo, {})
    except TypeError:  # a repository object that cannot be weakly referenced
        seen = {}
    raw = seen.get(snapshot_id)
    if raw is None:
        raw = seen[snapshot_id] = repo.load_unpacked(SNAPSHOTS_PREFIX + snapshot_id)
    return Snapshot.from_json(raw, snapshot_id)


def snapshot_ids(repo: SnapshotRepo) -> list[str]:
    return [n.removeprefix(SNAPSHOTS_PREFIX) for n in repo.list_names(SNAPSHOTS_PREFIX)]


def all_snapshots(repo: SnapshotRepo) -> list[Snapshot]:
    """Every snapshot, oldest first."""
    snaps = [load_snapshot(repo, i) for i in snapshot_ids(repo)]
    return sorted(snaps, key=lambda s: (s.time, s.id))


def find_snapshot(
    repo: SnapshotRepo,
    ref: str,
    *,
    hosts: list[str] | None = None,
    paths: list[str] | None = None,
    tags: list[str] | None = None,
) -> Snapshot:
    """'latest' (optionally filtered) or a unique id prefix."""
    if ref == "latest":
        candidates = filter_snapshots(all_snapshots(repo), hosts=hosts, paths=paths, tags=tags)
        if not candidates:
            raise ObjectNotFound("no snapshot matches 'latest' (the repository has none?)")
        return candidates[-1]
    matches = [i for i in snapshot_ids(repo) if i.startswith(ref.lower())]
    if not matches:
        raise ObjectNotFound(f"no snapshot with id {ref!r}")
    if len(matches) > 1:
        raise AmbiguousId(f"snapshot id prefix {ref!r} is ambiguous; give more characters")
    return load_snapshot(repo, matches[0])


def filter_snapshots(
    snaps: list[Snapshot],
    *,
    hosts: list[str] | None = None,
    paths: list[str] | None = None,
    tags: list[str] | None = None,
) -> list[Snapshot]:
    """restic semantics: any of the hosts; all of the paths; any tag group (a,b = both)."""
    out = []
    for snap in snaps:
        if hosts and snap.hostname not in hosts:
            continue
        if paths and not all(p in snap.paths for p in paths):
            continue
        if tags and not any(set(group.split(",")) <= set(snap.tags) for group in tags):
            continue
        out.append(snap)
    return out


def save_tree(repo: SnapshotRepo, nodes: list[Node]) -> bytes:
    return repo.save_blob(BlobType.TREE, encode_tree(nodes)).id


def load_tree(repo: SnapshotRepo, tree_id: bytes) -> list[Node]:
    return decode_tree(repo.load_blob(tree_id))


def walk(
    repo: SnapshotRepo, tree_id: bytes, prefix: str = "/"
) -> Iterator[tuple[str, Node]]:
    """Depth-first (path, node) for every node below `tree_id`, parents before children."""
    for node in load_tree(repo, tree_id):
        path = prefix.rstrip("/") + "/" + node.name
        yield path, node
        if node.type == "dir" and node.subtree is not None:
            yield from walk(repo, node.subtree, path)
