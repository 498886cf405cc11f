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


READ_BLOCK = 1 << 20


def _final_chunks(cdc: FastCDC, buffer: bytearray, eof: bool) -> tuple[list[bytes], int]:
    """Copies of the chunks whose cut points cannot move when more data arrives."""
    ready: list[bytes] = []
    consumed = 0
    with memoryview(buffer) as view:
        for chunk in cdc.cut_buf(view):
            end = chunk.offset + chunk.length
            if end == len(buffer) and not eof and ready:
                break  # may only be the end of what was read so far
            ready.append(bytes(view[chunk.offset : end]))
            consumed = end
        del chunk
    return ready, consumed


class Chunker:
    """Cuts a stream into chunks; each yielded bytes object is owned by the caller."""

    def __init__(self, params: ChunkerParams) -> None:
        self.params = params

    def _fastcdc(self) -> FastCDC:
        p = self.params
        return FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size, seed=p.seed)

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Chunks of a stream, holding at most max_size + READ_BLOCK bytes (pyfastcdc's own
        stream reader holds twice max_size). A cut is final once it lies before the end
        of the buffered data, or at the end of the stream."""
        cdc = self._fastcdc()
        buffer = bytearray()
        eof = False
        while True:
            while not eof and len(buffer) < self.params.max_size:
                block = stream.read(READ_BLOCK)
                if block:
                    buffer += block
                else:
                    eof = True
            if not buffer:
                return
            ready, consumed = _final_chunks(cdc, buffer, eof)
            del buffer[:consumed]
            yield from ready

    def cut(self, data: bytes) -> Iterator[memoryview]:
        """Chunks of an in-memory buffer as views (no copies); they keep `data` alive."""
        view = memoryview(data)
        for chunk in self._fastcdc().cut_buf(view):
            yield view[chunk.offset : chunk.offset + chunk.length]
