"""Carrying blobs from one repository to another.

Different keys: the source blob is read (whole runs of a pack in one ranged read),
authenticated and verified against its id, then stored in the destination under the
destination's id, which only the destination's key can compute. A blob the destination
already has is not stored again, so only missing chunks cross the link. When both
repositories compress the same way the stored compressed form is re-sealed as it is.

The same master key (`init --same-key-as`): ids are the same on both sides, so the
destination's index alone says what is missing, nothing is read for a blob it has, and a
pack whose every blob is missing is moved as it is, checked against its name (SHA-256 of
its bytes), the way rclone would move the file.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from medark.engine.copy_map import CopyMap
from medark.errors import IntegrityError
from medark.repo.pack import PackedBlob, pack_name
from medark.repo.repository import Repository

RANGE_GAP = 256 * 1024
"""Blobs of one pack closer than this are fetched in one read (the gap is read and
dropped: cheaper than a second request)."""


@dataclass
class BlobCounts:
    copied: int = 0
    """Blobs stored in the destination."""
    present: int = 0
    """Blobs read from the source that the destination already had (another snapshot,
    another source, or an earlier interrupted copy)."""
    reused: int = 0
    """Blobs known to be in the destination (by the map, or by id with a shared key):
    not even read."""
    packs_moved: int = 0
    """Whole packs moved as they are (shared key)."""
    bytes_read: int = 0
    plain_bytes: int = 0


class BlobCopier:
    def __init__(self, src: Repository, dst: Repository, idmap: CopyMap,
                 pool: ThreadPoolExecutor,
                 on_blob: Callable[[int], None] | None = None) -> None:
        self.src = src
        self.dst = dst
        self.map = idmap
        self.pool = pool
        self.counts = BlobCounts()
        self._lock = threading.Lock()
        self._on_blob = on_blob
        self._same_compression = src.config.compression == dst.config.compression
        self.same_ids = shares_ids(src, dst)

    def copy(self, src_ids: list[bytes], tally: bool = True) -> dict[bytes, bytes]:
        """Make sure the destination has these blobs; source id → destination id.
        `tally=False`: a second look at blobs already counted (the tree rewrite)."""
        unique = list(dict.fromkeys(src_ids))
        if self.same_ids:
            absent = self.dst.missing_blobs(unique)
            known = {i: i for i in unique if i not in absent}
        else:
            known = self.map.blobs(unique)
            if known:
                gone = self.dst.missing_blobs(list(set(known.values())))
                known = {s: d for s, d in known.items() if d not in gone}
        if tally:
            with self._lock:
                self.counts.reused += len(known)
        by_pack: dict[bytes, list[PackedBlob]] = {}
        for src_id in unique:
            if src_id not in known:
                pack_id, entry = self.src.locate(src_id)
                by_pack.setdefault(pack_id, []).append(entry)
        futures = [self.pool.submit(self._copy_from_pack, pack_id, entries)
                   for pack_id, entries in by_pack.items()]
        for future in futures:
            known.update(future.result())
        return known

    def _copy_from_pack(self, pack_id: bytes, entries: list[PackedBlob]) -> dict[bytes, bytes]:
        if self.same_ids and len(entries) == self.src.cache.pack_blob_count(pack_id):
            return self._move_pack(pack_id, entries)
        done: dict[bytes, bytes] = {}
        for run in _runs(sorted(entries, key=lambda e: e.offset)):
            start = run[0].offset
            length = run[-1].offset + run[-1].length - start
            data = memoryview(self.src.backend.load(pack_name(pack_id.hex()), start, length))
            for entry in run:
                sealed = data[entry.offset - start:entry.offset - start + entry.length]
                done[entry.id] = self._store(pack_id, entry, sealed)
            with self._lock:
                self.counts.bytes_read += length
        if not self.same_ids:
            self.map.add_blobs(done.items())
        return done

    def _move_pack(self, pack_id: bytes, entries: list[PackedBlob]) -> dict[bytes, bytes]:
        name = pack_name(pack_id.hex())
        data = self.src.backend.load(name)
        if hashlib.sha256(data).digest() != pack_id:
            raise IntegrityError(f"{name} in the source does not match its name")
        self.dst.store_raw_pack(pack_id, data, entries)
        plain = sum(e.plain_length for e in entries)
        with self._lock:
            self.counts.copied += len(entries)
            self.counts.packs_moved += 1
            self.counts.bytes_read += len(data)
            self.counts.plain_bytes += plain
        if self._on_blob is not None:
            self._on_blob(plain)
        return {e.id: e.id for e in entries}

    def _store(self, pack_id: bytes, entry: PackedBlob, sealed: memoryview) -> bytes:
        plain, compressed = self.src.open_blob(entry, sealed, pack_id)
        dst_id = entry.id if self.same_ids else self.dst.crypto.blob_id(plain)
        result = self.dst.save_blob(
            entry.type, plain, blob_id=dst_id,
            compressed=compressed if self._same_compression else None)
        with self._lock:
            if result.added:
                self.counts.copied += 1
            else:
                self.counts.present += 1
            self.counts.plain_bytes += len(plain)
        if self._on_blob is not None:
            self._on_blob(len(plain))
        return dst_id


def shares_ids(src: Repository, dst: Repository) -> bool:
    """Whether both repositories give a blob the same id (and can read each other's
    sealed blobs): the same master key and cipher suite (`init --same-key-as`)."""
    return (src.config.suite == dst.config.suite
            and hmac.compare_digest(src.master_key(), dst.master_key()))


def read_back(repo: Repository, blob_ids: list[bytes], pool: ThreadPoolExecutor,
              ) -> list[tuple[bytes, bytes]]:
    """(id, plaintext) of these blobs, read with one ranged read per run of a pack,
    packs in parallel; each blob authenticated and checked against its id."""
    by_pack: dict[bytes, list[PackedBlob]] = {}
    for blob_id in blob_ids:
        pack_id, entry = repo.locate(blob_id)
        by_pack.setdefault(pack_id, []).append(entry)

    def read(pack_id: bytes, entries: list[PackedBlob]) -> list[tuple[bytes, bytes]]:
        out = []
        for run in _runs(sorted(entries, key=lambda e: e.offset)):
            start = run[0].offset
            data = memoryview(repo.backend.load(
                pack_name(pack_id.hex()), start, run[-1].offset + run[-1].length - start))
            for e in run:
                sealed = data[e.offset - start:e.offset - start + e.length]
                out.append((e.id, repo.decode_blob(e, sealed, pack_id)))
        return out

    futures = [pool.submit(read, p, entries) for p, entries in by_pack.items()]
    return [pair for future in futures for pair in future.result()]


def _runs(entries: list[PackedBlob]) -> list[list[PackedBlob]]:
    """Entries (sorted by offset) grouped into runs worth one read each."""
    runs: list[list[PackedBlob]] = []
    for entry in entries:
        if runs:
            last = runs[-1][-1]
            if entry.offset - (last.offset + last.length) <= RANGE_GAP:
                runs[-1].append(entry)
                continue
        runs.append([entry])
    return runs
