"""The server scheduler (server/scheduler.py) on SQLite and PostgreSQL, in one process:
one leader at a time (the lock file beside SQLite, the advisory lock on PostgreSQL) and
the next once it lets go; two schedulers that both believe they lead still run each
slot once; a failing task is recorded with its error and the others still run; slots
are the multiples of the interval."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from catalog_urls import KINDS, catalog_urls

from medark.catalog.store import Catalog
from medark.server.scheduler import ServerScheduler, Task, leadership_for, task_runs


@pytest.fixture(params=KINDS)
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    for url in catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_sched"):
        opened = Catalog(url)
        try:
            yield opened
        finally:
            opened.close()


def test_one_leader_at_a_time(catalog: Catalog) -> None:
    first, second = leadership_for(catalog), leadership_for(catalog)
    assert first.try_acquire()
    assert first.holding()
    assert not second.try_acquire()
    assert not second.holding()
    first.release()
    assert not first.holding()
    assert second.try_acquire()
    assert not first.try_acquire()
    second.release()


def test_each_slot_runs_once_and_a_failure_is_recorded(catalog: Catalog) -> None:
    calls: list[tuple[str, datetime]] = []

    def counted(catalog: Catalog, now: datetime) -> None:
        calls.append(("counted", now))

    def broken(catalog: Catalog, now: datetime) -> None:
        raise RuntimeError("the disk is on fire\nsecond line")

    tasks = [Task("test.broken", 60, broken), Task("test.counted", 60, counted)]
    # two processes both believing they lead (a lost connection not yet noticed)
    one, other = (ServerScheduler(catalog, tasks) for _ in range(2))
    now = datetime(2026, 12, 6, 5, 0, 30, tzinfo=UTC)
    assert one.run_due(now) == ["test.broken", "test.counted"]
    assert other.run_due(now) == []
    assert one.run_due(now + timedelta(seconds=20)) == []  # the same slot
    assert other.run_due(now + timedelta(seconds=40)) == ["test.broken", "test.counted"]
    assert len(calls) == 2
    runs = task_runs(catalog)
    assert [(r["task"], r["slot"].astimezone(UTC)) for r in runs] == [
        ("test.broken", datetime(2026, 12, 6, 5, 0, tzinfo=UTC)),
        ("test.counted", datetime(2026, 12, 6, 5, 0, tzinfo=UTC)),
        ("test.broken", datetime(2026, 12, 6, 5, 1, tzinfo=UTC)),
        ("test.counted", datetime(2026, 12, 6, 5, 1, tzinfo=UTC))]
    assert all(r["finished"] for r in runs)
    assert runs[0]["error"] == "RuntimeError: the disk is on fire"
    assert runs[1]["error"] is None


def test_slots_are_multiples_of_the_interval() -> None:
    task = Task("t", 300, lambda catalog, now: None)
    at = datetime(2026, 12, 6, 5, 7, 59, tzinfo=UTC)
    assert task.slot(at) == datetime(2026, 12, 6, 5, 5, tzinfo=UTC)
    assert Task("t", 0.5, task.fn).slot(at.replace(microsecond=700_000)) == at.replace(
        microsecond=500_000)


def test_the_thread_leads_runs_and_stops(catalog: Catalog) -> None:
    ran: list[datetime] = []
    scheduler = ServerScheduler(catalog, [Task("test.tick", 0.2,
                                               lambda c, now: ran.append(now))],
                                tick=0.05, retry=0.1)
    scheduler.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while len(ran) < 3 and datetime.now(UTC) < deadline:
            scheduler._stop.wait(0.05)
        assert len(ran) >= 3 and scheduler.is_leader
    finally:
        scheduler.stop()
    assert not scheduler.is_leader
    again = leadership_for(catalog)  # let go at the stop
    assert again.try_acquire()
    again.release()
