"""Opening and reading one file of a backup, shared by the backup's threads and its
small-file reader processes (engine/small_files.py), so both follow the same rules."""

from __future__ import annotations

import errno
import os
import stat

O_NOATIME = getattr(os, "O_NOATIME", 0)


def open_for_reading(path: str) -> int:
    """Without following a symlink swapped in since the scan, and without touching the
    access time where the kernel lets this user (O_NOATIME needs the file's owner or
    CAP_FOWNER)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW
    try:
        return os.open(path, flags | O_NOATIME)
    except PermissionError:
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return os.open(path, flags)
        raise


def read_whole(fd: int, size_hint: int) -> bytes:
    """The whole file. The first read asks for one byte more than expected: a regular
    file returns less than asked only at its end, so the usual case is one read."""
    parts = []
    request = size_hint + 1
    while True:
        block = os.read(fd, request)
        if block:
            parts.append(block)
        if len(block) < request:
            break
        request = 1 << 20
    if not parts:
        return b""
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_small(path: str, size_hint: int) -> tuple[bytes, os.stat_result]:
    """A small file read whole, and its fstat after the read (compared with the scan's
    lstat by `unchanged_while_read`: one fstat per small file, not two)."""
    fd = open_for_reading(path)
    try:
        data = read_whole(fd, size_hint)
        return data, os.fstat(fd)
    finally:
        os.close(fd)


def same_version(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


Version = tuple[int, int, int, int, int]
"""Size, mtime_ns, ctime_ns, inode and device: a file with the same version is the same
file with the same content, mode, owner and links (changing any of those moves ctime)."""


def version(st: os.stat_result) -> Version:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def unchanged_while_read(before: Version, after: os.stat_result, data: bytes,
                         small: int) -> bool:
    """A small file read whole is taken as is when it is still the regular file the scan
    saw (its version), fully read, and still below the chunking size."""
    return (stat.S_ISREG(after.st_mode) and version(after) == before
            and len(data) == after.st_size and len(data) < small)
