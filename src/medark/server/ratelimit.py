"""Login attempts per client address: at most `limit` in any `window` seconds.

Per process: with several server processes behind a load balancer each one counts its
own, so the effective limit is that many times higher; the per-account lockout, kept in
the catalog, is what holds across processes.
"""

from __future__ import annotations

import threading
from collections import deque

from medark.util import clock

MAX_ADDRESSES = 100_000
"""Beyond this many tracked addresses the quietest are forgotten (bounded memory)."""


class RateLimiter:
    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """0 when an attempt from `address` may go ahead now (and counts it), else the
        seconds until one may."""
        now = clock.monotonic()
        with self._lock:
            times = self._seen.setdefault(address, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return max(times[0] + self.window - now, 0.1)
            times.append(now)
            if len(self._seen) > MAX_ADDRESSES:
                for key in [k for k, v in self._seen.items() if not v][:MAX_ADDRESSES // 10]:
                    del self._seen[key]
            return 0.0
