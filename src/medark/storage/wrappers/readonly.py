"""A backend that refuses every write, for commands that must not change the repository
(check, restore, mount, listing a standby's copy) and for opening a repository the user
marked read-only: a bug or a wrong flag then fails loudly instead of altering backups."""

from __future__ import annotations

from collections.abc import Iterator

from medark.errors import BackendError
from medark.storage.base import Backend, BackendProperties, ObjectInfo


class ReadOnlyBackend:
    """Passes reads through; save, remove and create raise a permanent BackendError."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    def _refuse(self, what: str) -> BackendError:
        location = self.inner.properties().location
        return BackendError(f"{what}: the repository at {location} is opened read-only")

    def properties(self) -> BackendProperties:
        return self.inner.properties()

    def save(self, name: str, data: bytes | bytearray) -> None:
        raise self._refuse(f"saving {name}")

    def save_file(self, name: str, path: str) -> None:
        raise self._refuse(f"saving {name}")

    def spool_dir(self) -> str | None:
        return None

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.load(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def remove(self, name: str) -> None:
        raise self._refuse(f"removing {name}")

    def exists(self) -> bool:
        return self.inner.exists()

    def create(self) -> None:
        raise self._refuse(f"creating {self.inner.properties().location}")

    def close(self) -> None:
        self.inner.close()
