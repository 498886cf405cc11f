"""Bandwidth limits (--limit-upload / --limit-download, KiB/s), as a backend wrapper.

Each transfer books its size on a shared virtual timeline of the link: a transfer of n
bytes occupies n / rate seconds, starting when the link is free (or when the transfer
began, if that is later). The caller returns only when its booking has ended, so over
any stretch longer than one object the average stays at or under the limit, however
many threads transfer at once; an idle link does not bank credit for a later burst.
Objects are sent whole, so within one object (a pack, up to the pack size) the line
rate is the link's own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from medark.storage.base import Backend, BackendProperties, ObjectInfo


class Pacer:
    """The shared timeline for one direction."""

    def __init__(self, bytes_per_second: float,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if bytes_per_second <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = bytes_per_second
        self._monotonic = monotonic
        self._sleep = sleep
        self._free_at = 0.0
        self._lock = threading.Lock()

    def book(self, nbytes: int, started: float) -> None:
        """Account for `nbytes` moved by a transfer that began at `started`; wait out
        its booking."""
        with self._lock:
            begin = max(self._free_at, started)
            self._free_at = begin + nbytes / self.rate
            until = self._free_at
        delay = until - self._monotonic()
        if delay > 0:
            self._sleep(delay)

    def now(self) -> float:
        return self._monotonic()


class RateLimitedBackend:
    def __init__(self, inner: Backend, upload: Pacer | None, download: Pacer | None) -> None:
        self.inner = inner
        self.upload = upload
        self.download = download

    def properties(self) -> BackendProperties:
        """One upload at a time: the limit, not latency, sets the pace, and each upload
        may run ahead of the timeline by its own size before waiting out its booking, so
        parallel uploads would leave in a burst. The index file naming a pack is then
        written when that pack's booking ends, so a link that fails costs a rerun only
        the pack in flight."""
        limited = self.upload is not None
        return replace(self.inner.properties(),
                       connections=1 if limited else self.inner.properties().connections)

    def save(self, name: str, data: bytes | bytearray) -> None:
        started = self._now(self.upload)
        self.inner.save(name, data)
        if self.upload is not None:
            self.upload.book(len(data), started)

    def save_file(self, name: str, path: str) -> None:
        started = self._now(self.upload)
        self.inner.save_file(name, path)
        if self.upload is not None:
            self.upload.book(os.path.getsize(path), started)

    def spool_dir(self) -> str | None:
        return self.inner.spool_dir()

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        started = self._now(self.download)
        data = self.inner.load(name, offset, length)
        if self.download is not None:
            self.download.book(len(data), started)
        return data

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def remove(self, name: str) -> None:
        self.inner.remove(name)

    def exists(self) -> bool:
        return self.inner.exists()

    def create(self) -> None:
        self.inner.create()

    def close(self) -> None:
        self.inner.close()

    @staticmethod
    def _now(pacer: Pacer | None) -> float:
        return pacer.now() if pacer is not None else 0.0

