"""The load client of bench/server_bench.py: closed-loop HTTP clients in threads, each
with its own keep-alive httpx connection, timing every request from send to the last
byte of the body; and the fleet of synthetic agents heartbeating."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Result:
    """Latencies in seconds of the requests that answered 2xx, and the others counted."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    first_error: str = ""

    def merge(self, other: Result) -> None:
        self.latencies.extend(other.latencies)
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error

    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile in milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000


Request = Callable[[httpx.Client, int], httpx.Response]
"""One request on a client: the client and how many this client made before."""


def hammer(urls: list[str], clients: int, seconds: float,
           request: Request | list[Request],
           headers: dict[str, str] | list[dict[str, str]] | None = None,
           cookies: dict[str, str] | None = None, pause: float = 0.0) -> Result:
    """`clients` threads, client i on urls[i % len(urls)] (two server processes and no
    balancer: the clients alternate), each sending its next request when the last one
    has answered (after `pause` seconds), for `seconds`. A list of requests or of
    headers gives client i its i-th."""
    requests = request if isinstance(request, list) else [request] * clients
    heads = headers if isinstance(headers, list) else [headers or {}] * clients
    results = [Result() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = [float("inf")]  # set once every client is connected

    def work(i: int) -> None:
        mine = results[i]
        request = requests[i]
        with httpx.Client(base_url=urls[i % len(urls)], headers=heads[i],
                          cookies=cookies or {}, timeout=60) as client:
            request(client, -1)  # the connection open before the clock starts
            start.wait()
            n = 0
            while time.perf_counter() < stop_at[0]:
                began = time.perf_counter()
                try:
                    response = request(client, n)
                    ok = 200 <= response.status_code < 300
                    if not ok and not mine.first_error:
                        mine.first_error = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok = False
                    mine.first_error = mine.first_error or repr(exc)
                took = time.perf_counter() - began
                if ok:
                    mine.latencies.append(took)
                else:
                    mine.errors += 1
                n += 1
                if pause:
                    time.sleep(pause)

    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for t in threads:
        t.join()
    total = Result(elapsed=time.perf_counter() - began)
    for r in results:
        total.merge(r)
    return total


def get(path: str) -> Request:
    def request(client: httpx.Client, _n: int) -> httpx.Response:
        return client.get(path)
    return request


def heartbeat(plans: list[str]) -> Request:
    body: dict[str, Any] = {"version": "bench", "plans": plans, "queue_length": 0,
                            "interval": 10.0}

    def request(client: httpx.Client, _n: int) -> httpx.Response:
        return client.post("/api/agent/heartbeat", json=body)
    return request


class Fleet:
    """Every agent's heartbeat loop, each in its own thread: one heartbeat every
    `interval` seconds (or back to back with interval 0), until stopped."""

    def __init__(self, urls: list[str], agents: list[tuple[str, list[str]]],
                 interval: float) -> None:
        self.urls, self.agents, self.interval = urls, agents, interval
        self.stopping = threading.Event()
        self.result = Result()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _loop(self, i: int, credential: str, plans: list[str]) -> None:
        send = heartbeat(plans)
        mine = Result()
        with httpx.Client(base_url=self.urls[i % len(self.urls)], timeout=60,
                          headers={"Authorization": f"Bearer {credential}"}) as client:
            self.stopping.wait(self.interval * i / max(1, len(self.agents)))
            while not self.stopping.is_set():
                began = time.perf_counter()
                try:
                    ok = send(client, 0).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    mine.latencies.append(time.perf_counter() - began)
                else:
                    mine.errors += 1
                self.stopping.wait(self.interval)
        with self._lock:
            self.result.merge(mine)

    def __enter__(self) -> Fleet:
        self._threads = [threading.Thread(target=self._loop, args=(i, cred, plans),
                                          daemon=True)
                         for i, (cred, plans) in enumerate(self.agents)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
