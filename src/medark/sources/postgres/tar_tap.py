"""Pass a tar stream through unchanged while keeping copies of a few small members.

pg_basebackup writes the base backup as one tar stream; the backup_label (start LSN,
timeline) and backup_manifest (end LSN) inside it are what a restore needs, so they are
picked out as the bytes flow into the repository, without a second read.
"""

from __future__ import annotations

import re
from typing import IO

from medark.errors import SourceError

BLOCK = 512
MAX_CAPTURE = 256 * 1024 * 1024
MAX_LONG_NAME = 64 * 1024
"""A GNU long name longer than this is not a name (PATH_MAX is 4096): it is not kept."""
_OCTAL = re.compile(rb"[0-7]+")


def _octal(field: bytes) -> int | None:
    """A header's number; None when the field is neither octal nor GNU base-256."""
    if field and field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    return int(text, 8) if _OCTAL.fullmatch(text) else None


def _name(header: bytes) -> str:
    name = header[0:100].split(b"\0", 1)[0]
    prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
    full = prefix + b"/" + name if prefix else name
    return full.decode("utf-8", "surrogateescape")


class TarTap:
    """A readable stream over `source` that records members named in `wanted`
    (by path relative to the archive root, e.g. 'backup_label')."""

    def __init__(self, source: IO[bytes], wanted: set[str]) -> None:
        self._source = source
        self._wanted = wanted
        self.captured: dict[str, bytes] = {}
        self.members = 0
        self._header = bytearray()
        self._remaining = 0  # bytes of the current member's data (with padding) to skip
        self._data_left = 0  # of those, real data (not padding)
        self._capture: bytearray | None = None
        self._capture_name = ""
        self._long_name: str | None = None
        self._ended = False
        self._offset = 0  # of the next byte to scan, for messages

    def read(self, size: int = -1) -> bytes:
        block = self._source.read(size)
        if block:
            self._scan(memoryview(block))
        return block

    def _scan(self, view: memoryview) -> None:
        while view and not self._ended:
            if self._remaining:
                take = min(self._remaining, len(view))
                data_take = min(self._data_left, take)
                if self._capture is not None and data_take:
                    self._capture += view[:data_take]
                self._data_left -= data_take
                self._remaining -= take
                self._offset += take
                view = view[take:]
                if not self._remaining:
                    self._member_done()
                continue
            need = BLOCK - len(self._header)
            self._header += view[:need]
            self._offset += len(view[:need])
            view = view[need:]
            if len(self._header) == BLOCK:
                self._start_member(bytes(self._header))
                self._header.clear()

    def _start_member(self, header: bytes) -> None:
        if header == bytes(BLOCK):
            self._ended = True  # end-of-archive marker
            return
        size = _octal(header[124:136])
        if size is None:
            raise SourceError(f"the base backup's tar stream has a damaged header at offset "
                              f"{self._offset - BLOCK} (its size is not a number)")
        kind = header[156:157]
        name = self._long_name if self._long_name is not None else _name(header)
        self._long_name = None
        self._data_left = size
        self._remaining = (size + BLOCK - 1) // BLOCK * BLOCK
        self._capture = None
        if kind == b"L" and size <= MAX_LONG_NAME:  # GNU long name: names the next member
            self._capture, self._capture_name = bytearray(), "\0longname"
        elif (kind in (b"0", b"\0") and name.lstrip("./") in self._wanted
              and size <= MAX_CAPTURE):
            self._capture, self._capture_name = bytearray(), name.lstrip("./")
        if kind in (b"0", b"\0"):
            self.members += 1
        if not self._remaining:
            self._member_done()

    def _member_done(self) -> None:
        if self._capture is not None:
            if self._capture_name == "\0longname":
                self._long_name = bytes(self._capture).split(b"\0", 1)[0].decode(
                    "utf-8", "surrogateescape")
            else:
                self.captured[self._capture_name] = bytes(self._capture)
        self._capture = None
