"""Full packs stored in the background while the workers fill the next ones.

Uploading a pack takes as long as sealing it took, or longer on a slow link; done in the
worker that filled it, that worker would sit idle meanwhile (restic and kopia upload from
separate goroutines for the same reason). A few uploads run at once; a worker that fills
a pack while all slots are busy waits for one (backpressure: spooled packs are files, but
an S3 upload holds its pack in RAM). The first upload error is raised to the next caller,
so a backup whose link went down stops at its next pack, not at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the first upload, not at every command's start
    from concurrent.futures import Future, ThreadPoolExecutor


class PackUploads:
    def __init__(self, slots: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._max = slots
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running: list[tuple[Future[None], Callable[[], None]]] = []

    def submit(self, store: Callable[[], None], discard: Callable[[], None]) -> None:
        """Start `store` (one pack); waits while every slot is busy. `discard` drops the
        pack when it is not stored (an earlier upload failed, or close)."""
        self._slots.acquire()
        try:
            self.check()
            with self._lock:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(self._max, thread_name_prefix="upload")
                future = self._pool.submit(self._run, store)
                self._running.append((future, discard))
        except BaseException:
            self._slots.release()
            discard()
            raise

    def _run(self, store: Callable[[], None]) -> None:
        try:
            store()
        finally:
            self._slots.release()

    def check(self) -> None:
        """Raise the error of an upload that failed (finished uploads are forgotten)."""
        with self._lock:
            done = [f for f, _b in self._running if f.done()]
            self._running = [(f, b) for f, b in self._running if not f.done()]
        _raise_first(done)

    def wait(self) -> None:
        """Every pack submitted so far stored; the first error raised."""
        with self._lock:
            futures = [f for f, _b in self._running]
            self._running = []
        _raise_first(futures)

    def close(self) -> None:
        """Stop: uploads not started are dropped, running ones finish (their packs are
        not indexed, so nothing refers to them); no error is raised."""
        with self._lock:
            pool, self._pool = self._pool, None
            running, self._running = self._running, []
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for _future, discard in running:
            discard()


def _raise_first(futures: list[Future[None]]) -> None:
    first: BaseException | None = None
    for future in futures:
        exc = future.exception()  # waits for one still running
        if exc is not None and first is None:
            first = exc
    if first is not None:
        raise first
