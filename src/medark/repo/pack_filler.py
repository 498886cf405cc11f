"""Sealing blobs into complete pack files outside the repository's own writer: what a
backup's reader processes do with many small files, so that only blob ids, pack names
and entry lists cross between processes, never the data (engine/pack_processes.py).

A filled pack is sealed in the spool and handed back as a `SealedPack`; the repository
stores and indexes it like one of its own (Repository.store_sealed_pack). Until then
nothing refers to it: a process killed half-way leaves only a spool file, swept like any
other. Each filler has its own `Crypto`, hence its own random session id, so nonces never
repeat across processes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from medark.repo.compression import CompressionSpec, Compressor
from medark.repo.crypto import Crypto, get_suite
from medark.repo.pack import BlobType, PackedBlob, SpooledPack


@dataclass(frozen=True)
class SealerSettings:
    """What a process needs to seal blobs exactly as the repository would."""

    suite: str
    master_key: bytes = field(repr=False)
    compression: CompressionSpec
    pack_size: int
    spool_dir: str | None


@dataclass(frozen=True)
class SealedPack:
    """A complete pack file in the spool, not yet stored."""

    path: str
    pack_id: str
    rows: list[tuple[int, bytes, int, int, int]]
    """Its entries as plain tuples (type, id, offset, length, raw length): they cross a
    socket, and unpickling one dataclass per blob cost the receiver more than this."""
    size: int

    @property
    def entries(self) -> list[PackedBlob]:
        return [PackedBlob(BlobType(t), i, o, n, r) for t, i, o, n, r in self.rows]


@dataclass(frozen=True, slots=True)
class SealedBlob:
    """One blob sealed for a pack: its stored bytes and what the compressor made of it."""

    sealed: bytes
    raw_length: int
    """Plaintext length when stored compressed, 0 when stored as is (the pack's entry)."""
    shrank: bool | None
    """Whether compression shrank it; None when it was not tried (off, or tiny)."""


def seal_blob(crypto: Crypto, compressor: Compressor, data: bytes | memoryview,
              compressed: bytes | None = None) -> SealedBlob:
    """Compress (unless `compressed` is given) and seal one blob."""
    tried = compressor.tries(data)
    if compressed is None and tried:
        compressed = compressor.compress(data)
    if compressed is None:
        return SealedBlob(crypto.seal(data), 0, False if tried else None)
    return SealedBlob(crypto.seal(compressed), len(data), True if tried else None)


class PackFiller:
    """Seals data blobs into spooled packs of the repository's pack size. Not
    thread-safe: one per process."""

    def __init__(self, settings: SealerSettings) -> None:
        self.crypto = Crypto(get_suite(settings.suite), settings.master_key)
        self.compressor = Compressor(settings.compression)
        self.pack_size = settings.pack_size
        self._spool_dir = settings.spool_dir
        self._pack = self._new_pack()
        self._sealed: list[SealedPack] = []

    def _new_pack(self) -> SpooledPack:
        return SpooledPack(lambda: self._spool_dir)

    def seal(self, data: bytes) -> SealedBlob:
        return seal_blob(self.crypto, self.compressor, data)

    def add(self, blobs: list[tuple[bytes, SealedBlob]]) -> None:
        """Append sealed blobs with their ids to the open pack, one write for all of
        them; a pack that reaches the pack size is sealed and kept for `take`."""
        if blobs:
            self._pack.add_many(BlobType.DATA, [(blob_id, blob.sealed, blob.raw_length)
                                                for blob_id, blob in blobs])
        if len(self._pack) >= self.pack_size:
            self._seal_open_pack()

    def finish(self) -> None:
        """Seal the partly filled pack too (the end of a backup)."""
        if self._pack.entries:
            self._seal_open_pack()

    def take(self) -> list[SealedPack]:
        """The packs sealed since the last call; the caller now owns their files."""
        sealed, self._sealed = self._sealed, []
        return sealed

    def discard(self) -> None:
        """Remove every spool file this filler still owns (an abandoned backup)."""
        self._pack.discard()
        for pack in self.take():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pack.path)

    def _seal_open_pack(self) -> None:
        pack, self._pack = self._pack, self._new_pack()
        pack_id = pack.seal(self.crypto)
        rows = [(e.type.value, e.id, e.offset, e.length, e.raw_length) for e in pack.entries]
        self._sealed.append(SealedPack(pack.path, pack_id, rows, len(pack)))
