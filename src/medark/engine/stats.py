"""Sizes of snapshots and of the repository (`stats`).

restore-size: what a restore of the selected snapshots would write (every path counted,
hard links once per snapshot). Totals are remembered per tree id, so a directory shared
by many snapshots is read once however many snapshots contain it.
raw-data: the distinct blobs the selected snapshots reference, their plaintext size
(deduplicated size) and their sealed size in packs (stored size). The distinct ids are
held in a set in RAM (about 100 bytes per blob); fine to some millions of chunks.
The repository block always comes from the index (summed in SQLite) and the pack files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from medark.engine.choices import STATS_MODES
from medark.engine.listing import load_nodes
from medark.errors import ObjectNotFound, UsageError
from medark.repo.crypto import SEAL_OVERHEAD
from medark.repo.index_cache import IndexCache
from medark.repo.pack import DATA_PREFIX, PackedBlob
from medark.snapshot.model import Snapshot
from medark.storage.base import Backend
from medark.util.progress import NullProgress, Progress

MODES = STATS_MODES


class StatsRepo(Protocol):
    backend: Backend
    cache: IndexCache

    def load_blob(self, blob_id: bytes) -> bytes: ...

    def locate(self, blob_id: bytes) -> tuple[bytes, PackedBlob]: ...


def _ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


@dataclass(frozen=True)
class _TreeTotals:
    size: int
    count: int
    links: tuple[tuple[int, int, int], ...]
    """(device, inode, size) of hard-linked files below, counted once per snapshot."""


class RestoreSizer:
    """Restore size and path count per snapshot, memoized by tree id."""

    def __init__(self, repo: StatsRepo) -> None:
        self.repo = repo
        self._memo: dict[bytes, _TreeTotals] = {}

    def snapshot(self, snap: Snapshot) -> tuple[int, int]:
        totals = self._tree(snap.tree)
        linked = {(dev, ino): size for dev, ino, size in totals.links}
        return totals.size + sum(linked.values()), totals.count

    def _tree(self, tree_id: bytes) -> _TreeTotals:
        cached = self._memo.get(tree_id)
        if cached is not None:
            return cached
        size = count = 0
        links: dict[tuple[int, int], int] = {}
        for node in load_nodes(self.repo, tree_id):
            count += 1
            if node.type == "file":
                if node.links > 1 and node.inode:
                    links[(node.device_id, node.inode)] = node.size
                else:
                    size += node.size
            elif node.type == "dir" and node.subtree is not None:
                sub = self._tree(node.subtree)
                size += sub.size
                count += sub.count
                for dev, ino, linked_size in sub.links:
                    links[(dev, ino)] = linked_size
        result = _TreeTotals(size, count, tuple((d, i, s) for (d, i), s in links.items()))
        self._memo[tree_id] = result
        return result


@dataclass
class BlobTotals:
    count: int = 0
    plain: int = 0
    """Deduplicated size: plaintext bytes of the distinct blobs."""
    sealed: int = 0
    """Stored size of those blobs: compressed and sealed, as they sit in packs."""
    compressed_count: int = 0
    compressed_plain: int = 0
    compressed_sealed: int = 0
    missing: int = 0

    def add(self, blob: PackedBlob) -> None:
        self.count += 1
        self.plain += blob.plain_length
        self.sealed += blob.length
        if blob.raw_length:
            self.compressed_count += 1
            self.compressed_plain += blob.raw_length
            self.compressed_sealed += blob.length

    @property
    def compression_ratio(self) -> float:
        """restic's: how far the blobs that were compressed shrank."""
        return _ratio(self.compressed_plain, self.compressed_sealed)

    @property
    def compression_space_saving(self) -> float:
        return round((1 - self.sealed / self.plain) * 100, 2) if self.plain else 0.0

    @property
    def compression_progress(self) -> float:
        return round(self.compressed_sealed / self.sealed * 100, 2) if self.sealed else 0.0


def referenced_blobs(repo: StatsRepo, roots: Iterable[bytes], progress: Progress) -> BlobTotals:
    """Distinct tree and data blobs below `roots`, each tree loaded once."""
    trees: set[bytes] = set()
    data: set[bytes] = set()
    stack = list(roots)
    while stack:
        tree_id = stack.pop()
        if tree_id in trees:
            continue
        trees.add(tree_id)
        for node in load_nodes(repo, tree_id):
            if node.type == "file":
                data.update(node.content)
            elif node.type == "dir" and node.subtree is not None and node.subtree not in trees:
                stack.append(node.subtree)
    totals = BlobTotals()
    for ids in (trees, data - trees):
        for blob_id in ids:
            try:
                totals.add(repo.locate(blob_id)[1])
            except ObjectNotFound:
                totals.missing += 1
                progress.warn(f"blob {blob_id.hex()[:16]} is not in the index; run check")
    return totals


@dataclass
class RepositoryTotals:
    snapshots_count: int = 0
    raw_size: int = 0
    """Sum over all snapshots of their restore size."""
    blobs: BlobTotals = field(default_factory=BlobTotals)
    """Every indexed blob (referenced or not)."""
    stored_size: int = 0
    """Pack files as the backend holds them (blobs, headers, trailers)."""
    pack_count: int = 0

    @property
    def dedup_ratio(self) -> float:
        return _ratio(self.raw_size, self.blobs.plain)

    def as_json(self) -> dict[str, Any]:
        return {
            "snapshots_count": self.snapshots_count,
            "raw_size": self.raw_size,
            "deduplicated_size": self.blobs.plain,
            "stored_size": self.stored_size,
            "dedup_ratio": self.dedup_ratio,
            "compression_ratio": self.blobs.compression_ratio,
            "compression_space_saving": self.blobs.compression_space_saving,
            "total_blob_count": self.blobs.count,
            "pack_count": self.pack_count,
        }


def index_totals(repo: StatsRepo) -> BlobTotals:
    totals = BlobTotals()
    for _type, count, sealed, c_count, c_sealed, c_raw in repo.cache.totals():
        totals.count += count
        totals.sealed += sealed
        totals.compressed_count += c_count
        totals.compressed_sealed += c_sealed
        totals.compressed_plain += c_raw
        totals.plain += c_raw + (sealed - c_sealed) - (count - c_count) * SEAL_OVERHEAD
    return totals


@dataclass
class StatsReport:
    mode: str
    snapshots_count: int
    restore_size: int
    file_count: int
    repository: RepositoryTotals
    blobs: BlobTotals | None = None
    """Set in raw-data mode: the blobs the selected snapshots reference."""

    @property
    def total_size(self) -> int:
        """restic's meaning: restored bytes (restore-size) or stored bytes (raw-data)."""
        return self.blobs.sealed if self.blobs is not None else self.restore_size

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mode": self.mode, "total_size": self.total_size}
        if self.blobs is None:
            doc["total_file_count"] = self.file_count
        else:
            b = self.blobs
            doc.update({
                "total_uncompressed_size": b.plain,
                "compression_ratio": b.compression_ratio,
                "compression_progress": b.compression_progress,
                "compression_space_saving": b.compression_space_saving,
                "total_blob_count": b.count,
                "raw_size": self.restore_size,
                "deduplicated_size": b.plain,
                "stored_size": b.sealed,
                "dedup_ratio": _ratio(self.restore_size, b.plain),
            })
        doc["snapshots_count"] = self.snapshots_count
        doc["repository"] = self.repository.as_json()
        return doc


def compute_stats(
    repo: StatsRepo,
    selected: list[Snapshot],
    every: list[Snapshot],
    mode: str = "restore-size",
    progress: Progress | None = None,
) -> StatsReport:
    """Stats of `selected`, plus the whole repository (`every` is all its snapshots)."""
    if mode not in MODES:
        raise UsageError(f"unknown stats mode {mode!r}: use {' or '.join(MODES)}")
    progress = progress or NullProgress()
    selected = list({s.id: s for s in selected}.values())
    chosen = {s.id for s in selected}
    every_ids = {s.id for s in every}
    snaps = [*every, *(s for s in selected if s.id not in every_ids)]
    sizer = RestoreSizer(repo)
    restore_size = file_count = raw_size = 0
    progress.set_total(len(snaps), None)
    for snap in snaps:
        size, count = sizer.snapshot(snap)
        if snap.id in chosen:
            restore_size += size
            file_count += count
        if snap.id in every_ids:
            raw_size += size
        progress.advance(files=1)
    repository = RepositoryTotals(snapshots_count=len(every), raw_size=raw_size,
                                  blobs=index_totals(repo))
    for info in repo.backend.list(DATA_PREFIX):
        repository.stored_size += info.size
        repository.pack_count += 1
    blobs = None
    if mode == "raw-data":
        blobs = referenced_blobs(repo, dict.fromkeys(s.tree for s in selected), progress)
    return StatsReport(mode, len(selected), restore_size, file_count, repository, blobs)
