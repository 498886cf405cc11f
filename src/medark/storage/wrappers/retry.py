"""Retry transient backend failures with capped exponential backoff and jitter.

Backends only classify errors (BackendError.transient); the decision to try again lives
here, once, so every backend gets the same policy (restic internal/backend/retry).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from medark.errors import AlreadyExists, BackendError
from medark.storage.base import Backend, BackendProperties, ObjectInfo

T = TypeVar("T")

RetryNotice = Callable[[str, int, BackendError, float], None]
"""Called before each pause as (operation, failed attempt number, error, delay in seconds)."""


def _retryable(exc: BackendError) -> bool:
    # AlreadyExists is an answer, not a failure: retrying cannot change it.
    return exc.transient and not isinstance(exc, AlreadyExists)


class RetryBackend:
    """Wraps a backend so transient errors are retried; everything else passes through.

    A save retried after a transient error may find that the first attempt did land and
    raise AlreadyExists: that is passed up unchanged, and callers that store
    content-addressed objects treat it as success.
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 5,
        sleep: Callable[[float], None] = time.sleep,
        *,
        rng: random.Random | None = None,
        on_retry: RetryNotice | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        self.inner = inner
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._on_retry = on_retry

    def delay(self, failed: int) -> float:
        """Pause after the `failed`-th failed attempt (1-based): "equal jitter", i.e. a random
        value in [d/2, d] with d = min(max_delay, base_delay * 2**(failed-1)), so clients that
        failed together do not retry in lockstep yet each still backs off."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(failed - 1, 62))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _pause(self, what: str, failed: int, exc: BackendError) -> None:
        if failed >= self.attempts or not _retryable(exc):
            if failed > 1 and _retryable(exc):
                exc.add_note(f"gave up after {failed} attempts")
            raise exc
        pause = self.delay(failed)
        if self._on_retry is not None:
            self._on_retry(what, failed, exc, pause)
        self._sleep(pause)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        failed = 0
        while True:
            try:
                return fn()
            except BackendError as exc:
                failed += 1
                self._pause(what, failed, exc)

    def properties(self) -> BackendProperties:
        return self.inner.properties()

    def save(self, name: str, data: bytes | bytearray) -> None:
        self._call(f"save {name}", lambda: self.inner.save(name, data))

    def save_file(self, name: str, path: str) -> None:
        self._call(f"save {name}", lambda: self.inner.save_file(name, path))

    def spool_dir(self) -> str | None:
        return self._call("spool directory", self.inner.spool_dir)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(f"load {name}", lambda: self.inner.load(name, offset, length))

    def stat(self, name: str) -> ObjectInfo:
        return self._call(f"stat {name}", lambda: self.inner.stat(name))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Restart a listing that failed part-way, skipping the names already yielded, so the
        caller sees every object exactly once (restic's retry List does the same)."""
        seen: set[str] = set()
        failed = 0
        while True:
            try:
                for info in self.inner.list(prefix):
                    if info.name not in seen:
                        seen.add(info.name)
                        yield info
                return
            except BackendError as exc:
                failed += 1
                self._pause(f"list {prefix or '/'}", failed, exc)

    def remove(self, name: str) -> None:
        self._call(f"remove {name}", lambda: self.inner.remove(name))

    def exists(self) -> bool:
        return self._call("exists", self.inner.exists)

    def create(self) -> None:
        self._call("create", self.inner.create)

    def close(self) -> None:
        self.inner.close()
