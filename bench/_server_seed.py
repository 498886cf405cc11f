"""bench/server_bench.py's job history: a regional center's 90 days of agents' runs
written into the catalog, the first through job_queue as the server records them and the
rest in bulk, with open and resolved alerts."""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from medark.catalog import job_queue
from medark.catalog.models import Job
from medark.catalog.models import JobEvent as EventRow
from medark.catalog.store import Catalog

DAYS = 90
RECORDED = 1000


def seed_jobs(catalog: Catalog, plans: dict[str, list[str]], agents: dict[str, list[str]],
              count: int, seed: int = 1) -> float:
    """`count` jobs as agents report their own runs, over 90 days: 97% succeeded, 3%
    failed; 10% checks and restore tests; seconds taken. The first RECORDED through
    job_queue.record_remote, the rest as the same rows in bulk (one at a time took 25
    minutes for 100,000 on this machine)."""
    rng = random.Random(seed)
    weights = [len(p) for p in plans.values()]
    names = list(plans)
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        inst = rng.choices(names, weights)[0]
        when = now - timedelta(seconds=rng.uniform(60, DAYS * 86400))
        roll = rng.random()
        kind = "backup" if roll < 0.9 else "check" if roll < 0.95 else "restore_test"
        status = "failed" if rng.random() < 0.03 else "succeeded"
        started = when + timedelta(seconds=rng.uniform(0, 300))
        rows.append({"origin_key": f"{inst}/bench:{i}", "institution": inst,
                     "agent": rng.choice(agents.get(inst) or ["agent"]),
                     "plan": rng.choice(plans[inst]), "kind": kind, "status": status,
                     "scheduled_for": when, "started_at": started,
                     "finished_at": started + timedelta(seconds=rng.uniform(5, 3600)),
                     "error": "repository unreachable" if status == "failed" else None,
                     "snapshot_id": uuid.UUID(int=rng.getrandbits(128)).hex
                     if status == "succeeded" and kind == "backup" else None,
                     "bytes_added": rng.randrange(1 << 30) if kind == "backup" else None,
                     "details": None})
    began = time.perf_counter()
    through_api = rows[:RECORDED]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda row: job_queue.record_remote(catalog, **row), through_api))
    bulk_insert(catalog, rows[RECORDED:])
    for i in range(min(500, count // 20 + 1)):  # open and resolved alerts
        inst = rng.choice(names)
        key = f"bench:{inst}:{i}"
        catalog.raise_alert(key, "job_failed", rng.choice(plans[inst]),
                            f"a backup of {inst} failed", institution=inst)
        if i % 3:
            catalog.resolve_alert(key)
    return time.perf_counter() - began


def bulk_insert(catalog: Catalog, rows: list[dict[str, Any]]) -> None:
    """The rows record_remote would write (the job, attempt 1, and its status event),
    many to a statement."""
    now = datetime.now(UTC)
    with catalog._session() as session:
        for at in range(0, len(rows), 5000):
            chunk = rows[at:at + 5000]
            ids = session.scalars(insert(Job).returning(Job.id), [
                {**row, "attempt": 1, "host": "", "cancel_requested": False}
                for row in chunk]).all()
            session.execute(insert(EventRow), [
                {"job_id": job_id, "at": now, "kind": "status",
                 "data": {"status": row["status"], "error": row["error"],
                          "snapshot_id": row["snapshot_id"]}}
                for job_id, row in zip(ids, chunk, strict=True)])
