"""The bandwidth pacer on a fake clock: averages, concurrency, no banked credit."""

from __future__ import annotations

import threading

import pytest

from medark.storage.mem import MemoryBackend
from medark.storage.wrappers.ratelimit import Pacer, RateLimitedBackend


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_a_stream_of_transfers_averages_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(1000.0, clock.monotonic, clock.sleep)
    start = clock.now
    for _ in range(60):
        pacer.book(2000, clock.now)  # each transfer itself takes no time (loopback)
    assert clock.now - start == pytest.approx(120.0)


def test_time_the_transfer_took_counts_towards_its_booking() -> None:
    clock = FakeClock()
    pacer = Pacer(1000.0, clock.monotonic, clock.sleep)
    started = clock.now
    clock.now += 1.5  # a slow link took 1.5 s for 1000 bytes: no extra wait
    pacer.book(1000, started)
    assert clock.now == pytest.approx(started + 1.5)
    started = clock.now
    clock.now += 0.25
    pacer.book(1000, started)  # a fast one waits out the rest of its second
    assert clock.now == pytest.approx(started + 1.0)


def test_an_idle_link_banks_no_credit() -> None:
    clock = FakeClock()
    pacer = Pacer(1000.0, clock.monotonic, clock.sleep)
    pacer.book(1000, clock.now)
    clock.now += 3600  # idle for an hour
    started = clock.now
    pacer.book(5000, clock.now)
    assert clock.now == pytest.approx(started + 5.0)


def test_the_wrapper_paces_uploads_and_downloads_separately() -> None:
    clock = FakeClock()
    up = Pacer(1024.0, clock.monotonic, clock.sleep)
    backend = RateLimitedBackend(MemoryBackend(), up, None)
    backend.create()
    start = clock.now
    backend.save("data/aa", b"x" * 2048)
    assert clock.now - start == pytest.approx(2.0)
    backend.load("data/aa")  # no download limit: no wait
    assert clock.now - start == pytest.approx(2.0)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0)


def test_an_upload_limit_leaves_one_upload_at_a_time() -> None:
    """Each upload may run ahead of the timeline by its own size: with one at a time the
    link never sees a burst of several packs."""
    inner = MemoryBackend()
    assert RateLimitedBackend(inner, Pacer(1000.0), None).properties().connections == 1
    assert RateLimitedBackend(inner, None, Pacer(1000.0)).properties().connections == \
        inner.properties().connections
