"""Jobs on the management server: list them in scope, run a plan now, cancel, and the
periodic task that fails the jobs of agents that stopped reporting.

Scope: a regional center's account sees every institution's jobs (and those of the
catalog's own daemon, institution None), any other account its institution's; a job
outside scope is 404, as if it did not exist; a named institution outside scope is 403
`out_of_scope`. Running and cancelling need `jobs.run` (operator, sysadmin); every run,
cancel and refusal is audited (`job.run`, `job.cancel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from medark.catalog import job_queue
from medark.catalog.store import Catalog, JobRecord
from medark.errors import AccessDenied, Conflict, ObjectNotFound, UsageError
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.configs import current_config, in_scope
from medark.server.db import audit, transaction
from medark.server.scheduler import Task, register, registered

JOB_KINDS = ("backup", "check", "restore_test")
"""What "run now" may ask of an agent (the kinds an agent knows how to run)."""
MAX_JOBS = 500
STALE_AFTER = 600.0
"""Seconds a running job's agent may stay silent (no progress, log or status) before the
job is failed: the server's default (`medark server --job-stale-after`)."""
STALE_TASK = "jobs.stale"
STALE_EVERY = 60.0


class UnknownPlan(UsageError):
    """The plan is not in the institution's current configuration (API 422)."""

    code = "unknown_plan"


@dataclass(frozen=True)
class JobFilter:
    institution: str | None = None
    plan: str | None = None
    status: str | None = None
    limit: int = 100
    before_id: int | None = None


def list_jobs(catalog: Catalog, who: Principal, wanted: JobFilter) -> list[JobRecord]:
    """Newest first, of the institutions in scope (or of the one named)."""
    _allowed(catalog, who, R.JOBS_READ, "job.read", wanted.institution, wanted.institution)
    if wanted.institution is not None:
        with transaction(catalog) as session:
            in_scope(catalog, session, who, wanted.institution, "job.read")
        institutions: list[str] | None = [wanted.institution]
    else:
        institutions = None if who.center else [who.institution]
    return job_queue.list_jobs(catalog, institutions=institutions, plan=wanted.plan,
                               status=wanted.status, limit=min(wanted.limit, MAX_JOBS),
                               before_id=wanted.before_id)


def visible_job(catalog: Catalog, who: Principal, job_id: int) -> JobRecord:
    """The job, when the caller may see it; 404 otherwise (another institution's job is
    not admitted to exist)."""
    _allowed(catalog, who, R.JOBS_READ, "job.read", f"job:{job_id}", None)
    job = job_queue.get_job(catalog, job_id)
    if job is None or not (who.center or job.institution == who.institution):
        raise ObjectNotFound(f"no job {job_id}")
    return job


def run_now(catalog: Catalog, who: Principal, institution: str, plan: str,
            kind: str) -> JobRecord:
    """Queue a job of the institution's plan for its agent to start at once."""
    if any("\ud800" <= c <= "\udfff" for c in plan):  # JSON allows it; UTF-8 does not
        raise UnknownPlan("the plan's name is not valid text")
    target = f"{institution}/{plan}"
    _allowed(catalog, who, R.JOBS_RUN, "job.run", target, institution)
    with transaction(catalog) as session:
        in_scope(catalog, session, who, institution, "job.run", target)
    if kind not in JOB_KINDS:
        raise UsageError(f"unknown job kind {kind!r}: use one of {', '.join(JOB_KINDS)}")
    found = current_config(catalog, institution)
    configured = found.config.plans.get(plan) if found is not None else None
    if configured is None:
        where = (f"version {found.version} of {institution}'s configuration"
                 if found is not None else f"{institution}'s configuration (it has none yet)")
        audit(catalog, who.actor, who.address, "job.run", target, "failed", institution,
              {"reason": UnknownPlan.code, "kind": kind})
        raise UnknownPlan(f"plan {plan!r} is not in {where}")
    job = job_queue.queue_job(catalog, institution=institution, plan=plan, kind=kind,
                              requested_by=who.actor, system=configured.system)
    audit(catalog, who.actor, who.address, "job.run", target, "ok", institution,
          {"job": job.id, "kind": kind, "system": configured.system})
    return job


def cancel(catalog: Catalog, who: Principal, job_id: int) -> JobRecord:
    """Cancel a queued job at once, or ask a running job's agent to stop."""
    target = f"job:{job_id}"
    _allowed(catalog, who, R.JOBS_RUN, "job.cancel", target, None)
    try:
        job = visible_job(catalog, who, job_id)
    except ObjectNotFound:
        audit(catalog, who.actor, who.address, "job.cancel", target, "denied",
              who.institution, {"reason": "not_found"})
        raise
    try:
        cancelled = job_queue.request_cancel(catalog, job_id)
    except Conflict as exc:
        audit(catalog, who.actor, who.address, "job.cancel", target, "failed",
              job.institution, {"reason": exc.code, "status": job.status})
        raise
    audit(catalog, who.actor, who.address, "job.cancel", target, "ok", job.institution,
          {"plan": job.plan, "status": cancelled.status})
    return cancelled


def _allowed(catalog: Catalog, who: Principal, permission: str, action: str,
             target: str | None, institution: str | None) -> None:
    try:
        who.require(permission)
    except AccessDenied as exc:
        audit(catalog, who.actor, who.address, action, target, "denied",
              institution or who.institution, {"reason": exc.code})
        raise


def stale_task(quiet_seconds: float = STALE_AFTER) -> Task:
    """The periodic task failing the running jobs whose agent said nothing for
    `quiet_seconds` (looked at four times in that span, at most every minute)."""
    quiet = timedelta(seconds=quiet_seconds)

    def fail_stale(catalog: Catalog, now: datetime) -> None:
        for job_id in job_queue.fail_stale(catalog, now, quiet):
            audit(catalog, "server", "scheduler", "job.stale", f"job:{job_id}", "ok",
                  _institution_of(catalog, job_id),
                  {"error": job_queue.STALE_ERROR, "quiet_seconds": quiet_seconds})

    return Task(STALE_TASK, min(STALE_EVERY, max(quiet_seconds / 4, 0.5)), fail_stale)


def scheduled_tasks(stale_after: float = STALE_AFTER) -> list[Task]:
    """Every registered task, jobs.stale with the server's --job-stale-after."""
    return [*(task for task in registered() if task.name != STALE_TASK),
            stale_task(stale_after)]


def _institution_of(catalog: Catalog, job_id: int) -> str | None:
    job = job_queue.get_job(catalog, job_id)
    return job.institution if job is not None else None


_default = stale_task()
register(_default.name, _default.every_seconds, _default.fn)
