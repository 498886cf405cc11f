"""Pack files: sealed blobs back to back, then a sealed header, then its 4-byte length.

The header lists, in order, each blob's type, id, sealed length and plaintext length
(0 when stored uncompressed), so a pack can be indexed from its own trailer alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from medark.errors import AlreadyExists, IntegrityError
from medark.repo.crypto import SEAL_OVERHEAD, Crypto
from medark.storage.base import Backend

ENTRY = struct.Struct("<B32sII")  # type, blob id, sealed length, uncompressed length
TRAILER = struct.Struct("<I")
DATA_PREFIX = "data/"
SPOOL_PREFIX, SPOOL_SUFFIX = ".pack-", ".tmp"
"""Names of the spool files of packs being filled (SpooledPack)."""


class BlobType(IntEnum):
    DATA = 0
    TREE = 1


@dataclass(frozen=True)
class PackedBlob:
    type: BlobType
    id: bytes
    offset: int
    length: int
    """Sealed length stored in the pack."""
    raw_length: int
    """Plaintext length after decompression; 0 when stored without compression."""

    @property
    def plain_length(self) -> int:
        return self.raw_length or self.length - SEAL_OVERHEAD

    def where(self, pack_id: bytes) -> str:
        """This blob named in an error (made only then: a restore opens one per file)."""
        return f"blob {self.id.hex()[:16]} in pack {pack_id.hex()[:16]}"


def blob_type_of(value: int) -> BlobType:
    """The type byte of a stored entry; IntegrityError for one no writer uses."""
    try:
        return BlobType(value)
    except ValueError:
        raise IntegrityError(f"unknown blob type {value}") from None


def pack_name(pack_id: str) -> str:
    return f"{DATA_PREFIX}{pack_id[:2]}/{pack_id}"


def pack_id_from_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def sealed_header(crypto: Crypto, entries: list[PackedBlob]) -> bytes:
    """The pack's trailer: the sealed entry list, then its length."""
    header = b"".join(ENTRY.pack(e.type, e.id, e.length, e.raw_length) for e in entries)
    sealed = crypto.seal(header)
    return sealed + TRAILER.pack(len(sealed))


class PackBuilder:
    """Collects sealed blobs for one pack in memory (prune, tests). Not thread-safe."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.entries: list[PackedBlob] = []

    def __len__(self) -> int:
        return len(self.buffer)

    def add(self, blob_type: BlobType, blob_id: bytes, sealed: bytes, raw_length: int) -> None:
        self.entries.append(
            PackedBlob(blob_type, blob_id, len(self.buffer), len(sealed), raw_length)
        )
        self.buffer += sealed

    def finish(self, crypto: Crypto) -> bytearray:
        self.buffer += sealed_header(crypto, self.entries)
        return self.buffer


class PackSink(Protocol):
    def save_file(self, name: str, path: str) -> None: ...


@dataclass
class SaveResult:
    id: bytes
    added: bool
    stored: int
    """Bytes added to the repository (sealed, after compression); 0 for a duplicate."""
    compressed: bool | None = None
    """For an added blob: whether it shrank under compression; None when compression was
    not tried (off, or a tiny blob). Backup's ransomware detection reads it for free."""


@dataclass
class WriteStats:
    data_blobs: int = 0
    tree_blobs: int = 0
    plain_added: int = 0
    stored_added: int = 0
    packs_written: int = 0


class SpooledPack:
    """Collects sealed blobs for one pack in a local temp file, hashing as it goes, so a
    backup holds no pack in RAM (restic spools packs to temp files for the same reason).
    Not thread-safe: callers hold a lock. The file is created at the first blob."""

    def __init__(self, spool_dir: Callable[[], str | None]) -> None:
        self.spool_dir = spool_dir
        """Asked at the first blob: a repository opened only to read never creates it."""
        self.entries: list[PackedBlob] = []
        self._size = 0
        self._hash = hashlib.sha256()
        self._fd = -1
        self._path = ""

    def __len__(self) -> int:
        return self._size

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            import tempfile  # a pack's first blob: a read-only command never imports it

            self._fd, self._path = tempfile.mkstemp(prefix=SPOOL_PREFIX, suffix=SPOOL_SUFFIX,
                                                    dir=self.spool_dir())
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._hash.update(data)
        self._size += len(data)

    def add(self, blob_type: BlobType, blob_id: bytes, sealed: bytes, raw_length: int) -> None:
        self.add_many(blob_type, [(blob_id, sealed, raw_length)])

    def add_many(self, blob_type: BlobType, blobs: list[tuple[bytes, bytes, int]]) -> None:
        """(id, sealed bytes, raw length) of each blob, written with one system call."""
        offset = self._size
        self._write(blobs[0][1] if len(blobs) == 1 else b"".join(b for _i, b, _r in blobs))
        for blob_id, sealed, raw_length in blobs:
            self.entries.append(PackedBlob(blob_type, blob_id, offset, len(sealed),
                                           raw_length))
            offset += len(sealed)

    @property
    def path(self) -> str:
        return self._path

    def seal(self, crypto: Crypto) -> str:
        """Write the trailer and close the file: the pack is complete; its id returned."""
        self._write(sealed_header(crypto, self.entries))
        os.close(self._fd)
        self._fd = -1
        return self._hash.hexdigest()

    def store(self, crypto: Crypto, sink: PackSink) -> str:
        """Seal and save the pack under its content name (returned)."""
        pack_id = self.seal(crypto)
        save_spooled(sink, pack_id, self._path)
        return pack_id

    def discard(self) -> None:
        """Remove the temp file (after store, or when the backup is abandoned)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._path = ""


def save_spooled(sink: PackSink, pack_id: str, path: str) -> None:
    with contextlib.suppress(AlreadyExists):  # identical content already stored
        sink.save_file(pack_name(pack_id), path)


def parse_header(crypto: Crypto, tail: bytes, pack_size: int) -> list[PackedBlob]:
    """Entries of a pack from its trailing bytes (`tail` must hold the whole header)."""
    if len(tail) < TRAILER.size:
        raise IntegrityError("pack too short for a trailer")
    (header_len,) = TRAILER.unpack(tail[-TRAILER.size :])
    if header_len + TRAILER.size > min(len(tail), pack_size) or header_len < SEAL_OVERHEAD:
        raise IntegrityError("pack trailer names an impossible header length")
    sealed = tail[-TRAILER.size - header_len : -TRAILER.size]
    header = crypto.open(sealed)
    if len(header) % ENTRY.size:
        raise IntegrityError("pack header has a partial entry")
    entries = []
    offset = 0
    for blob_type, blob_id, length, raw_length in ENTRY.iter_unpack(header):
        entries.append(PackedBlob(blob_type_of(blob_type), blob_id, offset, length, raw_length))
        offset += length
    if offset + header_len + TRAILER.size != pack_size:
        raise IntegrityError("pack header does not cover the pack")
    return entries


def load_header(backend: Backend, crypto: Crypto, pack_id: bytes, size: int,
                guess: int) -> tuple[list[PackedBlob], int]:
    """(entries, bytes read) of a stored pack, from its tail alone: `guess` bytes first,
    then once more if the trailer names a longer header. IntegrityError when the header
    does not authenticate or does not describe the pack exactly."""
    name = pack_name(pack_id.hex())
    tail_len = min(size, max(guess, TRAILER.size))
    tail = backend.load(name, size - tail_len, tail_len)
    read = len(tail)
    if len(tail) >= TRAILER.size:
        (sealed_len,) = TRAILER.unpack(tail[-TRAILER.size:])
        wanted = sealed_len + TRAILER.size
        if len(tail) < wanted <= size:
            tail = backend.load(name, size - wanted, wanted)
            read += len(tail)
    return parse_header(crypto, tail, size), read
