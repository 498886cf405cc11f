"""Atomic local writes: temp file + fsync + rename, then fsync of the directory."""

from __future__ import annotations

import os
import pwd
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")


NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
"""A file that must not exist yet, never opened through a link planted at its name."""


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *,
                 owner: tuple[int, int] | None = None, sync_dir: bool = True) -> None:
    """Write `data` so that `path` either keeps its old content or holds all of the new one."""
    with atomic_stream(path, mode, owner=owner, sync_dir=sync_dir) as f:
        f.write(data)


@contextmanager
def atomic_stream(path: Path, mode: int = 0o600, *, owner: tuple[int, int] | None = None,
                  sync_dir: bool = True) -> Iterator[BinaryIO]:
    """A file to write in pieces that appears at `path` whole, or not at all (an error
    inside the block leaves `path` as it was). The temporary name is new and random and
    opened with O_EXCL|O_NOFOLLOW, its mode (whatever the umask) and owner (uid, gid) set
    on the descriptor, so a link planted in the directory is never written through; the
    rename replaces a link at `path` itself, never its target."""
    tmp = temp_name(path)
    fd = os.open(tmp, NEW_FILE, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def chown_tree(root: str, user: str) -> None:
    """Hand a restored tree to a database's OS user (servers refuse to run as root)."""
    entry = pwd.getpwnam(user)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
