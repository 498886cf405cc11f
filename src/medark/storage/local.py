"""A repository in a local directory (or any mounted filesystem such as NFS)."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable, Iterator
from pathlib import Path

from medark.errors import AlreadyExists, BackendError, NoSpace, ObjectNotFound
from medark.storage.base import BackendProperties, ObjectInfo
from medark.util.files import fsync_dir, temp_name

_MAX_COMPONENT_BYTES = 255  # NAME_MAX on every filesystem we support
_MAX_NAME_BYTES = 1024  # S3's key limit; keeps names portable between backends
SPOOL_DIR = ".spool"
"""Packs being written (hidden: list() skips it); on the repository's filesystem."""
COPY_BLOCK = 1 << 20


def _check_component(part: str, what: str, name: str) -> None:
    if part in ("", ".", ".."):
        raise BackendError(f"invalid {what} {name!r}: empty, '.' or '..' path component")
    if part.startswith("."):
        # Hidden names are reserved for temp files of unfinished writes, which list() skips.
        raise BackendError(f"invalid {what} {name!r}: a path component starts with '.'")
    if len(part.encode("utf-8", "surrogatepass")) > _MAX_COMPONENT_BYTES:
        raise BackendError(f"invalid {what} {name!r}: a path component is too long")


def check_name(name: str) -> str:
    """Reject names that would escape the root, hide from list() or not port between backends.

    Every backend applies the same rule (it lives here because the filesystem is the
    strictest backend), so a repository can be copied between backends unchanged.
    """
    if not isinstance(name, str) or not name:
        raise BackendError(f"invalid object name {name!r}")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise BackendError(f"invalid object name {name!r}: control character")
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise BackendError(f"invalid object name {name[:40]!r}...: too long")
    for part in name.split("/"):
        _check_component(part, "object name", name)
    return name


def check_prefix(prefix: str) -> str:
    """A list() prefix: '' or the start of a valid name ('data/', 'data/a', 'snapshots/')."""
    if not isinstance(prefix, str):
        raise BackendError(f"invalid list prefix {prefix!r}")
    if any(ord(c) < 0x20 or c == "\x7f" for c in prefix):
        raise BackendError(f"invalid list prefix {prefix!r}: control character")
    if prefix:
        # Every component before the last must be complete; the last may be partial or empty.
        *dirs, last = prefix.split("/")
        for part in dirs:
            _check_component(part, "list prefix", prefix)
        too_long = len(last.encode("utf-8", "surrogatepass")) > _MAX_COMPONENT_BYTES
        if last.startswith(".") or too_long:
            raise BackendError(f"invalid list prefix {prefix!r}")
    return prefix


def _wrap_os_error(exc: OSError, what: str) -> BackendError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"{what}: no space left on device")
    transient = exc.errno in (errno.EINTR, errno.EAGAIN, errno.EIO, errno.ETIMEDOUT)
    return BackendError(f"{what}: {exc.strerror or exc}", transient=transient)


def _not_found(name: str) -> ObjectNotFound:
    return ObjectNotFound(f"{name} not found in the repository")


# A name whose path runs into a directory or through a regular file is simply not an object.
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class LocalBackend:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self._made_dirs: set[Path] = set()

    def properties(self) -> BackendProperties:
        return BackendProperties(location=str(self.root))

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._made_dirs:
            return
        missing: list[Path] = []
        parent = directory
        while not parent.is_dir():
            missing.append(parent)
            if parent == parent.parent:
                break
            parent = parent.parent
        for new in reversed(missing):
            try:
                new.mkdir(mode=0o700)
            except FileExistsError:
                if not new.is_dir():
                    raise
            # The new entry is durable only once its parent directory is synced.
            fsync_dir(new.parent)
        self._made_dirs.add(directory)

    def save(self, name: str, data: bytes | bytearray) -> None:
        def write(fd: int) -> None:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]

        self._save_via_temp(name, write)

    def save_file(self, name: str, path: str) -> None:
        """Link the spooled file into place when it is on this filesystem (no copy)."""
        final = self._path(name)
        try:
            self._ensure_dir(final.parent)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(path, final)  # refuses to overwrite, as save() does
            except FileExistsError:
                raise AlreadyExists(f"{name} already exists") from None
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                self._copy_file(name, path)
                return
            fsync_dir(final.parent)
        except OSError as exc:
            raise _wrap_os_error(exc, f"saving {name}") from exc

    def _copy_file(self, name: str, path: str) -> None:
        def write(fd: int) -> None:
            with open(path, "rb") as src:
                while block := src.read(COPY_BLOCK):
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]

        self._save_via_temp(name, write)

    def spool_dir(self) -> str | None:
        spool = self.root / SPOOL_DIR
        try:
            self._ensure_dir(spool)
        except OSError as exc:
            raise _wrap_os_error(exc, f"creating {spool}") from exc
        return str(spool)

    def _save_via_temp(self, name: str, write: Callable[[int], None]) -> None:
        """temp file + fsync + link (which fails if the name exists) + directory fsync."""
        final = self._path(name)
        try:
            self._ensure_dir(final.parent)
            tmp = temp_name(final)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                try:
                    write(fd)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # link() fails if the name exists: an object is never rewritten.
                os.link(tmp, final)
            except FileExistsError:
                raise AlreadyExists(f"{name} already exists") from None
            finally:
                # Also on a failed write (ENOSPC, EIO): do not leave a partial temp file.
                tmp.unlink(missing_ok=True)
            fsync_dir(final.parent)
        except OSError as exc:
            raise _wrap_os_error(exc, f"saving {name}") from exc

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        if offset < 0 or (length is not None and length < 0):
            raise BackendError(f"reading {name}: invalid range offset={offset} length={length}")
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if offset > size:
                    raise BackendError(
                        f"reading {name}: offset {offset} is past the end ({size} bytes)"
                    )
                if offset:
                    f.seek(offset)
                data = f.read() if length is None else f.read(length)
        except _MISSING:
            raise _not_found(name) from None
        except OSError as exc:
            raise _wrap_os_error(exc, f"reading {name}") from exc
        if length is not None and len(data) != length:
            raise BackendError(f"reading {name}: short read ({len(data)} of {length} bytes)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = self._path(name).stat()
        except _MISSING:
            raise _not_found(name) from None
        except OSError as exc:
            raise _wrap_os_error(exc, f"stat {name}") from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise _not_found(name)  # a directory such as 'data' is not an object
        return ObjectInfo(name, st.st_size)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        directory, _, _start = check_prefix(prefix).rpartition("/")
        base = self.root / directory if directory else self.root
        if not base.is_dir():
            return

        def fail(exc: OSError) -> None:
            # os.walk would skip an unreadable directory silently: a listing with holes
            # would make check and prune miss objects, so fail instead.
            if isinstance(exc, FileNotFoundError):
                return
            raise _wrap_os_error(exc, f"listing {prefix or '/'}") from exc

        for dirpath, dirnames, filenames in os.walk(base, onerror=fail):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = os.path.relpath(dirpath, self.root)
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue  # temp files of unfinished writes
                rel = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                if not rel.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, filename))
                except FileNotFoundError:
                    continue  # removed while listing
                except OSError as exc:
                    raise _wrap_os_error(exc, f"listing {rel}") from exc
                if stat_mod.S_ISREG(st.st_mode):
                    yield ObjectInfo(rel, st.st_size)

    def remove(self, name: str) -> None:
        path = self._path(name)
        try:
            if path.is_dir():
                return  # not an object, so as good as missing
            path.unlink()
            fsync_dir(path.parent)
        except _MISSING:
            return
        except OSError as exc:
            raise _wrap_os_error(exc, f"removing {name}") from exc

    def exists(self) -> bool:
        return self.root.is_dir()

    def create(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise _wrap_os_error(exc, f"creating {self.root}") from exc

    def close(self) -> None:
        return None
