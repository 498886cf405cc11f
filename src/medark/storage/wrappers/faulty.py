"""A backend that fails on purpose, so every engine command can be tested against storage
faults: injected errors, writes cut short by a crash, flipped bits and slow reads
(docs/architecture.md, convention 3; as kopia's internal/blobtesting, restic's mocks)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

from medark.errors import BackendError
from medark.storage.base import Backend, BackendProperties, ObjectInfo


class FaultyBackend:
    """Wraps a backend and injects faults. Every knob is a public attribute, so a test can
    let a command fail and then clear the fault (``faulty.fail_save_every = 0``) to check
    that the next run recovers.

    * ``fail_save_every=N``: the Nth, 2Nth, ... save raises before anything is stored; with
      ``save_lands=True`` the object is stored first and the error raised after, as when a
      network connection drops after the server committed the write.
    * ``fail_load_every``, ``fail_list_every``, ``fail_remove_every``: the same for those
      calls (a failing list first yields half of the objects, as a listing cut off mid-page).
    * ``truncate_save_after=K``: a save of more than K bytes dies after K bytes, as if the
      process crashed mid-write. By default nothing becomes visible, which is what a crash
      leaves behind with LocalBackend (a hidden temp file) or S3 (no object); with
      ``keep_truncated=True`` the first K bytes are stored under the name, as a backend
      without atomic writes would leave them.
    * ``corrupt_load=True``: every load returns its bytes with one bit flipped.
    * ``delay``: seconds to wait before each load (slow disk, slow network).

    Injected errors are ``BackendError(transient=transient)``.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        fail_save_every: int = 0,
        fail_load_every: int = 0,
        truncate_save_after: int | None = None,
        corrupt_load: bool = False,
        transient: bool = True,
        delay: float = 0.0,
        save_lands: bool = False,
        keep_truncated: bool = False,
        fail_list_every: int = 0,
        fail_remove_every: int = 0,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.fail_save_every = fail_save_every
        self.fail_load_every = fail_load_every
        self.fail_list_every = fail_list_every
        self.fail_remove_every = fail_remove_every
        self.truncate_save_after = truncate_save_after
        self.keep_truncated = keep_truncated
        self.save_lands = save_lands
        self.corrupt_load = corrupt_load
        self.transient = transient
        self.delay = delay
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {"save": 0, "load": 0, "list": 0, "remove": 0}
        """Calls seen per operation, faulty or not."""
        self.injected: dict[str, int] = {
            "save": 0,
            "load": 0,
            "list": 0,
            "remove": 0,
            "truncate": 0,
            "corrupt": 0,
        }
        """Faults injected per kind, so a test can assert that its fault actually fired."""

    def _tick(self, op: str, every: int) -> bool:
        """Count a call; True when this one is due to fail (thread-safe: the engine's
        upload and download pipelines call from several threads)."""
        with self._lock:
            self.calls[op] += 1
            due = every > 0 and self.calls[op] % every == 0
            if due:
                self.injected[op] += 1
            return due

    def _fault(self, what: str) -> BackendError:
        return BackendError(f"{what}: injected fault", transient=self.transient)

    def properties(self) -> BackendProperties:
        return self.inner.properties()

    def save(self, name: str, data: bytes | bytearray) -> None:
        fail = self._tick("save", self.fail_save_every)
        if fail and not self.save_lands:
            raise self._fault(f"saving {name}")
        cut = self.truncate_save_after
        if cut is not None and len(data) > cut:
            with self._lock:
                self.injected["truncate"] += 1
            if self.keep_truncated:
                self.inner.save(name, bytes(data[:cut]))
            raise self._fault(f"saving {name}: crashed after {cut} of {len(data)} bytes")
        self.inner.save(name, data)
        if fail:
            raise self._fault(f"saving {name} (the object was stored)")

    def save_file(self, name: str, path: str) -> None:
        """The same faults as save(), on the file's bytes (a test wrapper: memory is fine)."""
        with open(path, "rb") as f:
            self.save(name, f.read())

    def spool_dir(self) -> str | None:
        return self.inner.spool_dir()

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if self.delay > 0:
            self._sleep(self.delay)
        if self._tick("load", self.fail_load_every):
            raise self._fault(f"reading {name}")
        data = self.inner.load(name, offset, length)
        if self.corrupt_load and data:
            with self._lock:
                self.injected["corrupt"] += 1
                bit = self._rng.randrange(len(data) * 8)
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            data = bytes(flipped)
        return data

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if not self._tick("list", self.fail_list_every):
            yield from self.inner.list(prefix)
            return
        items = [*self.inner.list(prefix)]
        yield from items[: len(items) // 2]
        raise self._fault(f"listing {prefix or '/'}")

    def remove(self, name: str) -> None:
        if self._tick("remove", self.fail_remove_every):
            raise self._fault(f"removing {name}")
        self.inner.remove(name)

    def exists(self) -> bool:
        return self.inner.exists()

    def create(self) -> None:
        self.inner.create()

    def close(self) -> None:
        self.inner.close()
