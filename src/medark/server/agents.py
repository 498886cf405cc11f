"""Agents: enrolment with a single-use token, the agent's own bound credential, heartbeats,
and marking an agent offline when they stop (the periodic task `agents.offline`).

An agent is a principal of its own kind: its credential (`mda_…`, stored as a SHA-256)
reaches only /api/agent/*, never a user's endpoint, and a user's session or API token
never reaches /api/agent/*. Every enrolment (ok or refused), revocation and change of
state is audited; no token or credential is ever in a record or a message.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from medark.catalog.job_queue import claim_next, get_job
from medark.catalog.models import Job
from medark.catalog.statuses import QUEUED, RUNNING
from medark.catalog.store import Catalog, JobRecord
from medark.errors import AccessDenied, AgentRefused, Conflict, ObjectNotFound, UsageError
from medark.server import roles as R
from medark.server import scheduler
from medark.server.accounts import NAME, Principal, valid_name
from medark.server.db import audit, aware, digest, transaction
from medark.server.tables import Institution
from medark.server.tables_agents import Agent, EnrolmentToken
from medark.util import clock

CREDENTIAL_PREFIX = "mda_"
ENROLMENT_PREFIX = "mde_"
KINDS = ("backup", "check", "restore_test", "restore", "dr_switchover", "dr_failover",
         "dr_failback", "dr_drill")
"""The job kinds an agent runs: nothing else, and never a command the server names (a
restore names a target of the agent's own configuration, a DR action a system of its
[dr]: server/remote_ops.py)."""
DEFAULT_INTERVAL = 10.0
"""Seconds between an agent's heartbeats unless it says otherwise."""
MISSED_HEARTBEATS = 3
OFFLINE_TASK_EVERY = 5.0
ONLINE = "online"
OFFLINE = "offline"
MAX_TOKEN_HOURS = 168


@dataclass(frozen=True)
class AgentPrincipal:
    """An agent making a request with its credential."""

    agent_id: int
    name: str
    institution: str
    institution_id: int
    address: str
    plans: tuple[str, ...]
    host: str = ""

    @property
    def actor(self) -> str:
        return f"agent:{self.institution}/{self.name}"

    @property
    def qualified(self) -> str:
        """institution/name: an agent's name is unique only within its institution."""
        return f"{self.institution}/{self.name}"


def _fmt(value: datetime | None) -> str | None:
    value = aware(value)
    return clock.format_time(value) if value else None


def agent_view(row: Agent, institution: str) -> dict[str, Any]:
    advertised = row.advertised or {}
    return {"name": row.name, "institution": institution, "host": row.host,
            "version": row.version, "state": "revoked" if row.revoked_at else row.state,
            "enrolled_at": _fmt(row.enrolled_at), "last_heartbeat": _fmt(row.last_heartbeat),
            "plans": list(advertised.get("plans", [])),
            "kinds": list(advertised.get("kinds", [])),
            "queue_length": row.queue_length, "revoked_at": _fmt(row.revoked_at)}


def alert_key(institution: str, name: str) -> str:
    return f"agent_offline:{institution}/{name}"


class Agents:
    def __init__(self, catalog: Catalog, offline_after: float | None = None) -> None:
        self.catalog = catalog
        self.offline_after = offline_after
        """The server's --agent-offline-after; None: MISSED_HEARTBEATS × the agent's
        heartbeat interval."""

    # management (users)

    def create_token(self, principal: Principal, institution: str, hours: int,
                     name_hint: str | None, now: datetime) -> tuple[dict[str, Any], str]:
        """A single-use enrolment token for a host of `institution`, valid `hours`; the
        token is returned once and only its hash kept."""
        principal.require(R.AGENTS_MANAGE)
        if not 1 <= hours <= MAX_TOKEN_HOURS:
            raise UsageError(f"an enrolment token lives 1 to {MAX_TOKEN_HOURS} hours")
        if name_hint is not None:
            valid_name(name_hint, "agent")
        secret = ENROLMENT_PREFIX + secrets.token_urlsafe(32)
        with transaction(self.catalog) as session:
            inst = self._scoped(session, principal, institution, "agent.token.create")
            row = EnrolmentToken(token_hash=digest(secret), institution_id=inst.id,
                                 name_hint=name_hint, created_by=principal.actor,
                                 created_at=now, expires_at=now + timedelta(hours=hours),
                                 used_at=None, used_by_agent=None)
            session.add(row)
            session.flush()
            view = {"id": row.id, "institution": inst.name, "name_hint": name_hint,
                    "created_by": principal.actor, "created_at": _fmt(row.created_at),
                    "expires_at": _fmt(row.expires_at)}
        audit(self.catalog, principal.actor, principal.address, "agent.token.create",
              f"enrolment-token:{view['id']}", "ok", institution,
              {"expires_at": view["expires_at"], "name_hint": name_hint})
        return view, secret

    def agents(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require(R.AGENTS_READ)
        query = select(Agent, Institution).join(Institution).order_by(Agent.id)
        if not principal.center:
            query = query.where(Agent.institution_id == principal.institution_id)
        with transaction(self.catalog) as session:
            return [agent_view(row, inst.name) for row, inst in session.execute(query)]

    def revoke(self, principal: Principal, institution: str, name: str,
               now: datetime) -> dict[str, Any]:
        """The agent's credential stops working at once; its record stays."""
        principal.require(R.AGENTS_MANAGE)
        with transaction(self.catalog) as session:
            inst = self._scoped(session, principal, institution, "agent.revoke")
            row = None if not NAME.fullmatch(name) else session.scalars(
                select(Agent).where(Agent.institution_id == inst.id,
                                    Agent.name == name)).first()
            if row is None:
                raise ObjectNotFound(f"no agent {name!r} in {institution}")
            if row.revoked_at is None:
                row.revoked_at = now
            view = agent_view(row, inst.name)
        self.catalog.resolve_alert(alert_key(institution, name))
        audit(self.catalog, principal.actor, principal.address, "agent.revoke",
              f"{institution}/{name}", "ok", institution)
        return view

    def _scoped(self, session: Any, principal: Principal, institution: str,
                action: str) -> Institution:
        row = None if not NAME.fullmatch(institution) else session.scalars(
            select(Institution).where(Institution.name == institution)).first()
        if row is None:
            raise ObjectNotFound(f"no institution {institution!r}")
        if not principal.center and row.id != principal.institution_id:
            audit(self.catalog, principal.actor, principal.address, action, institution,
                  "denied", principal.institution, {"reason": "out_of_scope"})
            raise AccessDenied(f"institution {institution} is not yours", "out_of_scope")
        assert isinstance(row, Institution)
        return row

    # the agent's own calls

    def enroll(self, token: str, name: str | None, host: str, version: str,
               address: str, now: datetime) -> tuple[dict[str, Any], str]:
        """Spend the enrolment token (once, before it expires) on a new agent; the view
        and the agent's credential (returned once, only its hash kept)."""
        credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
        with transaction(self.catalog) as session:
            row = session.scalars(select(EnrolmentToken).where(
                EnrolmentToken.token_hash == digest(token))).first()
            reason = ("unknown" if row is None else "used" if row.used_at is not None
                      else "expired" if (aware(row.expires_at) or now) <= now else None)
            inst = session.get(Institution, row.institution_id) if row else None
        if reason is not None or row is None or inst is None:
            self._refused(address, name, inst.name if inst else None, reason or "unknown")
            raise AgentRefused("the enrolment token is unknown, used or expired: ask the "
                               "system administrator for a new one", "enrolment_refused")
        agent_name = valid_name(name or row.name_hint or host_name(host), "agent")
        try:
            with transaction(self.catalog) as session:
                spent = session.execute(
                    update(EnrolmentToken).where(EnrolmentToken.id == row.id,
                                                 EnrolmentToken.used_at.is_(None))
                    .values(used_at=now, used_by_agent=agent_name))
                if spent.rowcount != 1:  # type: ignore[attr-defined]
                    raise _Raced()
                agent = session.scalars(select(Agent).where(
                    Agent.institution_id == inst.id, Agent.name == agent_name)).first()
                if agent is not None and agent.revoked_at is None:
                    raise _Taken()
                if agent is None:
                    agent = Agent(name=agent_name, institution_id=inst.id)
                    session.add(agent)
                agent.credential_hash = digest(credential)
                agent.enrolled_at = now
                agent.last_heartbeat = now
                agent.state = ONLINE
                agent.offline_after = self._offline_after(DEFAULT_INTERVAL)
                agent.version = version
                agent.host = host
                agent.advertised = None
                agent.queue_length = None
                agent.revoked_at = None
                session.flush()
                view = agent_view(agent, inst.name)
        except _Raced:
            self._refused(address, agent_name, inst.name, "used")
            raise AgentRefused("the enrolment token is unknown, used or expired: ask the "
                               "system administrator for a new one",
                               "enrolment_refused") from None
        except (_Taken, IntegrityError):
            self._refused(address, agent_name, inst.name, "name_taken")
            raise Conflict(f"an agent named {agent_name!r} is enrolled in {inst.name} "
                           "already: revoke it first or choose another --name") from None
        audit(self.catalog, f"agent:{inst.name}/{agent_name}", address, "agent.enroll",
              f"{inst.name}/{agent_name}", "ok", inst.name,
              {"host": host, "version": version, "token": row.id})
        return view, credential

    def _refused(self, address: str, name: str | None, institution: str | None,
                 reason: str) -> None:
        audit(self.catalog, f"agent:{name or '-'}", address, "agent.enroll",
              f"{institution}/{name}" if institution and name else name, "denied",
              institution, {"reason": reason})

    def authenticate(self, credential: str, address: str) -> AgentPrincipal:
        with transaction(self.catalog) as session:
            found = session.execute(select(Agent, Institution).join(Institution).where(
                Agent.credential_hash == digest(credential))).first()
            if found is None or found[0].revoked_at is not None:
                refused = found[0].name if found else None
            else:
                row, inst = found
                plans = tuple((row.advertised or {}).get("plans", []))
                return AgentPrincipal(row.id, row.name, inst.name, inst.id, address, plans,
                                      row.host)
        audit(self.catalog, f"agent:{refused or '-'}", address, "agent.auth", refused,
              "denied", found[1].name if found else None,
              {"reason": "revoked" if found else "unknown"})
        raise AgentRefused("unknown or revoked agent credential: enrol the agent again "
                           "(medark agent enroll)", "invalid_agent_credential")

    def heartbeat(self, agent: AgentPrincipal, version: str, plans: list[str],
                  queue_length: int, interval: float, now: datetime) -> None:
        """Record the heartbeat; an agent that was offline comes back (audited, its
        alert resolved)."""
        with transaction(self.catalog) as session:
            row = session.get(Agent, agent.agent_id)
            assert row is not None
            came_back = row.state == OFFLINE
            row.last_heartbeat = now
            row.state = ONLINE
            row.version = version
            row.offline_after = self._offline_after(interval)
            row.advertised = {**(row.advertised or {}), "plans": sorted(set(plans)),
                              "kinds": list(KINDS), "interval": interval}
            row.queue_length = queue_length
        if came_back:
            self.catalog.resolve_alert(alert_key(agent.institution, agent.name))
            audit(self.catalog, agent.actor, agent.address, "agent.online",
                  agent.qualified, "ok", agent.institution)

    def _offline_after(self, interval: float) -> float:
        return self.offline_after or MISSED_HEARTBEATS * interval


def host_name(host: str) -> str:
    """An agent's name from its host name when neither it nor the token gave one."""
    name = re.sub(r"[^a-z0-9._-]+", "-", host.lower()).strip("-._")[:64]
    return name or "agent"


class _Raced(Exception):
    """Another enrolment spent the token between the check and the update."""


class _Taken(Exception):
    """The agent name is in use in the institution."""


def mark_offline(catalog: Catalog, now: datetime) -> list[str]:
    """The periodic task: every online agent whose last heartbeat is older than its
    `offline_after` becomes offline, audited, with an `agent_offline` alert. The agents
    marked (institution/name)."""
    marked: list[tuple[str, str, datetime | None]] = []
    with transaction(catalog) as session:
        query = select(Agent, Institution).join(Institution).where(
            Agent.state == ONLINE, Agent.revoked_at.is_(None))
        for row, inst in session.execute(query):
            last = aware(row.last_heartbeat)
            if last is None or last + timedelta(seconds=row.offline_after) <= now:
                row.state = OFFLINE
                marked.append((inst.name, row.name, last))
    for institution, name, last in marked:
        seen = clock.format_time(last) if last else None
        audit(catalog, "server", "scheduler", "agent.offline", f"{institution}/{name}",
              "ok", institution, {"last_heartbeat": seen})
        catalog.raise_alert(alert_key(institution, name), "agent_offline", f"agent:{name}",
                            f"agent {name} of {institution} sends no heartbeats (last "
                            f"{seen or 'never'})",
                            {"institution": institution, "agent": name,
                             "last_heartbeat": seen}, institution=institution)
    return [f"{i}/{n}" for i, n, _l in marked]


def claim_for(catalog: Catalog, agent: AgentPrincipal, host: str) -> JobRecord | None:
    """The next job for this agent: the oldest queued job of its institution for one of
    the plans it advertised; else a job addressed to it by name whatever its plan, so
    that the agent refuses it visibly ("unknown plan") instead of it waiting forever."""
    job = claim_next(catalog, institution=agent.institution, agent=agent.name,
                     plans=list(agent.plans), host=host)
    if job is not None:
        return job
    with transaction(catalog) as session:
        addressed = sorted(set(session.scalars(select(Job.plan).where(
            Job.status == QUEUED, Job.institution == agent.institution,
            Job.agent == agent.name, Job.cancel_requested.is_(False)))))
    if not addressed:
        return None
    return claim_next(catalog, institution=agent.institution, agent=agent.name,
                      plans=addressed, host=host)


def to_cancel(catalog: Catalog, agent: AgentPrincipal) -> list[int]:
    """The agent's running jobs whose cancellation was asked for."""
    with transaction(catalog) as session:
        return list(session.scalars(select(Job.id).where(
            Job.status == RUNNING, Job.institution == agent.institution,
            Job.agent == agent.name, Job.cancel_requested.is_(True)).order_by(Job.id)))


def agents_job(catalog: Catalog, agent: AgentPrincipal, job_id: int) -> JobRecord:
    """The job, if it is this agent's; ObjectNotFound otherwise (another institution's or
    agent's job is not named)."""
    job = get_job(catalog, job_id)
    if job is None or job.institution != agent.institution or job.agent != agent.name:
        raise ObjectNotFound(f"job {job_id} is not this agent's")
    return job


def _offline_task(catalog: Catalog, now: datetime) -> None:
    mark_offline(catalog, now)


scheduler.register("agents.offline", OFFLINE_TASK_EVERY, _offline_task)
