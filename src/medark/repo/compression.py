"""Per-blob zstd compression that skips data which will not shrink.

Already-compressed DICOM pixel data (JPEG, JPEG 2000) is common in PACS stores; trying
a small sample at level 1 first avoids spending a core compressing it for nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import zstandard

from medark.errors import IntegrityError, UsageError

SAMPLE_BYTES = 64 * 1024
SAMPLE_MAX_RATIO = 0.92  # sample must shrink at least this much at level 1
KEEP_MAX_RATIO = 0.97  # full result must be smaller than this share of the input
MIN_BYTES = 64  # shorter data is stored as is
DEFAULT_LEVEL = 3


@dataclass(frozen=True)
class CompressionSpec:
    algorithm: str  # "zstd" or "none"
    level: int = DEFAULT_LEVEL

    def label(self) -> str:
        return "none" if self.algorithm == "none" else f"zstd:{self.level}"


def parse_compression(text: str) -> CompressionSpec:
    """'zstd', 'zstd:N' (N in 1..19, or negative for the fast levels), 'none' or 'off'."""
    if text in ("none", "off"):
        return CompressionSpec("none", 0)
    algo, _, level = text.partition(":")
    if algo != "zstd":
        raise UsageError(f"unknown compression {text!r}: use zstd, zstd:N or none")
    if not level:
        return CompressionSpec("zstd", DEFAULT_LEVEL)
    try:
        value = int(level)
    except ValueError:
        raise UsageError(f"invalid zstd level in {text!r}") from None
    if not -7 <= value <= 19 or value == 0:
        raise UsageError(f"zstd level must be 1..19 (or -7..-1), not {value}")
    return CompressionSpec("zstd", value)


class Compressor:
    """Thread-safe: each thread keeps its own zstd contexts."""

    def __init__(self, spec: CompressionSpec) -> None:
        self.spec = spec
        self._local = threading.local()

    def _contexts(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdCompressor]:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = (
                zstandard.ZstdCompressor(level=self.spec.level, write_content_size=True),
                zstandard.ZstdCompressor(level=1),
            )
            self._local.ctx = ctx
        return ctx

    def tries(self, data: bytes | memoryview) -> bool:
        """Whether `compress` judges this data at all (so None from it means "will not
        shrink", which backup's ransomware detection reads as high entropy)."""
        return self.spec.algorithm != "none" and len(data) >= MIN_BYTES

    def compress(self, data: bytes | memoryview) -> bytes | None:
        """Compressed bytes, or None when storing the data as is is better."""
        if not self.tries(data):
            return None
        full, probe = self._contexts()
        if len(data) > 2 * SAMPLE_BYTES:
            middle = len(data) // 2
            sample = data[middle : middle + SAMPLE_BYTES]
            if len(probe.compress(sample)) > SAMPLE_MAX_RATIO * len(sample):
                return None
        out = full.compress(data)
        return out if len(out) < KEEP_MAX_RATIO * len(data) else None


_DECOMPRESSORS = threading.local()


def _read_up_to(reader: Any, limit: int) -> bytes:
    parts: list[bytes] = []
    left = limit
    while left > 0:
        part = reader.read(min(left, 1 << 20))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _most_from(frame_length: int) -> int:
    """The most a zstd frame of this many bytes can hold: a block holds at most 128 KiB
    and takes at least 4 bytes (a 3-byte header and an RLE byte). A length beyond it is
    refused before zstd allocates an output buffer of that size."""
    return (frame_length // 4 + 1) * 128 * 1024


def decompress(data: bytes, expected_length: int) -> bytes:
    """The plaintext of one blob, `expected_length` bytes long (from the index). Memory
    follows the frame, never the index alone: zstd allocates max_output_size up front
    for a frame that does not record its size, so such a frame (Medark writes none) is
    decompressed as a stream, and one recording another size is refused unread."""
    ctx = getattr(_DECOMPRESSORS, "ctx", None)
    if ctx is None:
        ctx = zstandard.ZstdDecompressor()
        _DECOMPRESSORS.ctx = ctx
    if expected_length > _most_from(len(data)):
        raise IntegrityError("decompressed length does not match the index")
    try:
        size = zstandard.frame_content_size(data)
        if size == -1:
            # never more than one byte past the expected length (a frame that expands
            # a few bytes into gigabytes must not be held in memory to be refused)
            with ctx.stream_reader(data) as reader:
                out = _read_up_to(reader, expected_length + 1)
        elif size != expected_length:
            raise IntegrityError("decompressed length does not match the index")
        else:
            out = ctx.decompress(data, max_output_size=expected_length)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"decompression failed: {exc}") from None
    if len(out) != expected_length:
        raise IntegrityError("decompressed length does not match the index")
    return out
