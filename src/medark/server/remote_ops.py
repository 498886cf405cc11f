"""Restores and DR actions requested through the server, run by the institution's agent
(agent/remote_jobs.py), and the DR status agents report.

The server queues a job that names things, never a command or a path: a restore names
the snapshot, paths inside it and a restore target by name (the agent's own
configuration says which directory that is, and refuses any other); a DR action names
the system (the agent runs it only for a system of its own [dr] tables). Restoring is a
read of patient data, so another institution's needs a grant (server/grants.py), the
regional center's accounts too; every request and refusal is audited
(`snapshot.restore.request`, `dr.request`). A point-in-time restore names a plan, a
database source, a time and a target: the time must lie inside a window an agent
reported (server/recovery.py; 409 `outside_window` otherwise), and the job goes to that
agent. A switchover, failover or failback moves a
system between its sites: the request repeats the system's name in `confirm` (422
`confirmation_required` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from medark.catalog import job_queue
from medark.catalog.store import Catalog, JobRecord
from medark.config.agent_conf import (
    MAX_PATHS,
    TARGET_NAME,
    dicom_items_problem,
    snapshot_paths_problem,
)
from medark.errors import Conflict, MedarkError, ObjectNotFound, UsageError
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.agents import AgentPrincipal
from medark.server.configs import current_config, in_scope
from medark.server.db import audit, aware, transaction
from medark.server.grants import Grant, grant_allows
from medark.server.oversight import allowed
from medark.server.recovery import KnownWindow, known_windows, system_plans
from medark.server.tables import Institution
from medark.server.tables_agents import Agent
from medark.util import clock

RESTORE = "restore"
DR_ACTIONS = {"switchover": "dr_switchover", "failover": "dr_failover",
              "failback": "dr_failback", "drill": "dr_drill"}
"""A DR action -> its job kind."""
CONFIRMED = ("switchover", "failover", "failback")
"""The actions that move a system between its sites: the request types its name again."""
PARAMETERISED = (RESTORE, *DR_ACTIONS.values())
"""The job kinds whose `details` (names only) go to the agent with the job."""
RESTORE_ACTION = "snapshot.restore.request"
DR_ACTION = "dr.request"


class ConfirmationRequired(UsageError):
    """A switchover, failover or failback without the system's name repeated in
    `confirm`."""

    code = "confirmation_required"


class OutsideWindow(Conflict):
    """A point in time no reported window holds."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "outside_window")


class InvalidRestore(UsageError):
    """A restore target's name or a path inside the snapshot the agent would refuse."""

    code = "invalid_restore"


def request_restore(catalog: Catalog, who: Principal, institution: str, system: str,
                    snapshot: str | None, paths: list[str], target: str, *,
                    plan: str | None = None, source: str | None = None,
                    dicom: list[dict[str, Any]] | None = None) -> JobRecord:
    """Queue a restore of `snapshot` (or only `paths` of it, or the `dicom` studies of
    its DICOM catalog) into the agent's restore target named `target`, for the agent
    that has the system's plan. `plan` and `source` belong to a point-in-time restore:
    given here, the request is refused."""
    where = f"{institution}/{system} snapshot:{snapshot}"
    _require(catalog, who, R.RESTORES_RUN, RESTORE_ACTION, where, institution)
    grant = grant_allows(catalog, who, institution, system, snapshot=snapshot,
                         use=RESTORE_ACTION)
    record: dict[str, Any] = {"grant": grant.id if grant else None, "system": system,
                              "target": target, "paths": len(paths)}
    if dicom:
        record["dicom"] = [{"study": i.get("study"), "series": len(i.get("series") or [])}
                           for i in dicom[:MAX_PATHS] if isinstance(i, dict)]
    try:
        problem = _restore_problem(paths, target)
        if problem is None and dicom:
            problem = ("give paths or dicom, not both" if paths
                       else dicom_items_problem(dicom))
        if snapshot is None:
            problem = "give a snapshot (or a time, for a database at a point in time)"
        elif plan is not None or source is not None:
            problem = "plan and source go with time (a point-in-time restore)"
        if problem is not None or snapshot is None:
            raise InvalidRestore(problem or "a snapshot")
        found = current_config(catalog, institution)
        if found is None:
            raise Conflict(f"{institution} has no configuration yet", "no_configuration")
        plans = [name for name, plan in found.config.plans.items() if plan.system == system]
        if not plans:
            raise ObjectNotFound(f"no plan protects system {system!r} in {institution}'s "
                                 "configuration")
        job = job_queue.queue_job(catalog, institution=institution, plan=plans[0],
                                  kind=RESTORE, requested_by=who.actor, system=system,
                                  details={"snapshot": snapshot, "target": target,
                                           **({"dicom": dicom} if dicom
                                              else {"paths": paths})})
    except MedarkError as exc:
        audit(catalog, who.actor, who.address, RESTORE_ACTION, where, "failed",
              institution, {**record, "reason": exc.code})
        raise
    audit(catalog, who.actor, who.address, RESTORE_ACTION, where, "ok", institution,
          {**record, "job": job.id, "plan": plans[0]})
    return job


@dataclass(frozen=True)
class PointInTime:
    """A point-in-time restore as asked: its form is checked after the caller's rights,
    like a target's name (422 `invalid_restore`)."""

    time: str
    plan: str | None
    source: str | None
    target: str
    snapshot: str | None = None
    paths: list[str] = field(default_factory=list)
    dicom: list[dict[str, Any]] = field(default_factory=list)

    def moment(self) -> datetime | None:
        try:
            return clock.parse_time(self.time)
        except ValueError:
            return None

    def problem(self) -> str | None:
        if self.snapshot is not None:
            return "give one of snapshot and time, not both"
        if self.paths or self.dicom:
            return ("paths and dicom go with snapshot: a point-in-time restore writes the "
                    "whole database")
        if self.moment() is None:
            return "time: an ISO-8601 time, e.g. 2026-12-06T10:15:30Z"
        if self.plan is None:
            return "plan: a point-in-time restore names the plan whose window holds the time"
        return _restore_problem([], self.target)


def request_pitr(catalog: Catalog, who: Principal, institution: str, system: str,
                 asked: PointInTime) -> JobRecord:
    """Queue a restore of the database of the plan's source as it was at the time into a
    new directory of the restore target, for the agent whose reported window holds that
    time."""
    moment = asked.moment()
    when = clock.format_time(moment) if moment is not None else asked.time
    where = f"{institution}/{system} time:{when}"
    _require(catalog, who, R.RESTORES_RUN, RESTORE_ACTION, where, institution)
    grant = grant_allows(catalog, who, institution, system, use=RESTORE_ACTION)
    record: dict[str, Any] = {"grant": grant.id if grant else None, "system": system,
                              "target": asked.target, "time": when, "plan": asked.plan,
                              "source": asked.source}
    try:
        problem = asked.problem()
        if problem is not None or moment is None or asked.plan is None:
            raise InvalidRestore(problem or "a time and a plan")
        found = current_config(catalog, institution)
        if found is None:
            raise Conflict(f"{institution} has no configuration yet", "no_configuration")
        if asked.plan not in system_plans(found.config, system):
            raise ObjectNotFound(f"no plan {asked.plan!r} of system {system!r} in "
                                 f"{institution}'s configuration")
        window = _window_at(catalog, institution, asked.plan, asked.source, moment, grant)
        job = job_queue.queue_job(catalog, institution=institution, plan=asked.plan,
                                  kind=RESTORE, requested_by=who.actor, system=system,
                                  agent=window.agent,
                                  details={"time": when, "source": window.report["source"],
                                           "target": asked.target})
    except MedarkError as exc:
        audit(catalog, who.actor, who.address, RESTORE_ACTION, where, "failed",
              institution, {**record, "reason": exc.code})
        raise
    audit(catalog, who.actor, who.address, RESTORE_ACTION, where, "ok", institution,
          {**record, "source": window.report["source"], "job": job.id,
           "agent": window.agent, "base": str(window.report["base"])[:8]})
    return job


def _window_at(catalog: Catalog, institution: str, plan: str, source: str | None,
               moment: datetime, grant: Grant | None) -> KnownWindow:
    """The newest report's window of `plan` (and `source`) that holds `moment`."""
    _known, windows = known_windows(catalog, institution, [plan], grant)
    sources = sorted({str(w.report["source"]) for w in windows})
    if source is None and len(sources) > 1:
        raise UsageError(f"plan {plan} has several database sources "
                         f"({', '.join(sources)}): name one in source")
    mine = [w for w in windows if source is None or w.report["source"] == source]
    inside = [w for w in mine if w.start <= moment <= w.end]
    if not inside:
        spans = "; ".join(f"{w.report['start']} .. {w.report['end']}" for w in mine)
        raise OutsideWindow(
            f"{clock.format_time(moment)} is outside the recoverable windows of plan "
            f"{plan}{f' source {source}' if source else ''}: "
            + (f"restore to a time in {spans}" if spans else "no window is known"))
    return max(inside, key=lambda w: w.reported_at)


def _restore_problem(paths: list[str], target: str) -> str | None:
    if not TARGET_NAME.fullmatch(target):
        return "target: the name of a restore target of the agent's [agent] table"
    return snapshot_paths_problem(paths)


def request_dr(catalog: Catalog, who: Principal, institution: str, system: str,
               action: str, confirm: str | None) -> JobRecord:
    """Queue a DR action for the agent that reported the system in its [dr] tables
    (else the institution's agent heard from last, which refuses it visibly)."""
    where = f"{institution}/{system}"
    _require(catalog, who, R.DR_RUN, DR_ACTION, where, institution)
    with transaction(catalog) as session:
        in_scope(catalog, session, who, institution, DR_ACTION, where)
    record: dict[str, Any] = {"action": action, "system": system}
    try:
        if action not in DR_ACTIONS:
            raise UsageError(f"unknown DR action {action!r}: use one of "
                             f"{', '.join(DR_ACTIONS)}")
        if action in CONFIRMED and confirm != system:
            raise ConfirmationRequired(f"dr {action} moves {system} between its sites: "
                                       f"repeat the system's name in confirm")
        agent = _dr_agent(catalog, institution, system)
        job = job_queue.queue_job(catalog, institution=institution, plan=f"dr:{system}",
                                  kind=DR_ACTIONS[action], requested_by=who.actor,
                                  system=system, agent=agent,
                                  details={"system": system, "action": action})
    except MedarkError as exc:
        audit(catalog, who.actor, who.address, DR_ACTION, where, "failed", institution,
              {**record, "reason": exc.code})
        raise
    audit(catalog, who.actor, who.address, DR_ACTION, where, "ok", institution,
          {**record, "job": job.id, "agent": agent})
    return job


def _dr_agent(catalog: Catalog, institution: str, system: str) -> str:
    with transaction(catalog) as session:
        rows = list(session.scalars(
            select(Agent).join(Institution).where(Institution.name == institution,
                                                  Agent.revoked_at.is_(None))))
    if not rows:
        raise Conflict(f"{institution} has no enrolled agent to run a DR action",
                       "no_agent")

    def heard(row: Agent) -> tuple[bool, bool, datetime]:
        systems = (row.advertised or {}).get("dr_systems", [])
        return (system in systems, row.state == "online",
                aware(row.last_heartbeat) or datetime.min.replace(tzinfo=clock.now().tzinfo))

    return str(max(rows, key=heard).name)


def dr_status(catalog: Catalog, who: Principal, institution: str) -> dict[str, Any]:
    """The latest `medark dr status` each agent of the institution reported."""
    _require(catalog, who, R.DR_READ, "dr.read", institution, institution)
    with transaction(catalog) as session:
        inst = in_scope(catalog, session, who, institution, "dr.read")
        rows = list(session.scalars(select(Agent).where(Agent.institution_id == inst.id,
                                                        Agent.revoked_at.is_(None))
                                    .order_by(Agent.name)))
        agents = []
        for row in rows:
            advertised = row.advertised or {}
            reported = advertised.get("dr") or {}
            agents.append({"agent": row.name, "state": row.state,
                           "dr_systems": list(advertised.get("dr_systems", [])),
                           "reported_at": reported.get("at"),
                           "systems": list(reported.get("systems", []))})
    return {"institution": institution, "agents": agents}


def record_dr(catalog: Catalog, agent: AgentPrincipal, systems: list[str],
              status: list[dict[str, Any]] | None, now: datetime) -> None:
    """Keep the agent's [dr] systems and, when it sent one, its latest DR status."""
    with transaction(catalog) as session:
        row = session.get(Agent, agent.agent_id)
        if row is None:
            return
        advertised = {**(row.advertised or {}), "dr_systems": sorted(set(systems))}
        if status is not None:
            advertised["dr"] = {"at": clock.format_time(now), "systems": status}
        row.advertised = advertised


def step_event(step: object) -> dict[str, Any]:
    """A DR step an agent sent with a log line, kept in the event as `step` (its name,
    result, seconds, start and detail; nothing else, each bounded)."""
    if not isinstance(step, dict):
        return {}
    seconds = step.get("seconds")
    return {"step": {
        "name": str(step.get("name", ""))[:200], "result": str(step.get("result", ""))[:40],
        "seconds": float(seconds) if isinstance(seconds, int | float)
        and not isinstance(seconds, bool) and abs(seconds) < 1e12 else None,
        "started": str(step.get("started", ""))[:40],
        "detail": str(step.get("detail", ""))[:job_queue.MESSAGE_LIMIT]}}


def _require(catalog: Catalog, who: Principal, permission: str, action: str,
             target: str, institution: str) -> None:
    """The permission, else the refusal audited and raised, filed under the institution
    asked about when the caller's scope reaches it, else under the caller's own."""
    allowed(catalog, who, permission, action, target,
            institution if who.center or institution == who.institution
            else who.institution)
