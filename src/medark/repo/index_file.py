"""Repository index files: which pack holds which blob, sealed and compressed.

Binary layout of the plaintext (then zstd, then sealed):
  magic b"MKIX1" | n_superseded (u32) | n_superseded × index id (32 bytes)
  repeated: pack id (32) | n_blobs (u32) | n_blobs × (type u8, id 32, offset u32,
  length u32, raw length u32)
Index files are written once; prune writes new ones that list the ids they supersede.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import zstandard

from medark.errors import IntegrityError
from medark.repo.pack import PackedBlob, blob_type_of

MAGIC = b"MKIX1"
INDEX_PREFIX = "index/"
COUNT = struct.Struct("<I")
BLOB = struct.Struct("<B32sIII")
MAX_PACKS_PER_FILE = 4096


@dataclass
class IndexContents:
    packs: dict[bytes, list[PackedBlob]] = field(default_factory=dict)
    superseded: list[bytes] = field(default_factory=list)


def encode(packs: Iterable[tuple[bytes, list[PackedBlob]]], superseded: list[bytes]) -> bytes:
    parts = [MAGIC, COUNT.pack(len(superseded)), *superseded]
    for pack_id, blobs in packs:
        parts.append(pack_id)
        parts.append(COUNT.pack(len(blobs)))
        parts.extend(BLOB.pack(b.type, b.id, b.offset, b.length, b.raw_length) for b in blobs)
    return zstandard.ZstdCompressor(level=3).compress(b"".join(parts))


def iter_packs(compressed: bytes) -> Iterator[tuple[bytes, list[PackedBlob]]]:
    """Packs of an index file; its superseded list is read by `superseded_ids`."""
    data = _plain(compressed)
    offset = _skip_superseded(data)
    while offset < len(data):
        if offset + 36 > len(data):
            raise IntegrityError("index file is truncated")
        pack_id = data[offset : offset + 32]
        (count,) = COUNT.unpack_from(data, offset + 32)
        offset += 36
        end = offset + count * BLOB.size
        if end > len(data):
            raise IntegrityError("index file is truncated")
        blobs = [
            PackedBlob(blob_type_of(t), blob_id, off, length, raw)
            for t, blob_id, off, length, raw in BLOB.iter_unpack(data[offset:end])
        ]
        offset = end
        yield pack_id, blobs


def superseded_ids(compressed: bytes) -> list[bytes]:
    data = _plain(compressed)
    start = len(MAGIC) + COUNT.size
    count = (_skip_superseded(data) - start) // 32
    return [data[start + 32 * i : start + 32 * (i + 1)] for i in range(count)]


def _plain(compressed: bytes) -> bytes:
    """The plaintext, decompressed as a stream: its size follows the data actually there,
    never the size a frame header claims (one claiming 4 GiB must not allocate 4 GiB)."""
    try:
        stream = zstandard.ZstdDecompressor().decompressobj()
        data: bytes = stream.decompress(compressed)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"index file does not decompress: {exc}") from None
    if not stream.eof:
        raise IntegrityError("index file does not decompress: its zstd frame is truncated")
    if not data.startswith(MAGIC):
        raise IntegrityError("index file has a bad magic number")
    return data


def _skip_superseded(data: bytes) -> int:
    """Where the pack list starts; IntegrityError when the superseded list overruns."""
    start = len(MAGIC) + COUNT.size
    if len(data) < start:
        raise IntegrityError("index file is truncated")
    count: int = COUNT.unpack_from(data, len(MAGIC))[0]
    if start + 32 * count > len(data):
        raise IntegrityError("index file is truncated (its superseded list overruns it)")
    return start + 32 * count
