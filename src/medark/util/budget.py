"""A byte budget shared by producer and consumer threads: bounds the data in flight."""

from __future__ import annotations

import threading


class ByteBudget:
    """acquire(n) blocks while `limit` would be exceeded (one oversized request alone
    always passes, so a chunk larger than the limit cannot deadlock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> None:
        with self._cond:
            while self.used and self.used + n > self.limit:
                self._cond.wait()
            self.used += n

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()
