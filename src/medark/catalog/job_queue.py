"""The management server's job queue in the catalog: jobs an operator asked to run now,
claimed by an institution's agent, followed through progress, log and status events,
and the jobs an agent ran on its own schedule and reported afterwards.

Why claims are guarded UPDATEs and not locks: `UPDATE … WHERE id = ? AND status =
'queued'` changes one row for exactly one claimer on PostgreSQL (the second waits for the
first's commit, then finds the row no longer queued) and on SQLite (writes are
serialised), so two agents, or two server processes behind a load balancer, never run a
job twice, and no lock is left behind by a claimer that died.

Why events are written under the job's row lock: an event's id is the Server-Sent Events
id a client resumes from (`events_after`), so the events of one job must become visible
in id order; taking the job's row lock before inserting makes the writers of one job
take turns (PostgreSQL assigns ids at insert, not at commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import false, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medark.catalog.models import Job
from medark.catalog.models import JobEvent as EventRow
from medark.catalog.statuses import CANCELLED, ENDED, FAILED, QUEUED, RUNNING
from medark.catalog.store import Catalog, JobRecord, _aware, _record
from medark.errors import CatalogError, Conflict, ObjectNotFound
from medark.util import clock

EVENT_KINDS = ("progress", "log", "status")
PROGRESS_KEYS = ("percent", "bytes_done", "bytes_total", "eta_seconds", "message")
MESSAGE_LIMIT = 500
"""Characters of a progress message or log line kept: an event is a line, not a log."""
STALE_ERROR = "agent stopped reporting"
RECORD_ATTEMPTS = 3


@dataclass(frozen=True)
class JobEvent:
    id: int
    job_id: int
    at: datetime
    kind: str
    """progress, log or status."""
    data: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "job_id": self.job_id, "at": clock.format_time(self.at),
                "kind": self.kind, "data": self.data}


def queue_job(catalog: Catalog, *, institution: str, plan: str, kind: str,
              requested_by: str | None, system: str | None = None,
              agent: str | None = None, details: dict[str, Any] | None = None
              ) -> JobRecord:
    """A job to run as soon as an agent of the institution (that agent, if named) that
    has the plan claims it; `details`: its parameters (a restore's snapshot and target
    name, a DR action's system), which the agent receives with it."""
    job = Job(plan=plan, kind=kind, status=QUEUED, attempt=1, host="",
              institution=institution, system=system, agent=agent,
              requested_by=requested_by, cancel_requested=False, details=details)
    with catalog._session() as session:
        session.add(job)
        session.flush()
        _insert_event(session, job.id, "status", {"status": QUEUED})
        return _record(job)


def get_job(catalog: Catalog, job_id: int) -> JobRecord | None:
    with catalog._session() as session:
        job = session.get(Job, job_id)
        return _record(job) if job is not None else None


def claim_next(catalog: Catalog, *, institution: str, agent: str, plans: list[str],
               host: str) -> JobRecord | None:
    """Start the oldest queued job of the institution that this agent may run (its plan
    is one of `plans`; no other agent was named; no cancel asked): it becomes running on
    `host`. None when there is none; two claimers never get the same job."""
    if not plans:
        return None
    query = (select(Job.id).where(Job.status == QUEUED, Job.institution == institution,
                                  Job.plan.in_(plans), Job.cancel_requested == false(),
                                  (Job.agent.is_(None)) | (Job.agent == agent))
             .order_by(Job.id).limit(20))
    with catalog._session() as session:
        candidates = list(session.scalars(query))
    for job_id in candidates:
        # one short write transaction per candidate, whose first statement is the guarded
        # UPDATE (SQLite then takes the write lock at once instead of upgrading a read)
        with catalog._session() as session:
            claimed = session.execute(
                update(Job).where(Job.id == job_id, Job.status == QUEUED,
                                  Job.cancel_requested == false())
                .values(status=RUNNING, agent=agent, host=host[:255],
                        started_at=clock.now())
                .execution_options(synchronize_session=False))
            if getattr(claimed, "rowcount", 0) != 1:
                continue  # another claimer won it, or it was cancelled meanwhile
            _insert_event(session, job_id, "status",
                          {"status": RUNNING, "agent": agent, "host": host})
            job = session.get(Job, job_id)
            assert job is not None
            return _record(job)
    return None


def add_event(catalog: Catalog, job_id: int, kind: str, data: dict[str, Any]) -> int:
    """Append an event to the job's stream; its id."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown job event kind {kind!r}")
    with catalog._session() as session:
        _locked(session, job_id)
        return _insert_event(session, job_id, kind, data)


def events_after(catalog: Catalog, job_id: int, after_id: int,
                 limit: int = 500) -> list[JobEvent]:
    """The job's events with an id above `after_id`, oldest first."""
    query = (select(EventRow).where(EventRow.job_id == job_id, EventRow.id > after_id)
             .order_by(EventRow.id).limit(limit))
    with catalog._session() as session:
        return [JobEvent(row.id, row.job_id, _when(row.at), row.kind, dict(row.data or {}))
                for row in session.scalars(query)]


def set_progress(catalog: Catalog, job_id: int, progress: dict[str, Any]) -> bool:
    """Record the running job's progress (and a progress event); whether the agent should
    stop: a cancel was asked, or the job has already ended (cancelled while queued, or
    failed for silence by the server)."""
    data = normal_progress(progress)
    with catalog._session() as session:
        job = _locked(session, job_id)
        if job.status in ENDED:
            return True
        job.progress = data
        _insert_event(session, job_id, "progress", data)
        return bool(job.cancel_requested)


def request_cancel(catalog: Catalog, job_id: int) -> JobRecord:
    """Cancel a job: a queued one ends cancelled at once; a running one is asked to stop
    (its agent learns it from its next progress report and ends it cancelled). Conflict
    for a job that has ended."""
    with catalog._session() as session:
        job = _locked(session, job_id)
        if job.status in ENDED:
            raise Conflict(f"job {job_id} has already ended ({job.status})", "job_ended")
        job.cancel_requested = True
        if job.status == QUEUED:
            job.status = CANCELLED
            job.finished_at = clock.now()
            _insert_event(session, job_id, "status", {"status": CANCELLED})
        else:
            _insert_event(session, job_id, "status",
                          {"status": job.status, "cancel_requested": True})
        return _record(job)


def finish_job(catalog: Catalog, job_id: int, status: str, *, error: str | None = None,
               summary: dict[str, Any] | None = None, snapshot_id: str | None = None,
               bytes_added: int | None = None) -> JobRecord:
    """End a job as succeeded, failed or cancelled, with a final status event. The
    agent's word is final: a job the server had failed for silence takes the outcome
    its agent reports afterwards."""
    if status not in ENDED:
        raise ValueError(f"a job cannot end as {status!r}")
    with catalog._session() as session:
        job = _locked(session, job_id)
        job.status = status
        job.finished_at = clock.now()
        job.error = error
        job.snapshot_id = snapshot_id
        job.bytes_added = bytes_added
        if summary is not None:
            job.details = summary
        _insert_event(session, job_id, "status", _final(status, error, snapshot_id))
        return _record(job)


def record_remote(catalog: Catalog, *, origin_key: str, institution: str, agent: str,
                  plan: str, kind: str, status: str, scheduled_for: datetime | None,
                  started_at: datetime | None, finished_at: datetime | None,
                  error: str | None, snapshot_id: str | None, bytes_added: int | None,
                  details: dict[str, Any] | None) -> bool:
    """Record a job an agent ran on its own schedule; False when `origin_key` was
    recorded already (the agent replays its offline queue until it hears back). A second
    attempt at the same slot is stored as the next attempt."""
    if status not in (*ENDED, RUNNING):
        raise ValueError(f"unknown job status {status!r}")
    slot = scheduled_for.astimezone(UTC) if scheduled_for is not None else None
    for _try in range(RECORD_ATTEMPTS):
        if _origin_exists(catalog, origin_key):
            return False
        try:
            with catalog._session() as session:
                attempt = 1
                if slot is not None:
                    highest = session.scalar(
                        select(func.max(Job.attempt)).where(
                            Job.institution == institution, Job.plan == plan,
                            Job.kind == kind, Job.scheduled_for == slot))
                    attempt = int(highest or 0) + 1
                job = Job(plan=plan, kind=kind, status=status, scheduled_for=slot,
                          started_at=started_at, finished_at=finished_at, attempt=attempt,
                          host="", institution=institution, agent=agent,
                          origin_key=origin_key, error=error, snapshot_id=snapshot_id,
                          bytes_added=bytes_added, details=details, cancel_requested=False)
                session.add(job)
                session.flush()
                _insert_event(session, job.id, "status", _final(status, error, snapshot_id))
                return True
        except IntegrityError:
            continue  # the same report racing in, or the attempt taken meanwhile: look again
    if _origin_exists(catalog, origin_key):
        return False
    raise CatalogError(f"job {origin_key} of {institution}: could not be recorded (its slot "
                       "kept being taken); the agent sends it again")


def list_jobs(catalog: Catalog, *, institutions: list[str] | None, plan: str | None = None,
              status: str | None = None, limit: int = 100,
              before_id: int | None = None) -> list[JobRecord]:
    """Newest first; `institutions` None: every job (the regional center's view)."""
    query = select(*_RECORD_COLUMNS).order_by(Job.id.desc()).limit(limit)
    if institutions is not None:
        query = query.where(Job.institution.in_(institutions))
    if plan is not None:
        query = query.where(Job.plan == plan)
    if status is not None:
        query = query.where(Job.status == status)
    if before_id is not None:
        query = query.where(Job.id < before_id)
    with catalog._session() as session:
        # plain rows, not ORM objects: a page of 100 jobs built as instances cost about
        # a third of the server's CPU per GET /api/jobs (bench/server_bench.py)
        return [_row_record(*row) for row in session.execute(query)]


_RECORD_COLUMNS = (Job.id, Job.plan, Job.kind, Job.status, Job.scheduled_for,
                   Job.started_at, Job.finished_at, Job.attempt, Job.host, Job.bytes_added,
                   Job.snapshot_id, Job.rpo_seconds, Job.error, Job.details, Job.institution,
                   Job.system, Job.agent, Job.requested_by, Job.progress,
                   Job.cancel_requested, Job.origin_key)
"""JobRecord's fields in its order (a row's values by position: by name cost a lookup
each)."""


def _row_record(job_id: int, plan: str, kind: str, status: str,
                scheduled_for: datetime | None, started_at: datetime | None,
                finished_at: datetime | None, *rest: Any) -> JobRecord:
    """As store._record, from the values of a row of _RECORD_COLUMNS."""
    (attempt, host, bytes_added, snapshot_id, rpo_seconds, error, details, institution,
     system, agent, requested_by, progress, cancel_requested, origin_key) = rest
    return JobRecord(job_id, plan, kind, status, _aware(scheduled_for), _aware(started_at),
                     _aware(finished_at), attempt, host, bytes_added, snapshot_id,
                     rpo_seconds, error, details, institution, system, agent, requested_by,
                     progress, bool(cancel_requested), origin_key)


def fail_stale(catalog: Catalog, now: datetime, quiet: timedelta) -> list[int]:
    """Fail the running jobs of agents that have said nothing (no event) for `quiet`:
    the agent died or lost the server, and the job would otherwise look alive forever."""
    last = (select(EventRow.job_id, func.max(EventRow.at).label("last"))
            .group_by(EventRow.job_id).subquery())
    query = (select(Job.id, Job.started_at, last.c.last)
             .outerjoin(last, last.c.job_id == Job.id)
             .where(Job.status == RUNNING, Job.agent.is_not(None)))
    with catalog._session() as session:
        rows = list(session.execute(query))
    failed = []
    for job_id, started, heard in rows:
        latest = _aware(heard) or _aware(started)
        if latest is not None and now - latest < quiet:
            continue
        with catalog._session() as session:
            job = _locked(session, job_id)
            if job.status != RUNNING:
                continue
            job.status = FAILED
            job.finished_at = now
            job.error = STALE_ERROR
            _insert_event(session, job_id, "status", _final(FAILED, STALE_ERROR, None))
            failed.append(int(job_id))
    return failed


def normal_progress(progress: dict[str, Any]) -> dict[str, Any]:
    """The progress document with its five keys and their types (unknown keys dropped)."""
    def number(key: str, kind: type[int] | type[float]) -> Any:
        value = progress.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return kind(value)

    return {"percent": number("percent", float), "bytes_done": number("bytes_done", int),
            "bytes_total": number("bytes_total", int),
            "eta_seconds": number("eta_seconds", float),
            "message": str(progress.get("message") or "")[:MESSAGE_LIMIT]}


def _final(status: str, error: str | None, snapshot_id: str | None) -> dict[str, Any]:
    return {"status": status, "error": error, "snapshot_id": snapshot_id}


def _origin_exists(catalog: Catalog, origin_key: str) -> bool:
    with catalog._session() as session:
        return session.scalar(select(Job.id).where(Job.origin_key == origin_key)) is not None


def _locked(session: Session, job_id: int) -> Job:
    """The job's row, locked until the transaction ends. A no-op UPDATE, not SELECT …
    FOR UPDATE: on SQLite that is what opens the write transaction before the row is
    read, so no other writer changes it between the read and the write."""
    touched = session.execute(update(Job).where(Job.id == job_id)
                              .values(cancel_requested=Job.cancel_requested)
                              .execution_options(synchronize_session=False))
    job = session.get(Job, job_id) if getattr(touched, "rowcount", 0) == 1 else None
    if job is None:
        raise ObjectNotFound(f"job {job_id} does not exist")
    return job


def _insert_event(session: Session, job_id: int, kind: str, data: dict[str, Any]) -> int:
    row = EventRow(job_id=job_id, at=clock.now(), kind=kind, data=data)
    session.add(row)
    session.flush()
    return int(row.id)


def _when(value: datetime) -> datetime:
    aware = _aware(value)
    assert aware is not None
    return aware
