"""`copy`: replicate snapshots and the WAL/binlog archives to another repository.

The destination may use another key and another cipher suite: every blob is read,
verified and re-sealed with the destination's key, and every tree is rewritten with the
destination's blob ids. Phases for each pass, in the write order of docs/design.md:

1. archives: each WAL/binlog record the destination lacks — its blocks, then (after the
   packs and index are stored) the record itself, so a snapshot that arrives later finds
   the WAL it needs already there;
2. snapshots: each selected snapshot whose id (or original id) no destination snapshot
   names as its `original` — data blobs the destination lacks, trees bottom-up, flush,
   verify, then the snapshot object last.

An interrupted copy leaves packs and index files that the rerun finds and does not send
again, and never a snapshot or record whose data is missing. A second run copies nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medark.engine.binlog_names import BINLOG_PREFIX
from medark.engine.copy_blobs import BlobCopier, BlobCounts, read_back
from medark.engine.copy_map import CopyMap
from medark.engine.pg_wal import WAL_PREFIX
from medark.errors import AlreadyExists, IntegrityError, ObjectNotFound, RepositoryCorrupt
from medark.repo.pack import DATA_PREFIX, BlobType
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot, decode_tree, encode_tree
from medark.snapshot.store import all_snapshots, load_snapshot, load_tree, save_snapshot
from medark.util import clock

ARCHIVE_PREFIXES = (WAL_PREFIX, BINLOG_PREFIX)
DATA_BATCH = 4096
"""Data blob ids gathered from many trees before they are copied together."""
LIST_PAGE = 1000
"""Names per listing request (S3's page size)."""
LIST_OVER_HEAD = 4
"""Verify written packs by listing when that takes this many times fewer requests than
one HEAD per pack (HEADs run in parallel, a listing's pages one after the other)."""


@dataclass
class CopyStats:
    snapshots_copied: int = 0
    snapshots_present: int = 0
    records_copied: int = 0
    records_present: int = 0
    trees_written: int = 0
    blobs: BlobCounts = field(default_factory=BlobCounts)
    stored_bytes: int = 0
    """Sealed bytes added to the destination: what crossed the link as new data."""
    packs_written: int = 0
    newest_point: datetime | None = None
    """Newest snapshot time or archived record time the destination now holds."""

    def public(self) -> dict[str, Any]:
        return {
            "snapshots_copied": self.snapshots_copied,
            "snapshots_present": self.snapshots_present,
            "records_copied": self.records_copied,
            "records_present": self.records_present,
            "trees_written": self.trees_written,
            "blobs_copied": self.blobs.copied,
            "blobs_present": self.blobs.present,
            "blobs_reused": self.blobs.reused,
            "packs_moved": self.blobs.packs_moved,
            "bytes_read": self.blobs.bytes_read,
            "data_bytes": self.blobs.plain_bytes,
            "bytes_stored": self.stored_bytes,
            "packs_written": self.packs_written,
            "newest_point": clock.format_time(self.newest_point) if self.newest_point else None,
        }


Event = Callable[[str, dict[str, Any]], None]
"""Called as (kind, details) when a snapshot or record has been copied."""


def origin(snapshot: Snapshot) -> str:
    """The id a copied snapshot is known by everywhere: the first repository's id."""
    return snapshot.original or snapshot.id


class Copier:
    """One source, one destination; the caller holds the locks and closes both."""

    def __init__(self, src: Repository, dst: Repository, idmap: CopyMap, workers: int = 2,
                 on_event: Event | None = None,
                 on_bytes: Callable[[int], None] | None = None,
                 dst_records: dict[str, set[str]] | None = None) -> None:
        self.src = src
        self.dst = dst
        self.map = idmap
        self.dst_records = {} if dst_records is None else dst_records
        """Archive prefix -> the record names the destination holds: listed when absent,
        kept up to date as records are copied (a follower reuses it between passes)."""
        self.src_records: list[str] = []
        """The record names the source offered in this pass."""
        self.stats = CopyStats()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="copy")
        self.blobs = BlobCopier(src, dst, idmap, self._pool, on_bytes)
        self.stats.blobs = self.blobs.counts
        self._on_event = on_event
        self._new_trees: list[bytes] = []
        self._start = (dst.stats.stored_added, dst.stats.packs_written, len(dst.written_packs))
        idmap.revalidate(dst.index_names())

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # ---- archives ------------------------------------------------------------------

    def copy_archives(self) -> None:
        for prefix in ARCHIVE_PREFIXES:
            have = self.dst_records.get(prefix)
            if have is None:
                have = self.dst_records[prefix] = set(self.dst.list_names(prefix))
            offered = list(self.src.list_names(prefix))
            self.src_records.extend(offered)
            wanted = sorted(n for n in offered if n not in have)
            self.stats.records_present += len(offered) - len(wanted)
            for batch in _batches(wanted, 64):
                self._copy_records(batch, have)
        held = [name for names in self.dst_records.values() for name in names]
        self._note(newest_record_time(self.dst, held))

    def copy_records(self, names: list[str]) -> None:
        """These archive records alone, those the destination lacks (the WAL a group
        point restores from, when the archives are not copied whole)."""
        for prefix in ARCHIVE_PREFIXES:
            mine = [n for n in names if n.startswith(prefix)]
            if not mine:
                continue
            have = self.dst_records.get(prefix)
            if have is None:
                have = self.dst_records[prefix] = set(self.dst.list_names(prefix))
            self.src_records.extend(mine)
            wanted = sorted(n for n in mine if n not in have)
            self.stats.records_present += len(mine) - len(wanted)
            for batch in _batches(wanted, 64):
                self._copy_records(batch, have)

    def _copy_records(self, names: list[str], have: set[str]) -> None:
        docs: list[tuple[str, dict[str, Any], list[bytes]]] = []
        for name in names:
            try:
                doc = json.loads(self.src.unseal(self.src.load_object(name)))
                docs.append((name, doc, [bytes.fromhex(b) for b in doc["blobs"]]))
            except ObjectNotFound:
                continue  # expired by the source's retention meanwhile
            except (ValueError, KeyError, TypeError) as exc:
                raise RepositoryCorrupt(f"{name}: malformed archive record: {exc}") from None
        # the blocks of the whole batch at once: every worker busy, packs read in runs
        mapping = self.blobs.copy([b for _name, _doc, ids in docs for b in ids])
        ready: list[tuple[str, bytes, list[bytes]]] = []
        for name, doc, src_ids in docs:
            needs = [mapping[b] for b in src_ids]
            doc["blobs"] = [b.hex() for b in needs]
            ready.append((name, json.dumps(doc, sort_keys=True).encode(), needs))
        self.dst.flush()  # blocks and their index before the records that name them
        for name, plain, needs in ready:
            try:
                self.dst.save_object(name, self.dst.seal(plain), needs)
            except AlreadyExists:
                self.stats.records_present += 1  # a racing copy stored it first
                have.add(name)
                continue
            have.add(name)
            self.stats.records_copied += 1
            self._event("record", {"name": name})

    # ---- snapshots -----------------------------------------------------------------

    def copied_origins(self) -> dict[str, Snapshot]:
        return {s.original: s for s in all_snapshots(self.dst) if s.original}

    def copy_snapshots(self, snapshots: list[Snapshot]) -> list[Snapshot]:
        done = self.copied_origins()
        written = []
        for snap in snapshots:
            if origin(snap) in done:
                self.stats.snapshots_present += 1
                self._note(snap.time)
                continue
            copy = self._copy_snapshot(snap, done)
            done[origin(snap)] = copy
            written.append(copy)
        return written

    def _copy_snapshot(self, snap: Snapshot, done: dict[str, Snapshot]) -> Snapshot:
        self._new_trees = []
        catalog = snap.catalog_tree  # the DICOM catalog's records: a tree like the files'
        walked = [t for root in snap.roots() for t in self._copy_data(root)]
        if self.blobs.same_ids:  # the trees came along with the data, ids unchanged
            tree, self._new_trees = snap.tree, walked
        else:
            tree = self._tree(snap.tree)
            catalog = self._tree(catalog) if catalog is not None else None
        self.dst.flush()
        self._verify(tree)
        if catalog is not None and not self.dst.has_blob(catalog):
            raise IntegrityError("the copied snapshot's DICOM catalog is not in the destination")
        if self.blobs.same_ids:
            for tree_id in walked:  # complete below, verified: skipped from now on
                self.map.add_tree(tree_id, tree_id)
        parent = done.get(snap.parent) if snap.parent else None
        copy = Snapshot(
            time=snap.time, tree=tree, paths=list(snap.paths), hostname=snap.hostname,
            username=snap.username, tags=list(snap.tags),
            parent=parent.id if parent else None, program_version=snap.program_version,
            summary=dict(snap.summary), source=dict(snap.source), original=origin(snap),
            dicom_catalog=dict(snap.dicom_catalog, **({"tree": catalog.hex()} if catalog
                                                      else {})),
        )
        save_snapshot(self.dst, copy)
        if load_snapshot(self.dst, copy.id).tree != tree:
            raise IntegrityError(f"snapshot {copy.short_id} reads back differently")
        self.stats.snapshots_copied += 1
        self._note(snap.time)
        self._event("snapshot", {"id": snap.id, "copy_id": copy.id,
                                 "time": clock.format_time(snap.time)})
        return copy

    def _trusted(self, src_tree: bytes) -> bytes | None:
        mapped = self.map.tree(src_tree)
        return mapped if mapped is not None and self.dst.has_blob(mapped) else None

    def _copy_data(self, root: bytes) -> list[bytes]:
        """Phase one: the data blobs of every tree not yet copied, in batches that span
        many directories and packs, so all workers stay busy and packs are read in runs
        (with a shared key, the trees themselves too). Returns the trees walked."""
        stack, batch, walked = [root], [], []
        while stack:
            tree_id = stack.pop()
            if self._trusted(tree_id) is not None:
                continue
            walked.append(tree_id)
            if self.blobs.same_ids:
                batch.append(tree_id)
            for node in load_tree(self.src, tree_id):
                if node.type == "file":
                    batch.extend(node.content)
                if node.subtree is not None:
                    stack.append(node.subtree)
            if len(batch) >= DATA_BATCH:
                self.blobs.copy(batch)
                batch = []
        self.blobs.copy(batch)
        return walked

    def _tree(self, src_tree: bytes) -> bytes:
        """The destination id of this tree, copying it and everything below if needed."""
        """Phase two: the destination id of this tree, rewriting it and everything below
        it with the destination's ids (its data is already there: the map knows it)."""
        mapped = self._trusted(src_tree)
        if mapped is not None:
            return mapped
        nodes = load_tree(self.src, src_tree)
        content = self.blobs.copy([c for n in nodes if n.type == "file" for c in n.content],
                                  tally=False)
        for node in nodes:
            if node.type == "file":
                node.content = [content[c] for c in node.content]
            if node.subtree is not None:
                node.subtree = self._tree(node.subtree)
        result = self.dst.save_blob(BlobType.TREE, encode_tree(nodes))
        if result.added:
            self.stats.trees_written += 1
            self._new_trees.append(result.id)
        self.map.add_tree(src_tree, result.id)
        return result.id

    def _verify(self, root: bytes) -> None:
        """Read back every tree this snapshot added (authenticated and hashed on the way)
        and check that everything they name is in the destination's index."""
        for tree_id, raw in read_back(self.dst, self._new_trees, self._pool):
            nodes = decode_tree(raw)
            needed = [c for n in nodes if n.type == "file" for c in n.content]
            needed += [n.subtree for n in nodes if n.subtree is not None]
            missing = self.dst.missing_blobs(needed)
            if missing:
                raise IntegrityError(
                    f"copy left tree {tree_id.hex()[:16]} with {len(missing)} blob(s) "
                    "missing in the destination")
        if not self.dst.has_blob(root):
            raise IntegrityError("the copied snapshot's root tree is not in the destination")

    def verify_packs(self) -> None:
        """Every pack this run stored is present with the size written: one HEAD each, or
        one listing of the packs when that takes fewer requests (a first full copy)."""
        written = self.dst.written_packs[self._start[2]:]
        if not written:
            return
        pages = self.dst.cache.pack_count() // LIST_PAGE + 1
        if len(written) >= LIST_OVER_HEAD * pages:
            listed = {info.name: info.size for info in self.dst.backend.list(DATA_PREFIX)}
            sizes: Iterable[int | None] = [listed.get(name) for name, _size in written]
        else:
            sizes = self._pool.map(lambda pack: self._size(pack[0]), written)
        for (name, size), found in zip(written, sizes, strict=True):
            if found is None:
                raise IntegrityError(f"{name} was written but is missing in the destination")
            if found != size:
                raise IntegrityError(f"{name} holds {found} bytes in the destination, "
                                     f"{size} were written")

    def _size(self, name: str) -> int | None:
        try:
            return self.dst.backend.stat(name).size
        except ObjectNotFound:
            return None

    def finish(self) -> CopyStats:
        self.dst.flush()
        self.verify_packs()
        self.map.revalidate(self.dst.index_names())  # remember the index files written
        self.stats.stored_bytes = self.dst.stats.stored_added - self._start[0]
        self.stats.packs_written = self.dst.stats.packs_written - self._start[1]
        return self.stats

    # ---- helpers -------------------------------------------------------------------

    def _note(self, when: datetime | None) -> None:
        if when is None:
            return
        if self.stats.newest_point is None or when > self.stats.newest_point:
            self.stats.newest_point = when

    def _event(self, kind: str, details: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(kind, details)


def newest_record_time(repo: Repository, names: Iterable[str] | None = None
                       ) -> datetime | None:
    """When the newest WAL/binlog record was archived (the newest per archive is the
    last name in its directory listing; the newest of those wins). `names`: the record
    names when already listed."""
    if names is None:
        names = (n for prefix in ARCHIVE_PREFIXES for n in repo.list_names(prefix))
    last: dict[str, str] = {}
    for name in names:
        prefix = next((p for p in ARCHIVE_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            continue
        archive = prefix + name[len(prefix):].split("/", 1)[0]
        last[archive] = max(last.get(archive, ""), name)
    newest: datetime | None = None
    for name in last.values():
        try:
            doc = json.loads(repo.unseal(repo.load_object(name)))
            when = clock.parse_time(str(doc["archived"]))
        except (ObjectNotFound, ValueError, KeyError, TypeError, IntegrityError):
            continue  # a time for the status report only: never fail a copy for it
        newest = when if newest is None else max(newest, when)
    return newest


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
