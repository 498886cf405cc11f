"""Pass an xbstream (mariadb-backup --stream=xbstream) through unchanged while keeping
copies of a few small members.

The backup point's binlog coordinates are written by mariadb-backup into the stream
itself (xtrabackup_binlog_info, while commits are blocked at BACKUP STAGE BLOCK_COMMIT, so
they match the copied data exactly); they are picked out as the bytes flow into the
repository, without staging the stream or reading it twice.

Chunk layout (MariaDB's xbstream_write.c): magic `XBSTCK01`, flags (1), type (1: 'P'
payload, 'E' end of file), path length (4, little endian), path; for 'P' then payload
length (8), payload offset (8), CRC32 (4) and the payload.
"""

from __future__ import annotations

import struct
from typing import IO

MAGIC = b"XBSTCK01"
PREFIX = 14
PAYLOAD_HEADER = struct.Struct("<QQI")
MAX_CAPTURE = 16 * 1024 * 1024


class XbstreamTap:
    """A readable stream over `source` that records the members named in `wanted`."""

    def __init__(self, source: IO[bytes], wanted: set[str]) -> None:
        self._source = source
        self._wanted = wanted
        self.captured: dict[str, bytes] = {}
        self.files = 0
        self.broken: str | None = None
        """Why the stream could not be followed (the bytes still pass through)."""
        self._buf = bytearray()
        self._need = PREFIX
        self._path = ""
        self._skip = 0
        self._capture: bytearray | None = None
        self._parts: dict[str, bytearray] = {}
        """Wanted members being collected (chunks of several files may interleave)."""

    def read(self, size: int = -1) -> bytes:
        block = self._source.read(size)
        if block and self.broken is None:
            self._scan(memoryview(block))
        return block

    def _scan(self, view: memoryview) -> None:
        while view and self.broken is None:
            if self._skip:
                take = min(self._skip, len(view))
                if self._capture is not None and len(self._capture) < MAX_CAPTURE:
                    self._capture += view[:take]
                self._skip -= take
                view = view[take:]
                continue
            need = self._need - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            if len(self._buf) == self._need:
                self._step()

    def _step(self) -> None:
        buf = self._buf
        if len(buf) == PREFIX:
            if bytes(buf[:8]) != MAGIC:
                self.broken = "bad chunk magic"
                return
            path_len = struct.unpack_from("<I", buf, 10)[0]
            self._need = PREFIX + path_len
            if path_len:
                return
        kind = chr(buf[9])
        path_len = struct.unpack_from("<I", buf, 10)[0]
        if len(buf) == PREFIX + path_len:
            self._path = bytes(buf[PREFIX:]).decode("utf-8", "surrogateescape")
            if kind == "E":
                self._end_of_file()
                return
            if kind != "P":
                self.broken = f"unsupported chunk type {kind!r}"
                return
            self._need = PREFIX + path_len + PAYLOAD_HEADER.size
            return
        length, _offset, _crc = PAYLOAD_HEADER.unpack_from(buf, PREFIX + path_len)
        self._capture = (self._parts.setdefault(self._path, bytearray())
                         if self._path in self._wanted else None)
        self._skip = length
        self._reset()

    def _end_of_file(self) -> None:
        self.files += 1
        if self._path in self._parts:
            self.captured[self._path] = bytes(self._parts.pop(self._path))
        self._capture = None
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._need = PREFIX
