"""The backend Protocol: every storage (local directory, S3, memory) offers exactly this.

Names are '/'-separated relative paths such as ``config``, ``keys/<id>``,
``data/ab/<id>``. An object is written once and never rewritten; a second save of
an existing name raises AlreadyExists. Retry, rate limits and logging are wrappers
(storage/wrappers), never code inside a backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int


@dataclass(frozen=True)
class BackendProperties:
    location: str
    """A printable location with no secrets in it."""
    has_atomic_replace: bool = True
    connections: int = 2
    """Uploads worth running at once: a remote store hides its per-request latency
    behind several (restic uses 5 connections for S3, rclone 4 transfers); a local disk
    gains nothing past two."""


@runtime_checkable
class Backend(Protocol):
    def properties(self) -> BackendProperties: ...

    def save(self, name: str, data: bytes | bytearray) -> None:
        """Store a new object durably; AlreadyExists if `name` exists."""
        ...

    def save_file(self, name: str, path: str) -> None:
        """Store the content of the closed local file `path` durably; AlreadyExists if
        `name` exists. The caller removes `path` afterwards. Large objects (packs) are
        spooled to a file so that they need not be held in memory."""
        ...

    def spool_dir(self) -> str | None:
        """A local directory where files for save_file are cheapest to write (on the
        repository's own filesystem, so that saving is a link); None: the system temp dir."""
        ...

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read `length` bytes (all to the end when None) at `offset`; ObjectNotFound if absent."""
        ...

    def stat(self, name: str) -> ObjectInfo:
        """Size of an object; ObjectNotFound if absent."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose name starts with `prefix` (e.g. 'snapshots/'), any order."""
        ...

    def remove(self, name: str) -> None:
        """Delete an object; a missing object is not an error."""
        ...

    def exists(self) -> bool:
        """Whether the storage location itself exists (not whether it holds a repository)."""
        ...

    def create(self) -> None:
        """Create the storage location (a directory, a bucket prefix) if missing."""
        ...

    def close(self) -> None: ...
