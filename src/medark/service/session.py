"""Opening repositories the same way for every command: location, password, cache."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from medark.config import environment as env
from medark.repo.compression import CompressionSpec
from medark.repo.locks import HeldLock
from medark.repo.repository import Repository
from medark.storage.registry import open_backend


def default_cache_dir() -> Path:
    configured = env.CACHE_DIR.get()
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "medark"


def init_repository(
    location: str, password: bytes, cipher: str, compression: CompressionSpec,
    cache_dir: Path | None,
) -> Repository:
    return Repository.init(open_backend(location), password, cipher, compression, cache_dir)


def require_repository(location: str) -> None:
    """Fail fast (exit 10) on a missing or foreign location, before asking for a password."""
    Repository.require(open_backend(location))


def open_repository(location: str, password: bytes, cache_dir: Path | None) -> Repository:
    return Repository.open(open_backend(location), password, cache_dir)


@contextmanager
def locked(
    repo: Repository, exclusive: bool, command: str, warn: Callable[[str], None]
) -> Iterator[HeldLock]:
    held = repo.lock(exclusive, command, warn)
    try:
        yield held
    finally:
        held.release()
