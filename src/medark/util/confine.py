"""Writing below a directory without ever leaving it (docs/design.md, "Restores stay
inside their target").

A restore usually runs as root, and what it unpacks (a base-backup tar, an xbstream, a
snapshot tree) may come from a compromised host or a stolen repository key. So an
archive's names are checked (no absolute name, no `..`, no empty or NUL component), and
every parent directory is reached one component at a time from a descriptor of the
target, with O_NOFOLLOW: a symbolic link, whether an earlier entry made it or it was
already there, is never walked through. New files are created with O_EXCL|O_NOFOLLOW, so
nothing already in place (a link above all) is opened instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from types import TracebackType

from medark.errors import UnsafeEntry

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def split_name(name: str, what: str = "the archive") -> list[str]:
    """The components of an archive entry's relative name ('.' components dropped, one
    trailing '/' allowed); UnsafeEntry for an absolute name, `..`, an empty component or
    a NUL byte."""
    body = name[:-1] if name.endswith("/") else name
    parts = body.split("/")
    if (not body or body.startswith("/") or "\0" in body or ".." in parts
            or "" in parts):
        raise UnsafeEntry(f"{what} holds an unsafe name {name!r} (absolute, '..', or an "
                          "empty component); refusing it")
    return [p for p in parts if p != "."]


class ConfinedDir:
    """A directory opened once; everything is made relative to its descriptor."""

    def __init__(self, root: str, what: str = "the archive") -> None:
        self.root = root
        self.what = what
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ConfinedDir:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _refuse(self, parts: Sequence[str], why: str) -> UnsafeEntry:
        return UnsafeEntry(f"{self.what}: entry {'/'.join(parts)!r} {why}; refusing it "
                           f"(nothing was written outside {self.root})")

    def open_dir(self, parts: Sequence[str], create: bool = True, mode: int = 0o700) -> int:
        """A descriptor (the caller closes it) of the directory `parts` below the root,
        missing components created with `mode` when `create`; a component that is a
        symbolic link or not a directory is refused."""
        fd = os.dup(self.fd)
        try:
            for i, part in enumerate(parts):
                try:
                    nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):  # made meanwhile:
                        os.mkdir(part, mode, dir_fd=fd)  # opened and checked below
                    nxt = self._open_existing(fd, part, parts[: i + 1])
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    raise self._blocked(fd, part, parts[: i + 1]) from None
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_existing(self, fd: int, part: str, so_far: Sequence[str]) -> int:
        try:
            return os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise self._blocked(fd, part, so_far) from None

    def _blocked(self, fd: int, part: str, so_far: Sequence[str]) -> UnsafeEntry:
        st = os.stat(part, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            return self._refuse(so_far, "is a symbolic link: nothing is written through it")
        return self._refuse(so_far, "is not a directory, yet entries lie below it")

    def mkdir(self, parts: Sequence[str], mode: int) -> None:
        """The directory itself (kept if it is one already), then its mode set on its
        descriptor."""
        fd = self.open_dir(parts, create=True, mode=0o700)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def create_file(self, parts: Sequence[str], mode: int) -> int:
        """A new regular file's descriptor, open for writing; an entry already at that
        name (a link, a file of an earlier entry) is refused."""
        if not parts:
            raise self._refuse(parts, "names the target itself")
        parent = self.open_dir(parts[:-1])
        try:
            return os.open(parts[-1], NEW_FILE_FLAGS, mode, dir_fd=parent)
        except FileExistsError:
            raise self._refuse(parts, "is already there (a repeated name or a link)") from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise self._refuse(parts, "is a symbolic link: nothing is written through it"
                               ) from None
        finally:
            os.close(parent)

    def symlink(self, parts: Sequence[str], target: str) -> None:
        """A symbolic link as an entry of its own (made, never followed afterwards)."""
        if not parts:
            raise self._refuse(parts, "names the target itself")
        parent = self.open_dir(parts[:-1])
        try:
            os.symlink(target, parts[-1], dir_fd=parent)
        except FileExistsError:
            raise self._refuse(parts, "is already there (a repeated name or a link)") from None
        finally:
            os.close(parent)


def private_dir(path: str) -> None:
    """A directory of our own at `path` (a spool beside a restore target): made 0700, or
    kept when a real directory is there from an earlier run; a symbolic link or anything
    else at the path is refused, so nothing is written through it."""
    try:
        os.mkdir(path, 0o700)
        return
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise UnsafeEntry(f"{path} is already there and is {kind}; refusing to write "
                          "through it (remove it and run the restore again)")
