"""An in-memory backend for tests and dry runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from medark.errors import AlreadyExists, BackendError, ObjectNotFound
from medark.storage.base import BackendProperties, ObjectInfo
from medark.storage.local import check_name, check_prefix


class MemoryBackend:
    """Holds objects in a dict; applies the same name rules as the filesystem backend so that
    tests on memory catch names that would fail on disk."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._created = False

    def properties(self) -> BackendProperties:
        return BackendProperties(location="mem:")

    def save(self, name: str, data: bytes | bytearray) -> None:
        check_name(name)
        with self._lock:
            if name in self.objects:
                raise AlreadyExists(f"{name} already exists")
            self.objects[name] = bytes(data)

    def save_file(self, name: str, path: str) -> None:
        with open(path, "rb") as f:
            self.save(name, f.read())

    def spool_dir(self) -> str | None:
        return None

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        check_name(name)
        if offset < 0 or (length is not None and length < 0):
            raise BackendError(f"reading {name}: invalid range offset={offset} length={length}")
        with self._lock:
            data = self.objects.get(name)
        if data is None:
            raise ObjectNotFound(f"{name} not found in the repository")
        if offset > len(data):
            raise BackendError(
                f"reading {name}: offset {offset} is past the end ({len(data)} bytes)"
            )
        end = len(data) if length is None else offset + length
        if end > len(data):
            raise BackendError(
                f"reading {name}: short read ({len(data) - offset} of {length} bytes)"
            )
        return data[offset:end]

    def stat(self, name: str) -> ObjectInfo:
        check_name(name)
        with self._lock:
            data = self.objects.get(name)
        if data is None:
            raise ObjectNotFound(f"{name} not found in the repository")
        return ObjectInfo(name, len(data))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        with self._lock:
            items = [(n, len(d)) for n, d in self.objects.items() if n.startswith(prefix)]
        for name, size in sorted(items):
            yield ObjectInfo(name, size)

    def remove(self, name: str) -> None:
        check_name(name)
        with self._lock:
            self.objects.pop(name, None)

    def exists(self) -> bool:
        return self._created or bool(self.objects)

    def create(self) -> None:
        self._created = True

    def close(self) -> None:
        return None
