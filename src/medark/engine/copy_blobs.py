"""Carrying data blobs from one repository to another.

The source blob is read (whole runs of a pack in one ranged read), authenticated and
verified against its id, then stored in the destination under the destination's id, which
only the destination's key can compute. A blob the destination already has is not
stored again, so only missing chunks cross the link. When both repositories compress the
same way the stored compressed form is re-sealed as it is, without compressing again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from medark.engine.copy_map import CopyMap
from medark.repo.pack import BlobType, PackedBlob, pack_name
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
    """Blobs the map knew to be in the destination: not even read."""
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

    def copy(self, src_ids: list[bytes]) -> dict[bytes, bytes]:
        """Make sure the destination has these data blobs; source id → destination id."""
        unique = list(dict.fromkeys(src_ids))
        known = self.map.blobs(unique)
        if known:
            gone = self.dst.missing_blobs(list(set(known.values())))
            known = {s: d for s, d in known.items() if d not in gone}
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
        self.map.add_blobs(done.items())
        return done

    def _store(self, pack_id: bytes, entry: PackedBlob, sealed: memoryview) -> bytes:
        plain, compressed = self.src.open_blob(entry, sealed, pack_id)
        dst_id = self.dst.crypto.blob_id(plain)
        result = self.dst.save_blob(
            BlobType.DATA, plain, blob_id=dst_id,
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
