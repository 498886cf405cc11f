"""Jobs: list, run now, cancel, and each job's progress as Server-Sent Events
(server/jobs.py, catalog/job_queue.py).

The event stream reads the job's events from the catalog every POLL seconds, so any
server process behind a load balancer can serve it whichever process the agent reports
to; the reads run in the thread pool and the waits are asyncio sleeps, so an open stream
holds no worker.

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from medark.catalog import job_queue
from medark.catalog.statuses import ENDED, STATUSES
from medark.catalog.store import Catalog, JobRecord
from medark.errors import UsageError
from medark.server import jobs as J
from medark.server.deps import Ctx, Who
from medark.server.replies import json_reply
from medark.server.schemas_jobs import PLAN_PATTERN, JobList, JobReply, RunNow
from medark.util import clock

router = APIRouter(tags=["jobs"])

POLL = 0.3
"""Seconds between two reads of a streamed job's new events."""
BATCH = 500
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"
JobId = Annotated[int, Path(ge=1, le=2**62)]
EVENTS_DOC: dict[int | str, dict[str, Any]] = {200: {
    "description": "text/event-stream: `id: <event id>`, `event: progress|log|status`, "
                   "`data: {id, job_id, at, kind, data}`; ends after the final status",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


def _when(value: datetime | None) -> str | None:
    return clock.format_time(value) if value is not None else None


def job_view(job: JobRecord) -> dict[str, Any]:
    """The job as the API shows it (JobRecord.public()'s values, the progress
    normalised), built directly: a page holds up to 500."""
    return {"id": job.id, "institution": job.institution, "plan": job.plan,
            "kind": job.kind, "status": job.status, "system": job.system,
            "agent": job.agent, "host": job.host, "requested_by": job.requested_by,
            "scheduled_for": _when(job.scheduled_for), "started_at": _when(job.started_at),
            "finished_at": _when(job.finished_at), "attempt": job.attempt,
            "cancel_requested": job.cancel_requested, "error": job.error,
            "snapshot_id": job.snapshot_id, "bytes_added": job.bytes_added,
            "details": job.details,
            "progress": (job_queue.normal_progress(job.progress)
                         if job.progress is not None else None)}


@router.get("/api/jobs", response_model=JobList)
def list_jobs(who: Who, ctx: Ctx,
              institution: Annotated[str | None, Query(min_length=1, max_length=64,
                                                       pattern=NAME_PATTERN)] = None,
              plan: Annotated[str | None, Query(min_length=1, max_length=200,
                                                pattern=PLAN_PATTERN)] = None,
              status: Annotated[str | None, Query(
                  json_schema_extra={"enum": list(STATUSES)})] = None,
              limit: Annotated[int, Query(ge=1, le=J.MAX_JOBS)] = 100,
              before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None
              ) -> Response:
    """Newest first: every institution's jobs for a regional center account (and those
    of the catalog's own daemon, institution null), else the caller's institution's.
    Page back with `before_id`."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"status: use one of {', '.join(STATUSES)}")
    found = J.list_jobs(ctx.catalog, who, J.JobFilter(institution, plan, status, limit,
                                                      before_id))
    more = len(found) == limit and found
    return json_reply(JobList, {"jobs": [job_view(job) for job in found],
                                "next_before_id": found[-1].id if more else None})


@router.get("/api/jobs/{job_id}", response_model=JobReply)
def get_job(job_id: JobId, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"job": job_view(J.visible_job(ctx.catalog, who, job_id))}


@router.post("/api/jobs", response_model=JobReply, status_code=202)
def run_now(body: RunNow, who: Who, ctx: Ctx) -> dict[str, Any]:
    """Run a plan's job now: queued for the institution's agent that has the plan (202;
    follow it with GET /api/jobs/{id}/events). The plan must be in the institution's
    current configuration (422 `unknown_plan`)."""
    job = J.run_now(ctx.catalog, who, body.institution, body.plan, body.kind)
    return {"job": job_view(job)}


@router.post("/api/jobs/{job_id}/cancel", response_model=JobReply)
def cancel(job_id: JobId, who: Who, ctx: Ctx) -> dict[str, Any]:
    """A queued job ends cancelled at once; a running one is asked to stop (its agent
    sees the request at its next progress report). 409 `job_ended` once it ended."""
    return {"job": job_view(J.cancel(ctx.catalog, who, job_id))}


@router.get("/api/jobs/{job_id}/events", responses=EVENTS_DOC,
            response_class=StreamingResponse)
async def events(job_id: JobId, request: Request, who: Who, ctx: Ctx,
                 last_event_id: Annotated[str | None, Header(
                     alias="Last-Event-ID", max_length=200)] = None
                 ) -> StreamingResponse:
    """The job's progress, log and status events as Server-Sent Events, from the one
    after `Last-Event-ID` (a reconnecting browser sends it; one that is not an event id
    of ours starts from the first); ends after the final status (succeeded, failed,
    cancelled)."""
    await run_in_threadpool(J.visible_job, ctx.catalog, who, job_id)
    return StreamingResponse(_stream(ctx.catalog, job_id, _event_id(last_event_id), request,
                                     ctx.settings.keep_alive),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache",
                                      "X-Accel-Buffering": "no"})


def _event_id(header: str | None) -> int:
    """The id a client resumes after: the ids we send are decimal and below 2**62."""
    text = (header or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return 0
    return int(text)


async def _stream(catalog: Catalog, job_id: int, after: int,
                  request: Request, keep_alive: float) -> AsyncIterator[str]:
    last = after
    quiet_since = clock.monotonic()
    while not await request.is_disconnected():
        batch = await run_in_threadpool(job_queue.events_after, catalog, job_id, last, BATCH)
        if not batch:
            job = await run_in_threadpool(job_queue.get_job, catalog, job_id)
            if job is None or job.status in ENDED:
                # ended: its final status event was committed with it; send what is left
                for event in await run_in_threadpool(job_queue.events_after, catalog,
                                                     job_id, last, BATCH):
                    yield _frame(event)
                return
        for event in batch:
            yield _frame(event)
            last = event.id
            if event.kind == "status" and event.data.get("status") in ENDED:
                return
        if batch:
            quiet_since = clock.monotonic()
            continue
        if clock.monotonic() - quiet_since >= keep_alive:
            yield ": keep-alive\n\n"
            quiet_since = clock.monotonic()
        await asyncio.sleep(POLL)


def _frame(event: job_queue.JobEvent) -> str:
    data = json.dumps(event.public(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"
