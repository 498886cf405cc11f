"""The management server's job queue (catalog/job_queue.py) on SQLite and the running
PostgreSQL: processes claiming at once never get the same job; only an agent's own
plans and its own named jobs are claimed; cancel of a queued and of a running job; an
agent's report of a job it ran alone is recorded once however often it is replayed;
events come back in order and from where a client left off; a silent agent's job is
failed; the daemon's slot guard still holds beside institutions' slots; the migration
goes down and up again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, inspect

from medark.catalog import job_queue as jq
from medark.catalog.statuses import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from medark.catalog.store import MIGRATIONS, Catalog
from medark.errors import Conflict, ObjectNotFound
from medark.util import clock

CLAIMER = """\
import sys
from medark.catalog import job_queue
from medark.catalog.store import Catalog
catalog = Catalog(sys.argv[1])
sys.stdin.readline()  # every claimer starts together
while (job := job_queue.claim_next(catalog, institution="hosp-a", agent=sys.argv[2],
                                   plans=["his", "lis"], host=sys.argv[2])) is not None:
    print(job.id, job.agent, flush=True)
"""


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_jq")


@pytest.fixture
def catalog(url: str) -> Iterator[Catalog]:
    opened = Catalog(url)
    yield opened
    opened.close()


def test_claimers_racing_never_get_the_same_job(url: str, catalog: Catalog) -> None:
    queued = {jq.queue_job(catalog, institution="hosp-a", plan=("his", "lis")[n % 2],
                           kind="backup", requested_by="li.na").id for n in range(40)}
    claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, f"agent-{n}"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for n in range(4)]
    for claimer in claimers:
        assert claimer.stdin is not None
        claimer.stdin.write("go\n")
        claimer.stdin.flush()
    claimed: list[tuple[int, str]] = []
    for claimer in claimers:
        out, _err = claimer.communicate(timeout=120)
        assert claimer.returncode == 0
        claimed += [(int(line.split()[0]), line.split()[1]) for line in out.splitlines()]
    ids = [job_id for job_id, _agent in claimed]
    assert len(ids) == len(set(ids)) == 40
    assert set(ids) == queued
    for job_id, agent in claimed:
        job = jq.get_job(catalog, job_id)
        assert job is not None and job.status == RUNNING and job.agent == agent
        assert job.host == agent and job.started_at is not None


def test_an_agent_claims_only_its_plans_its_institution_and_its_own_jobs(catalog: Catalog) -> None:
    other_plan = jq.queue_job(catalog, institution="hosp-a", plan="pacs", kind="backup",
                              requested_by="li.na")
    other_place = jq.queue_job(catalog, institution="hosp-b", plan="his", kind="backup",
                               requested_by="li.na")
    for_b = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="check",
                         requested_by="li.na", agent="agent-b")
    cancelled = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                             requested_by="li.na")
    jq.request_cancel(catalog, cancelled.id)
    anyone = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                          requested_by="li.na", system="his-db")

    first = jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=["his"],
                          host="srv-1")
    assert first is not None and first.id == anyone.id and first.system == "his-db"
    assert jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=["his"],
                         host="srv-1") is None
    assert jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=[],
                         host="srv-1") is None
    mine = jq.claim_next(catalog, institution="hosp-a", agent="agent-b",
                         plans=["his", "lis"], host="srv-2")
    assert mine is not None and mine.id == for_b.id and mine.kind == "check"
    for untouched in (other_plan, other_place):
        job = jq.get_job(catalog, untouched.id)
        assert job is not None and job.status == QUEUED and job.agent is None


def test_cancel_a_queued_job_ends_it_and_a_running_one_asks_its_agent(catalog: Catalog) -> None:
    queued = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                          requested_by="li.na")
    cancelled = jq.request_cancel(catalog, queued.id)
    assert cancelled.status == CANCELLED and cancelled.finished_at is not None
    with pytest.raises(Conflict):
        jq.request_cancel(catalog, queued.id)

    running = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                           requested_by="li.na")
    assert jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=["his"],
                         host="srv") is not None
    assert jq.set_progress(catalog, running.id, {"percent": 10, "message": "reading"}) is False
    asked = jq.request_cancel(catalog, running.id)
    assert asked.status == RUNNING and asked.cancel_requested
    assert jq.set_progress(catalog, running.id, {"percent": 20}) is True
    ended = jq.finish_job(catalog, running.id, CANCELLED, error="cancelled by li.na")
    assert ended.status == CANCELLED and ended.progress is not None
    assert ended.progress["percent"] == 20.0
    assert jq.set_progress(catalog, running.id, {"percent": 30}) is True  # ended: stop
    statuses = [e.data["status"] for e in jq.events_after(catalog, running.id, 0)
                if e.kind == "status"]
    assert statuses == [QUEUED, RUNNING, RUNNING, CANCELLED]
    with pytest.raises(ObjectNotFound):
        jq.request_cancel(catalog, 999_999)
    with pytest.raises(ObjectNotFound):
        jq.set_progress(catalog, 999_999, {})


def test_record_remote_is_idempotent_and_a_retry_is_the_next_attempt(catalog: Catalog) -> None:
    slot = clock.parse_time("2026-12-06T02:00:00Z")
    report = {"institution": "hosp-a", "agent": "agent-a", "plan": "his", "kind": "backup",
              "scheduled_for": slot, "started_at": slot,
              "finished_at": slot + timedelta(minutes=5), "snapshot_id": None,
              "bytes_added": None, "details": {"files": 3}}
    assert jq.record_remote(catalog, origin_key="agent-a:17", status=FAILED,
                            error="disk full", **report)
    assert not jq.record_remote(catalog, origin_key="agent-a:17", status=FAILED,
                                error="disk full", **report)
    assert jq.record_remote(catalog, origin_key="agent-a:18", status=SUCCEEDED, error=None,
                            **{**report, "snapshot_id": "ab12", "bytes_added": 4096})
    # another hospital's plan of the same name at the same slot is its own job
    assert jq.record_remote(catalog, origin_key="agent-z:17", status=SUCCEEDED, error=None,
                            **{**report, "institution": "hosp-b", "agent": "agent-z"})
    jobs = jq.list_jobs(catalog, institutions=["hosp-a"])
    assert [(j.origin_key, j.attempt, j.status) for j in jobs] == [
        ("agent-a:18", 2, SUCCEEDED), ("agent-a:17", 1, FAILED)]
    assert jobs[0].snapshot_id == "ab12" and jobs[0].bytes_added == 4096
    assert jobs[1].details == {"files": 3} and jobs[1].scheduled_for == slot
    final = jq.events_after(catalog, jobs[0].id, 0)
    assert [(e.kind, e.data["status"]) for e in final] == [("status", SUCCEEDED)]
    # the daemon's own slot guard (no institution) still holds
    assert catalog.start("his", "backup", slot) is not None
    assert catalog.start("his", "backup", slot) is None


def test_events_come_in_order_and_resume_after_an_id(catalog: Catalog) -> None:
    job = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                       requested_by="li.na")
    jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=["his"], host="h")
    for n in range(5):
        jq.set_progress(catalog, job.id, {"percent": n * 20, "bytes_done": n * 100,
                                          "bytes_total": 500, "eta_seconds": 5 - n,
                                          "message": f"step {n}", "extra": "dropped"})
        jq.add_event(catalog, job.id, "log", {"line": f"log {n}"})
    jq.finish_job(catalog, job.id, SUCCEEDED, snapshot_id="cd34", bytes_added=500,
                  summary={"files": 10})
    events = jq.events_after(catalog, job.id, 0)
    assert [e.id for e in events] == sorted(e.id for e in events)
    kinds = [e.kind for e in events]
    assert kinds == ["status", "status", *["progress", "log"] * 5, "status"]
    assert events[2].data == {"percent": 0.0, "bytes_done": 0, "bytes_total": 500,
                              "eta_seconds": 5.0, "message": "step 0"}
    assert events[-1].data == {"status": SUCCEEDED, "error": None, "snapshot_id": "cd34"}
    rest = jq.events_after(catalog, job.id, events[5].id)
    assert [e.id for e in rest] == [e.id for e in events[6:]]
    assert jq.events_after(catalog, job.id, events[-1].id) == []
    assert len(jq.events_after(catalog, job.id, 0, limit=3)) == 3
    with pytest.raises(ValueError):
        jq.add_event(catalog, job.id, "gossip", {})
    with pytest.raises(ObjectNotFound):
        jq.add_event(catalog, 999_999, "log", {})
    done = jq.get_job(catalog, job.id)
    assert done is not None and done.details == {"files": 10} and done.status == SUCCEEDED


def test_list_jobs_scope_filters_and_paging(catalog: Catalog) -> None:
    ids = [jq.queue_job(catalog, institution=("hosp-a", "hosp-b")[n % 2], plan="his",
                        kind="backup", requested_by="li.na").id for n in range(6)]
    local = catalog.start("daemon-plan", "backup")
    assert [j.id for j in jq.list_jobs(catalog, institutions=None)] == [local, *ids[::-1]]
    assert [j.id for j in jq.list_jobs(catalog, institutions=["hosp-a"])] == ids[::2][::-1]
    assert jq.list_jobs(catalog, institutions=[]) == []
    page = jq.list_jobs(catalog, institutions=["hosp-a", "hosp-b"], limit=2)
    after = jq.list_jobs(catalog, institutions=["hosp-a", "hosp-b"], limit=2,
                         before_id=page[-1].id)
    assert [j.id for j in page + after] == ids[::-1][:4]
    jq.request_cancel(catalog, ids[0])
    assert [j.id for j in jq.list_jobs(catalog, institutions=None, status=CANCELLED)] == [
        ids[0]]
    assert jq.list_jobs(catalog, institutions=None, plan="nothing") == []


def test_a_listed_job_is_the_record_get_job_reads(catalog: Catalog) -> None:
    """list_jobs reads plain rows by position: every field as get_job's ORM object
    gives it (times with their zone, progress, details, the cancel flag)."""
    slot = clock.parse_time("2026-12-06T02:00:00Z")
    jq.record_remote(catalog, origin_key="agent-a:1", institution="hosp-a", agent="agent-a",
                     plan="his", kind="backup", status=SUCCEEDED, scheduled_for=slot,
                     started_at=slot, finished_at=slot + timedelta(minutes=5), error=None,
                     snapshot_id="ab12", bytes_added=4096, details={"files": 3})
    running = jq.queue_job(catalog, institution="hosp-a", plan="lis", kind="check",
                           requested_by="li.na", system="lis", details={"deep": True})
    assert jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=["lis"],
                         host="h1") is not None
    jq.set_progress(catalog, running.id, {"percent": 40, "message": "reading"})
    jq.request_cancel(catalog, running.id)
    listed = jq.list_jobs(catalog, institutions=None)
    assert len(listed) == 2 and listed[0].cancel_requested and listed[0].progress
    assert listed == [jq.get_job(catalog, job.id) for job in listed]


def test_a_silent_agents_job_is_failed(catalog: Catalog) -> None:
    quiet = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                         requested_by=None)
    waiting = jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                           requested_by=None)
    jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=["his"], host="h")
    assert quiet.id < waiting.id
    now = clock.now()
    assert jq.fail_stale(catalog, now, timedelta(minutes=10)) == []
    later = now + timedelta(minutes=11)
    assert jq.fail_stale(catalog, later, timedelta(minutes=10)) == [quiet.id]
    failed = jq.get_job(catalog, quiet.id)
    assert failed is not None and failed.status == FAILED
    assert failed.error == jq.STALE_ERROR
    still = jq.get_job(catalog, waiting.id)
    assert still is not None and still.status == QUEUED  # nobody claimed it: not stale
    assert jq.fail_stale(catalog, later, timedelta(minutes=10)) == []


def test_the_migration_goes_down_and_up(url: str, catalog: Catalog) -> None:
    jq.queue_job(catalog, institution="hosp-a", plan="his", kind="backup",
                 requested_by="li.na")
    catalog.close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0007_server_configs")
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        columns = {c["name"] for c in inspect(connection).get_columns("jobs")}
    assert "job_events" not in tables and "server_task_runs" not in tables
    assert "institution" not in columns
    engine.dispose()
    again = Catalog(url)
    assert [j.plan for j in again.jobs()] == ["his"]
    assert jq.list_jobs(again, institutions=["hosp-a"]) == []  # the column came back empty
    again.close()
