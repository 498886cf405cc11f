"""Restores and DR actions through the institution's agent, and the DR status its
agents report (server/remote_ops.py). Follow a request's job with GET /api/jobs/{id}
and its /events.

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from medark.server import remote_ops as O
from medark.server.deps import Ctx, Who
from medark.server.routes.jobs import job_view
from medark.server.schemas_jobs import JobReply
from medark.server.schemas_remote_ops import DrRequest, DrStatusReply, RestoreRequest

router = APIRouter(tags=["restores", "dr"])
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"
Institution = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
System = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
SYSTEM = "/api/institutions/{institution}/systems/{system}"


@router.post(SYSTEM + "/restores", response_model=JobReply, status_code=202)
def restore(institution: Institution, system: System, body: RestoreRequest, who: Who,
            ctx: Ctx) -> dict[str, Any]:
    """Restore a snapshot (or `paths` of it, or `dicom` studies of its catalog) into the
    agent's restore target named `target` (its own configuration says where that is),
    or with `time` a database as it was then into a new directory of that target (409
    `outside_window` unless the time is inside a window the recovery endpoint lists):
    202 with the job. Another institution's data needs a grant (403
    `grant_required`)."""
    dicom = [item.model_dump() for item in body.dicom]
    if body.time is not None:
        job = O.request_pitr(ctx.catalog, who, institution, system, O.PointInTime(
            body.time, body.plan, body.source, body.target, body.snapshot, body.paths,
            dicom))
        return {"job": job_view(job)}
    job = O.request_restore(ctx.catalog, who, institution, system, body.snapshot,
                            body.paths, body.target, plan=body.plan, source=body.source,
                            dicom=dicom)
    return {"job": job_view(job)}


@router.post(SYSTEM + "/dr", response_model=JobReply, status_code=202)
def dr_action(institution: Institution, system: System, body: DrRequest, who: Who,
              ctx: Ctx) -> dict[str, Any]:
    """Switchover, failover, failback or drill of the system by the agent that has it in
    its [dr] tables: 202 with the job, whose events carry each step and its duration as
    it ends. A switchover, failover or failback repeats the system's name in `confirm`
    (422 `confirmation_required`)."""
    job = O.request_dr(ctx.catalog, who, institution, system, body.action, body.confirm)
    return {"job": job_view(job)}


@router.get("/api/institutions/{institution}/dr", response_model=DrStatusReply)
def dr_status(institution: Institution, who: Who, ctx: Ctx) -> dict[str, Any]:
    """The DR status (`medark dr status`) each agent of the institution last reported."""
    return O.dr_status(ctx.catalog, who, institution)
