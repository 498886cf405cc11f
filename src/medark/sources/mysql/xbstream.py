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
from collections.abc import Iterable, Iterator
from typing import IO

from medark.errors import UnsafeEntry
from medark.util.confine import split_name

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
            if path_len > MAX_PATH:  # not a name: do not buffer gigabytes to read it
                self.broken = f"a chunk names a path of {path_len} bytes"
                return
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


MAX_PATH = 4096
"""Longer than any name mariadb-backup writes (FN_REFLEN is 512)."""


class XbstreamGuard:
    """The bytes of an xbstream, each chunk passed on only once its name is known to be
    safe (relative, no `..`, no empty or NUL component: util/confine.py). mbstream -x
    skips such a name with a message but still exits 0, so a hostile stream would restore
    quietly incomplete; here the stream ends at the first one instead, and `check` names
    it once mbstream is done with what came before."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.refused: UnsafeEntry | None = None
        self._buf = bytearray()
        self._need = PREFIX
        self._skip = 0
        self._offset = 0

    def __iter__(self) -> Iterator[bytes]:
        for block in self._chunks:
            safe = self._scan(memoryview(block))
            if safe:
                yield safe
            if self.refused is not None:
                return
        if self._buf:
            yield bytes(self._buf)  # a truncated chunk: mbstream reports it

    def check(self) -> None:
        """UnsafeEntry, naming the entry, if the stream was cut short for one."""
        if self.refused is not None:
            raise self.refused

    def _scan(self, view: memoryview) -> bytes:
        out = bytearray()
        while view and self.refused is None:
            if self._skip:
                take = min(self._skip, len(view))
                out += view[:take]
                self._skip -= take
                self._offset += take
                view = view[take:]
                continue
            need = self._need - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            if len(self._buf) == self._need:
                self._header(out)
        return bytes(out)

    def _header(self, out: bytearray) -> None:
        buf = self._buf
        if bytes(buf[:8]) != MAGIC:
            self._refuse(f"bad chunk magic at offset {self._offset}")
            return
        path_len = struct.unpack_from("<I", buf, 10)[0]
        if path_len > MAX_PATH:
            self._refuse(f"a name of {path_len} bytes at offset {self._offset}")
            return
        if len(buf) < PREFIX + path_len:
            self._need = PREFIX + path_len
            return
        kind = chr(buf[9])
        if kind not in ("P", "E"):
            self._refuse(f"an unsupported chunk type {kind!r} at offset {self._offset}")
            return
        if len(buf) == PREFIX + path_len:
            name = bytes(buf[PREFIX:]).decode("utf-8", "surrogateescape")
            try:
                split_name(name, "the xbstream")
            except UnsafeEntry as exc:
                self.refused = UnsafeEntry(f"{exc} (nothing was written outside the target)")
                return
            if kind == "P":
                self._need = PREFIX + path_len + PAYLOAD_HEADER.size
                return
        else:
            self._skip = PAYLOAD_HEADER.unpack_from(buf, PREFIX + path_len)[0]
        out += buf
        self._offset += len(buf)
        self._buf = bytearray()
        self._need = PREFIX

    def _refuse(self, why: str) -> None:
        self.refused = UnsafeEntry(f"the xbstream cannot be followed ({why}); refusing "
                                   "the rest of it")
