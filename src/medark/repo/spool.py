"""Where a writer spools its packs when the repository is remote (S3, `rest:`): one
directory per process under the repository's cache directory, so that a writer killed
half-way (kill -9, a power cut) leaves its spool where the next writer finds it, instead
of in the system temp directory, which nothing would ever sweep.

Each process holds an exclusive flock on `<name>.lock` beside its directory for as long
as it lives; the kernel drops the lock when the process dies, however it dies. The next
writer sweeps the directories whose lock it can take: their owner is gone, and the packs
in them were never stored (a stored pack's spool file is removed once uploaded, and a
pack that reached the backend is found by the next run's adoption, repo/adopt.py).
A local repository spools inside itself (`.spool/`), which prune sweeps under the
exclusive lock instead: that directory may be shared between hosts, where flock is not
to be trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from pathlib import Path

LOCK_SUFFIX = ".lock"


class ProcessSpool:
    """This process's spool directory under `root`, created at the first `path()`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dir: Path | None = None
        self._lock_fd = -1
        self.swept: tuple[int, int] = (0, 0)
        """(files, bytes) of dead writers' spools removed when this one was created."""

    def path(self) -> str:
        if self._dir is None:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.swept = sweep(self.root)
            name = f"{os.getpid()}-{secrets.token_hex(4)}"
            # Locked before it gets the name a sweeper looks for, so no sweeper can
            # take a live writer's lock in between.
            fresh = self.root / (name + ".new")
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(fresh, self.root / (name + LOCK_SUFFIX))
            self._lock_fd = fd
            directory = self.root / name
            directory.mkdir(mode=0o700)
            self._dir = directory
        return str(self._dir)

    def close(self) -> None:
        """Remove this process's spool (its packs are stored or abandoned by now)."""
        if self._dir is None:
            return
        shutil.rmtree(self._dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._dir.with_name(self._dir.name + LOCK_SUFFIX))
        os.close(self._lock_fd)
        self._dir, self._lock_fd = None, -1


def sweep(root: Path) -> tuple[int, int]:
    """Remove the spools of writers that are gone: (files, bytes)."""
    files = size = 0
    for lock in root.glob(f"*{LOCK_SUFFIX}"):
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            directory = lock.with_name(lock.name[: -len(LOCK_SUFFIX)])
            for leftover in directory.glob("*"):
                with contextlib.suppress(FileNotFoundError):
                    size += leftover.stat().st_size
                    files += 1
            shutil.rmtree(directory, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        finally:
            os.close(fd)
    return files, size
