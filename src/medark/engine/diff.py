"""What changed between two snapshots (`diff`), with restic's modifiers and statistics.

Subtrees are compared by id first: a directory whose tree id is the same on both sides
did not change and is skipped without loading it, so a diff costs in proportion to what
changed, not to the size of the snapshots. The price: the blob statistics only see the
changed parts, so a blob that is new there but also sits in an unchanged directory is
still counted as added (newer restic versions load the unchanged trees to avoid this).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from medark.engine.listing import join, load_nodes
from medark.errors import ObjectNotFound
from medark.repo.pack import PackedBlob
from medark.snapshot.model import Node

_METADATA = (
    "type", "mode", "uid", "gid", "user", "group", "mtime_ns", "ctime_ns", "inode",
    "device_id", "links", "size", "linktarget", "rdev",
)


class DiffRepo(Protocol):
    def load_blob(self, blob_id: bytes) -> bytes: ...

    def locate(self, blob_id: bytes) -> tuple[bytes, PackedBlob]: ...


@dataclass(frozen=True)
class Change:
    path: str
    """Absolute path; directories end in '/'."""
    modifier: str
    """restic's letters: + added, - removed, T type changed, M content changed,
    ? content changed with identical metadata (bit rot), U metadata changed."""

    def as_json(self) -> dict[str, Any]:
        return {"message_type": "change", "path": self.path, "modifier": self.modifier}


@dataclass
class DiffStat:
    files: int = 0
    dirs: int = 0
    others: int = 0
    data_blobs: int = 0
    tree_blobs: int = 0
    bytes: int = 0

    def add(self, node: Node) -> None:
        if node.type == "file":
            self.files += 1
        elif node.type == "dir":
            self.dirs += 1
        else:
            self.others += 1

    def as_json(self) -> dict[str, int]:
        return {"files": self.files, "dirs": self.dirs, "others": self.others,
                "data_blobs": self.data_blobs, "tree_blobs": self.tree_blobs,
                "bytes": self.bytes}


@dataclass
class DiffStats:
    source_snapshot: str = ""
    target_snapshot: str = ""
    changed_files: int = 0
    added: DiffStat = field(default_factory=DiffStat)
    removed: DiffStat = field(default_factory=DiffStat)

    def as_json(self) -> dict[str, Any]:
        return {"message_type": "statistics", "source_snapshot": self.source_snapshot,
                "target_snapshot": self.target_snapshot, "changed_files": self.changed_files,
                "added": self.added.as_json(), "removed": self.removed.as_json()}


def same_metadata(a: Node, b: Node) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in _METADATA)


class _BlobSet:
    """Data and tree blob ids seen on one side (kept apart, as restic's BlobHandle does)."""

    def __init__(self) -> None:
        self.data: set[bytes] = set()
        self.trees: set[bytes] = set()

    def add(self, node: Node | None) -> None:
        if node is None:
            return
        if node.type == "file":
            self.data.update(node.content)
        elif node.type == "dir" and node.subtree is not None:
            self.trees.add(node.subtree)


class SnapshotDiff:
    """Iterate `changes()`, then read `statistics()`."""

    def __init__(self, repo: DiffRepo, metadata: bool = False) -> None:
        self.repo = repo
        self.metadata = metadata
        self.stats = DiffStats()
        self._before = _BlobSet()
        self._after = _BlobSet()

    def changes(self, tree1: bytes, tree2: bytes) -> Iterator[Change]:
        if tree1 != tree2:
            self._before.trees.add(tree1)
            self._after.trees.add(tree2)
        yield from self._diff(tree1, tree2, "/")

    def _diff(self, tree1: bytes, tree2: bytes, prefix: str) -> Iterator[Change]:
        if tree1 == tree2:
            return  # identical subtree: nothing below it changed
        old = {n.name: n for n in load_nodes(self.repo, tree1)}
        new = {n.name: n for n in load_nodes(self.repo, tree2)}
        for name in sorted(old.keys() | new.keys()):
            n1, n2 = old.get(name), new.get(name)
            self._before.add(n1)
            self._after.add(n2)
            path = join(prefix, name)
            if n1 is not None and n2 is not None:
                yield from self._changed(path, n1, n2)
            elif n1 is not None:
                yield from self._one_side(path, n1, "-", self.stats.removed, self._before)
            elif n2 is not None:
                yield from self._one_side(path, n2, "+", self.stats.added, self._after)

    def _changed(self, path: str, n1: Node, n2: Node) -> Iterator[Change]:
        modifier = "T" if n1.type != n2.type else ""
        if n1.type == "file" and n2.type == "file" and n1.content != n2.content:
            modifier += "M"
            self.stats.changed_files += 1
            if same_metadata(n1, n2):
                modifier += "?"
        elif n1.type == "symlink" == n2.type and n1.linktarget != n2.linktarget:
            modifier += "M"
        elif self.metadata and not same_metadata(n1, n2):
            modifier += "U"
        shown = path + "/" if n2.type == "dir" else path
        if modifier:
            yield Change(shown, modifier)
        if n1.type == "dir" and n2.type == "dir":
            if n1.subtree is not None and n2.subtree is not None:
                yield from self._diff(n1.subtree, n2.subtree, path)
        elif n1.type == "dir" and n1.subtree is not None:
            # a directory replaced by another type: what it held is gone
            yield from self._all(n1.subtree, path, "-", self.stats.removed, self._before)
        elif n2.type == "dir" and n2.subtree is not None:
            yield from self._all(n2.subtree, path, "+", self.stats.added, self._after)

    def _one_side(
        self, path: str, node: Node, sign: str, stat: DiffStat, blobs: _BlobSet
    ) -> Iterator[Change]:
        stat.add(node)
        if node.type == "dir":
            yield Change(path + "/", sign)
            if node.subtree is not None:
                yield from self._all(node.subtree, path, sign, stat, blobs)
        else:
            yield Change(path, sign)

    def _all(
        self, tree_id: bytes, prefix: str, sign: str, stat: DiffStat, blobs: _BlobSet
    ) -> Iterator[Change]:
        for node in load_nodes(self.repo, tree_id):
            blobs.add(node)
            yield from self._one_side(join(prefix, node.name), node, sign, stat, blobs)

    def statistics(self, warn: Callable[[str], None] | None = None) -> DiffStats:
        """Blob counts and bytes (plaintext) only one side references; call after changes()."""
        for kind in ("data", "trees"):
            before: set[bytes] = getattr(self._before, kind)
            after: set[bytes] = getattr(self._after, kind)
            for ids, stat in ((before - after, self.stats.removed),
                              (after - before, self.stats.added)):
                for blob_id in ids:
                    if kind == "data":
                        stat.data_blobs += 1
                    else:
                        stat.tree_blobs += 1
                    try:
                        stat.bytes += self.repo.locate(blob_id)[1].plain_length
                    except ObjectNotFound:
                        if warn is not None:
                            warn(f"blob {blob_id.hex()[:16]} is not in the index; size unknown")
        return self.stats
