"""Retry transient backend failures with capped exponential backoff, jitter and a deadline.

Backends only classify errors (BackendError.transient); the decision to try again lives
here, once, so every backend gets the same policy (restic internal/backend/retry). For
S3 this is the only retry layer: botocore's own retries are off (storage/s3.py), so one
call makes at most `attempts` requests, never botocore's attempts times ours.
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


class Retrier:
    """The retry policy and loop: up to `attempts` tries of one call, pauses growing from
    `base_delay` to `max_delay`, and no pause that would end past `deadline` seconds after
    the call began (None: no deadline). A call therefore takes at most the deadline plus
    one attempt's own timeouts, however many attempts are allowed.

    Shared by RetryBackend and by the few backend methods callers reach past the wrapper
    (S3 Object Lock calls), so each request path has exactly one retry loop."""

    def __init__(
        self,
        attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 5,
        sleep: Callable[[float], None] = time.sleep,
        *,
        deadline: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_retry: RetryNotice | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        if deadline is not None and deadline < 0:
            raise ValueError("the deadline must not be negative")
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.deadline = deadline
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng if rng is not None else random.Random()
        self._on_retry = on_retry

    def delay(self, failed: int) -> float:
        """Pause after the `failed`-th failed attempt (1-based): "equal jitter", i.e. a random
        value in [d/2, d] with d = min(max_delay, base_delay * 2**(failed-1)), so clients that
        failed together do not retry in lockstep yet each still backs off."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(failed - 1, 62))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def start(self) -> float:
        """The moment a call began (its deadline counts from here)."""
        return self._monotonic()

    def pause(self, what: str, failed: int, exc: BackendError, began: float) -> None:
        """Wait before the next attempt, or raise `exc` when there is none: the error is
        permanent, the attempts are used up, or the pause would end past the deadline."""
        if not _retryable(exc):
            raise exc
        if failed >= self.attempts:
            if failed > 1:
                exc.add_note(f"gave up after {failed} attempts")
            raise exc
        pause = self.delay(failed)
        if self.deadline is not None and \
                self._monotonic() - began + pause > self.deadline:
            exc.add_note(f"gave up after {failed} attempt(s): the next would start past "
                         f"the {self.deadline:g} s deadline")
            raise exc
        if self._on_retry is not None:
            self._on_retry(what, failed, exc, pause)
        self._sleep(pause)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        began = self.start()
        failed = 0
        while True:
            try:
                return fn()
            except BackendError as exc:
                failed += 1
                self.pause(what, failed, exc, began)


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
        deadline: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_retry: RetryNotice | None = None,
        retrier: Retrier | None = None,
    ) -> None:
        """`retrier`: a policy shared with the backend itself (then the other settings
        are ignored)."""
        self.inner = inner
        self.retrier = retrier or Retrier(attempts, base_delay, max_delay, sleep,
                                          deadline=deadline, monotonic=monotonic, rng=rng,
                                          on_retry=on_retry)

    @property
    def attempts(self) -> int:
        return self.retrier.attempts

    def delay(self, failed: int) -> float:
        return self.retrier.delay(failed)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return self.retrier.call(what, fn)

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
        began = self.retrier.start()
        while True:
            try:
                for info in self.inner.list(prefix):
                    if info.name not in seen:
                        seen.add(info.name)
                        yield info
                return
            except BackendError as exc:
                failed += 1
                self.retrier.pause(f"list {prefix or '/'}", failed, exc, began)

    def remove(self, name: str) -> None:
        self._call(f"remove {name}", lambda: self.inner.remove(name))

    def exists(self) -> bool:
        return self._call("exists", self.inner.exists)

    def create(self) -> None:
        self._call("create", self.inner.create)

    def close(self) -> None:
        self.inner.close()
