"""Putting nodes back on disk: metadata (owner, mode, mtime) and the non-regular types.

Ownership is restored only when running as root (uid/gid from the node, as restic does);
chown comes before chmod because chown clears set-uid/set-gid bits. Every entry is made
under a temporary name and renamed into place, so an existing entry is replaced whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass

from medark.errors import NoSpace
from medark.snapshot.model import Node

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def running_as_root() -> bool:
    return os.geteuid() == 0


def no_space(exc: OSError, target: str) -> NoSpace | None:
    """The error to abort with when `exc` says the restore target is full."""
    if exc.errno in NO_SPACE_ERRNOS:
        return NoSpace(f"restore target {target}: no space left on device")
    return None


def _times(node: Node) -> tuple[int, int]:
    # Nodes keep no atime; restic's default restore sets atime = mtime as well.
    return node.mtime_ns, node.mtime_ns


def current_umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment, for
    every thread)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class Creator:
    """Who a restore creates files as, so that a file made with its final mode and
    already owned right needs no fchown or fchmod: two system calls (and journal updates)
    of the six a small file costs."""

    as_root: bool
    uid: int
    umask: int

    @classmethod
    def current(cls) -> Creator:
        return cls(running_as_root(), os.geteuid(), current_umask())

    def create_mode(self, node: Node, group: int | None) -> int:
        """The mode to create a file with: its own permission bits when it ends up owned
        as created (never set-id bits, which chown would clear), else owner-only."""
        return stat.S_IMODE(node.mode) & 0o777 if self._owned(node, group) else 0o600

    def apply_fd(self, fd: int, node: Node, group: int | None) -> None:
        """Owner, mode and mtime of a regular file still open; `group` is the group a file
        created in its directory gets (None: created owner-only under a temporary name)."""
        mode = stat.S_IMODE(node.mode)
        owned = self._owned(node, group)
        if self.as_root and not owned:
            os.fchown(fd, node.uid, node.gid)
        if not owned or mode != mode & 0o777 & ~self.umask:
            os.fchmod(fd, mode)
        os.utime(fd, ns=_times(node))

    def _owned(self, node: Node, group: int | None) -> bool:
        if group is None:
            return False
        return not self.as_root or (node.uid, node.gid) == (self.uid, group)


def new_file_group(directory: str) -> int:
    """The group a file created in `directory` gets: the directory's own when it is
    set-group-id, else the creator's."""
    st = os.stat(directory)
    return st.st_gid if st.st_mode & stat.S_ISGID else os.getegid()


def apply_path(path: str, node: Node, as_root: bool) -> None:
    """Owner, mode and mtime of a directory, symlink, fifo or device."""
    if as_root:
        os.lchown(path, node.uid, node.gid)
    if node.type != "symlink":  # Linux has no lchmod; a symlink's mode is meaningless
        os.chmod(path, stat.S_IMODE(node.mode))
    os.utime(path, ns=_times(node), follow_symlinks=False)


def make_dir(path: str) -> bool:
    """Create a directory (owner-only until its metadata is set at the end); an entry of
    another type in the way (a file, a symlink) is replaced, an existing directory kept.
    True when this call made it (so it was empty), False for one that was there."""
    try:
        os.mkdir(path, 0o700)
        return True
    except FileExistsError:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            return False
    os.unlink(path)
    os.mkdir(path, 0o700)
    return True


def make_special(tmp: str, node: Node, as_root: bool) -> bool:
    """Create a symlink, fifo or device at `tmp`; False when it cannot be made here
    (a device without root, a socket)."""
    if node.type == "symlink":
        os.symlink(node.linktarget, tmp)
    elif node.type == "fifo":
        os.mkfifo(tmp, 0o600)
    elif node.type in ("dev", "chardev"):
        if not as_root:
            return False
        kind = stat.S_IFBLK if node.type == "dev" else stat.S_IFCHR
        os.mknod(tmp, kind | 0o600, node.rdev)
    else:
        return False
    return True
