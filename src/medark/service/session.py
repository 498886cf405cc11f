"""Opening repositories the same way for every command: location, password, cache."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from medark.config import environment as env
from medark.errors import MedarkError, UsageError
from medark.repo.compression import CompressionSpec
from medark.repo.locks import HeldLock
from medark.repo.repository import Repository
from medark.repo.retention import LockPolicy
from medark.storage.base import Backend
from medark.storage.registry import open_backend
from medark.storage.wrappers.ratelimit import Pacer, RateLimitedBackend

if TYPE_CHECKING:  # the plan file's models (pydantic, ~100 ms to import): not for a backup
    from medark.config.plans import MedarkConfig


def default_cache_dir() -> Path:
    configured = env.CACHE_DIR.get()
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "medark"


def init_repository(
    location: str, password: bytes, cipher: str, compression: CompressionSpec,
    cache_dir: Path | None, lock: LockPolicy | None = None, like: Repository | None = None,
    extra: dict[str, object] | None = None,
) -> Repository:
    return Repository.init(open_backend(location), password, cipher, compression, cache_dir,
                           lock=lock, like=like, extra=extra)


def require_repository(location: str) -> Backend:
    """Fail fast (exit 10) on a missing or foreign location, before asking for a password.
    Returns the backend, checked, for open_repository to reuse."""
    backend = open_backend(location)
    try:
        Repository.require(backend)
    except BaseException:
        backend.close()
        raise
    return backend


def open_repository(location: str, password: bytes, cache_dir: Path | None,
                    limits: Limits | None = None, checked: Backend | None = None) -> Repository:
    """`checked`: the backend require_repository returned for `location` (not opened, not
    probed again)."""
    backend = checked if checked is not None else open_backend(location)
    if limits is not None:
        backend = limits.apply(backend)
    return Repository.open(backend, password, cache_dir, checked=checked is not None)


def configured_password(name: str, path: str | None, command: str | None) -> bytes:
    """The password of [repositories] `name` for a service (the daemon's helpers, DR, the
    management server): the first line of its password_file, else of password_command's
    output. Never from a prompt: nobody is at a terminal."""
    import subprocess  # a password command's only: not at every command's start

    try:
        if path:
            raw = Path(path).read_bytes()
        elif command:
            done = subprocess.run(shlex.split(command), capture_output=True, check=False,
                                  timeout=60)
            if done.returncode != 0:
                raise UsageError(f"repository {name}: password_command exited "
                                 f"{done.returncode}")
            raw = done.stdout
        else:
            raise UsageError(f"repository {name} has no password_file or password_command")
    except subprocess.TimeoutExpired:
        raise UsageError(f"repository {name}: password_command did not answer in 60 s"
                         ) from None
    except OSError as exc:
        raise UsageError(f"repository {name}: cannot read password_file {path}: "
                         f"{exc.strerror or exc}") from None
    line = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise UsageError(f"repository {name}: the password source gave an empty password")
    return line


def open_configured(config: MedarkConfig, name: str, cache_dir: Path | None = None
                    ) -> Repository:
    """Repository `name` of the configuration's [repositories], opened with its
    password_file/password_command and the cache (default_cache_dir() by default)."""
    conf = config.repositories.get(name)
    if conf is None:
        raise UsageError(f"no repository {name!r} in [repositories]")
    password = configured_password(name, conf.password_file, conf.password_command)
    return open_repository(conf.url, password, cache_dir or default_cache_dir())


class Limits:
    """--limit-upload / --limit-download for one process: every repository it opens
    shares the same budget (they share the host's link)."""

    def __init__(self, upload_kib: float | None, download_kib: float | None) -> None:
        self.upload = Pacer(upload_kib * 1024) if upload_kib else None
        self.download = Pacer(download_kib * 1024) if download_kib else None

    def apply(self, backend: Backend) -> Backend:
        if self.upload is None and self.download is None:
            return backend
        return RateLimitedBackend(backend, self.upload, self.download)


@contextmanager
def locked(
    repo: Repository, exclusive: bool, command: str, warn: Callable[[str], None]
) -> Iterator[HeldLock]:
    held = repo.lock(exclusive, command, warn)
    try:
        yield held
    except BaseException:
        try:  # the first failure is the one to report; a lock left behind goes stale
            held.release()
        except MedarkError as exc:
            warn(f"medark: could not remove the lock: {str(exc).splitlines()[0]}")
        raise
    held.release()
