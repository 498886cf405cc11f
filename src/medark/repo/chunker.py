"""Content-defined chunking (FastCDC 2020) with a per-repository secret gear seed.

The seed lives in the encrypted config, so chunk boundaries do not leak which known
files a repository holds (the fingerprinting attack restic's random polynomial blocks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc import FastCDC

from medark.util.sizes import KiB, MiB


@dataclass(frozen=True)
class ChunkerParams:
    min_size: int = 256 * KiB
    avg_size: int = 1 * MiB
    max_size: int = 8 * MiB
    seed: int = 0


class Chunker:
    """Cuts a stream into chunks; each yielded bytes object is owned by the caller."""

    def __init__(self, params: ChunkerParams) -> None:
        self.params = params

    def _fastcdc(self) -> FastCDC:
        p = self.params
        return FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size, seed=p.seed)

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Small files (below the minimum chunk size) come out as one chunk."""
        for chunk in self._fastcdc().cut_stream(stream):
            yield bytes(chunk.data)

    def cut(self, data: bytes) -> Iterator[memoryview]:
        """Chunks of an in-memory buffer as views (no copies); they keep `data` alive."""
        view = memoryview(data)
        for chunk in self._fastcdc().cut_buf(view):
            yield view[chunk.offset : chunk.offset + chunk.length]
