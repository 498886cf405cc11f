"""Pack files: sealed blobs back to back, then a sealed header, then its 4-byte length.

The header lists, in order, each blob's type, id, sealed length and plaintext length
(0 when stored uncompressed), so a pack can be indexed from its own trailer alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from medark.errors import IntegrityError
from medark.repo.crypto import SEAL_OVERHEAD, Crypto

ENTRY = struct.Struct("<B32sII")  # type, blob id, sealed length, uncompressed length
TRAILER = struct.Struct("<I")
DATA_PREFIX = "data/"


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


def pack_name(pack_id: str) -> str:
    return f"{DATA_PREFIX}{pack_id[:2]}/{pack_id}"


def pack_id_from_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class PackBuilder:
    """Collects sealed blobs for one pack. Not thread-safe: callers hold a lock."""

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
        header = b"".join(
            ENTRY.pack(e.type, e.id, e.length, e.raw_length) for e in self.entries
        )
        sealed_header = crypto.seal(header)
        self.buffer += sealed_header
        self.buffer += TRAILER.pack(len(sealed_header))
        return self.buffer


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
        entries.append(PackedBlob(BlobType(blob_type), blob_id, offset, length, raw_length))
        offset += length
    if offset + header_len + TRAILER.size != pack_size:
        raise IntegrityError("pack header does not cover the pack")
    return entries
