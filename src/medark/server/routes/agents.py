"""Agents: enrolment tokens and the agents list for users (sysadmin manages); and
/api/agent/*, reached only with an agent's own credential: enrol, heartbeat, long-poll
for a job, report its events and result, upload the results of its own schedule.

Every connection comes from the agent (a hospital firewall needs no inbound port).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from medark.catalog import job_queue
from medark.errors import AccessDenied, AuthenticationFailed, UsageError
from medark.server.agents import (
    CREDENTIAL_PREFIX,
    AgentPrincipal,
    Agents,
    agents_job,
    claim_for,
    to_cancel,
)
from medark.server.db import audit
from medark.server.deps import SESSION_COOKIE, ApiContext, Ctx, Who, address, context
from medark.server.recovery import record_targets, record_windows
from medark.server.remote_ops import PARAMETERISED, record_dr, step_event
from medark.server.replies import json_reply
from medark.server.routes.session import RateLimited
from medark.server.schemas import Status
from medark.server.schemas_agents import (
    AgentList,
    AgentReply,
    EnrolBody,
    Enrolled,
    EnrolmentTokenCreated,
    EventBody,
    EventReply,
    HeartbeatBody,
    HeartbeatReply,
    JobOffer,
    NewEnrolmentToken,
    ResultBody,
    ResultsBody,
    ResultsReply,
)
from medark.util import clock

router = APIRouter(tags=["agents"])
CLAIM_EVERY = 0.3
"""Seconds between two looks at the queue during a long poll."""
LONGEST_WAIT = 55
JobId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def agents(ctx: ApiContext) -> Agents:
    return Agents(ctx.catalog, ctx.settings.agent_offline_after)


def agent_principal(request: Request) -> AgentPrincipal:
    """The agent, from `Authorization: Bearer mda_…`; a user's session or API token is
    refused here (403 agent_only), as an agent's credential is on the user endpoints."""
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        credential = bearer[7:].strip()
        if credential.startswith(CREDENTIAL_PREFIX):
            return agents(context(request)).authenticate(credential, address(request))
        raise AccessDenied("only an agent's credential reaches /api/agent/*", "agent_only")
    if request.cookies.get(SESSION_COOKIE):
        raise AccessDenied("only an agent's credential reaches /api/agent/*", "agent_only")
    raise AuthenticationFailed("an agent authenticates with its credential "
                               "(Authorization: Bearer mda_…)", "not_authenticated")


Agent = Annotated[AgentPrincipal, Depends(agent_principal)]


# users

@router.post("/api/agents/enrolment-tokens", status_code=201,
             response_model=EnrolmentTokenCreated)
def create_enrolment_token(body: NewEnrolmentToken, who: Who, ctx: Ctx) -> dict[str, Any]:
    """A single-use enrolment token for `medark agent enroll --token` (shown once)."""
    view, secret = agents(ctx).create_token(who, body.institution, body.hours, body.name,
                                            clock.now())
    return {"token": view, "secret": secret}


@router.get("/api/agents", response_model=AgentList)
def list_agents(who: Who, ctx: Ctx) -> Response:
    return json_reply(AgentList, {"agents": agents(ctx).agents(who)})


@router.delete("/api/agents/{institution}/{name}", response_model=AgentReply)
def revoke_agent(institution: str, name: str, who: Who, ctx: Ctx) -> dict[str, Any]:
    """Revoke the agent's credential (its record stays)."""
    return {"agent": agents(ctx).revoke(who, institution, name, clock.now())}


# the agent's own calls

@router.post("/api/agent/enroll", status_code=201, response_model=Enrolled)
def enroll(body: EnrolBody, request: Request, ctx: Ctx) -> dict[str, Any]:
    """No login: the single-use enrolment token is the credential (rate-limited like a
    login). Returns the agent's own credential, once."""
    where = address(request)
    wait = ctx.limiter.retry_after(where)
    if wait:
        raise RateLimited(wait)
    view, credential = agents(ctx).enroll(body.token, body.name, body.host, body.version,
                                          where, clock.now())
    return {"agent": view, "credential": credential}


@router.post("/api/agent/heartbeat", response_model=HeartbeatReply)
def heartbeat(body: HeartbeatBody, agent: Agent, ctx: Ctx) -> dict[str, Any]:
    now = clock.now()
    agents(ctx).heartbeat(agent, body.version, body.plans, body.queue_length,
                          body.interval, now)
    record_dr(ctx.catalog, agent, body.dr_systems, body.dr_status, now)
    record_targets(ctx.catalog, agent, body.restore_targets)
    record_windows(ctx.catalog, agent, None if body.windows is None else {
        plan: [w.model_dump() for w in found] for plan, found in body.windows.items()}, now)
    return {"server_time": clock.format_time(now), "cancel": to_cancel(ctx.catalog, agent)}


@router.get("/api/agent/jobs", response_model=JobOffer,
            responses={204: {"description": "no job within the wait"}})
async def next_job(agent: Agent, ctx: Ctx,
                   wait: Annotated[int, Query(ge=0, le=LONGEST_WAIT)] = 25) -> Any:
    """Long poll: the next job for this agent as soon as there is one, else 204 after
    `wait` seconds."""
    deadline = clock.monotonic() + wait
    while True:
        job = await asyncio.to_thread(claim_for, ctx.catalog, agent,
                                       agent.host or agent.name)
        if job is not None:
            return {"job": {"id": job.id, "plan": job.plan, "kind": job.kind,
                            "details": job.details if job.kind in PARAMETERISED else None}}
        if clock.monotonic() >= deadline:
            return Response(status_code=204)
        await asyncio.sleep(CLAIM_EVERY)


@router.post("/api/agent/jobs/{job_id}/events", response_model=EventReply)
def job_event(job_id: JobId, body: EventBody, agent: Agent, ctx: Ctx) -> dict[str, Any]:
    """Progress or a log line of the agent's running job; whether to stop (cancel)."""
    job = agents_job(ctx.catalog, agent, job_id)
    if body.kind == "progress":
        return {"cancel_requested": job_queue.set_progress(ctx.catalog, job_id, body.data)}
    line = str(body.data.get("message", ""))[:job_queue.MESSAGE_LIMIT]
    job_queue.add_event(ctx.catalog, job_id, "log", {"message": line,
                                                      **step_event(body.data.get("step"))})
    return {"cancel_requested": job.cancel_requested}


@router.post("/api/agent/jobs/{job_id}/result", response_model=Status)
def job_result(job_id: JobId, body: ResultBody, agent: Agent, ctx: Ctx) -> dict[str, str]:
    agents_job(ctx.catalog, agent, job_id)
    job_queue.finish_job(ctx.catalog, job_id, body.status, error=body.error,
                         summary=body.summary, snapshot_id=body.snapshot_id,
                         bytes_added=body.bytes_added)
    audit(ctx.catalog, agent.actor, agent.address, "job.finish", f"job:{job_id}",
          "ok" if body.status == "succeeded" else "failed", agent.institution,
          {"status": body.status, "snapshot_id": body.snapshot_id})
    return {"status": body.status}


@router.post("/api/agent/results", response_model=ResultsReply)
def remote_results(body: ResultsBody, agent: Agent, ctx: Ctx) -> dict[str, int]:
    """Jobs the agent ran on its own schedule (its offline queue): each recorded once,
    by its origin key `institution/agent:local id`, however often it is sent."""
    recorded = duplicates = 0
    for result in body.results:
        times = {field: _utc(getattr(result, field), field)
                 for field in ("scheduled_for", "started_at", "finished_at")}
        fresh = job_queue.record_remote(
            ctx.catalog, origin_key=f"{agent.qualified}:{result.local_id}",
            institution=agent.institution, agent=agent.name, plan=result.plan,
            kind=result.kind, status=result.status, error=result.error,
            snapshot_id=result.snapshot_id, bytes_added=result.bytes_added,
            details=result.details, **times)
        recorded += fresh
        duplicates += not fresh
    if recorded:
        audit(ctx.catalog, agent.actor, agent.address, "job.report", agent.qualified, "ok",
              agent.institution, {"recorded": recorded, "duplicates": duplicates})
    return {"recorded": recorded, "duplicates": duplicates}


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise UsageError(f"results: {field} is out of range") from None
