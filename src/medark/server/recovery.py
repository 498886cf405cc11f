"""What a restore of a system can start from, for the console's restore wizard: the
recoverable points (the system's snapshots), the windows of continuous log capture when
the server knows them, and the restore targets the institution's agents declare.

The targets are names only: an agent sends the names of its `[agent] restore_targets`
with each heartbeat (never the directories, which stay on the host), and the server
keeps the latest per agent. A restore request goes to the agent that has a plan of the
system (server/remote_ops.py), so the targets shown are those of the agents that
advertise such a plan (else every agent of the institution heard from).

Continuous WAL/binlog windows: the server does not read a repository's WAL or binlog
archive; the agent that has a plan with a streamed database source computes its windows
(agent/windows.py) and sends them with a heartbeat when they change, and the server
keeps the latest per agent. Until one did, `windows_known` is false. A point-in-time
restore (server/remote_ops.py) must name a time inside one of them and goes to the agent
that reported it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from medark.catalog.store import Catalog
from medark.config.agent_conf import TARGET_NAME
from medark.config.plans import MedarkConfig
from medark.server.agents import AgentPrincipal
from medark.server.db import transaction
from medark.server.grants import Grant
from medark.server.tables import Institution
from medark.server.tables_agents import Agent
from medark.util import clock

MAX_TARGETS = 100
LOG_SOURCES = ("postgres", "mariadb")
"""Source types whose WAL or binlog may be captured continuously."""


def record_targets(catalog: Catalog, agent: AgentPrincipal, names: list[str]) -> None:
    """Keep the names of the agent's restore targets (its latest heartbeat's)."""
    kept = sorted({n for n in names if TARGET_NAME.fullmatch(n)})[:MAX_TARGETS]
    with transaction(catalog) as session:
        row = session.get(Agent, agent.agent_id)
        if row is None or (row.advertised or {}).get("restore_targets") == kept:
            return
        row.advertised = {**(row.advertised or {}), "restore_targets": kept}


def record_windows(catalog: Catalog, agent: AgentPrincipal,
                   report: dict[str, list[dict[str, Any]]] | None, now: datetime) -> None:
    """Keep the agent's windows (its plans', as its latest report said); None: the agent
    sent none this time (unchanged, or it could not compute them)."""
    if report is None:
        return
    with transaction(catalog) as session:
        row = session.get(Agent, agent.agent_id)
        if row is None:
            return
        row.advertised = {**(row.advertised or {}),
                          "windows": {"at": clock.format_time(now), "plans": report}}


@dataclass(frozen=True)
class KnownWindow:
    """A window an agent reported, as the server keeps it."""

    agent: str
    plan: str
    reported_at: str
    report: dict[str, Any]

    @property
    def start(self) -> datetime:
        return clock.parse_time(self.report["start"])

    @property
    def end(self) -> datetime:
        return clock.parse_time(self.report["end"])

    def view(self) -> dict[str, Any]:
        r = self.report
        return {"kind": r["kind"], "start": r["start"], "end": r["end"], "plan": self.plan,
                "source": r["source"], "base": str(r["base"])[:8],
                "gap_after": bool(r["gap_after"]), "agent": self.agent,
                "reported_at": self.reported_at}


def known_windows(catalog: Catalog, institution: str, plans: list[str],
                  grant: Grant | None = None) -> tuple[bool, list[KnownWindow]]:
    """(whether an agent of the institution reported windows for one of `plans`, those
    windows oldest first); with a grant, those from a base backup it allows."""
    with transaction(catalog) as session:
        rows = list(session.scalars(
            select(Agent).join(Institution).where(Institution.name == institution,
                                                  Agent.revoked_at.is_(None))
            .order_by(Agent.name)))
        reports = [(row.name, (row.advertised or {}).get("windows") or {}) for row in rows]
    known, found = False, []
    for name, held in reports:
        by_plan = held.get("plans") or {}
        for plan in plans:
            if plan in by_plan:
                known = True
                found += [KnownWindow(name, plan, str(held.get("at")), w)
                          for w in by_plan[plan]]
    if grant is not None:
        found = [w for w in found if grant.allows_snapshot(str(w.report["base"]))]
    return known, sorted(found, key=lambda w: (w.start, w.plan, w.agent))


def restore_targets(catalog: Catalog, institution: str, plans: list[str]
                    ) -> list[dict[str, Any]]:
    """Each agent that would run the system's restore, with its targets' names: the
    agents advertising one of `plans`, else every agent of the institution."""
    with transaction(catalog) as session:
        rows = list(session.scalars(
            select(Agent).join(Institution).where(Institution.name == institution,
                                                  Agent.revoked_at.is_(None))
            .order_by(Agent.name)))
        agents = [{"agent": row.name, "state": row.state,
                   "plans": [str(p) for p in (row.advertised or {}).get("plans", [])],
                   "targets": [str(t) for t in
                               (row.advertised or {}).get("restore_targets", [])]}
                  for row in rows]
    having = [a for a in agents if set(a["plans"]) & set(plans)]
    return [{"agent": a["agent"], "state": a["state"], "targets": a["targets"]}
            for a in (having or agents)]


def system_plans(config: MedarkConfig, system: str) -> list[str]:
    return [name for name, plan in config.plans.items() if plan.system == system]


def source_facts(config: MedarkConfig, system: str) -> dict[str, Any]:
    """The system's source types and whether it is a database whose log may be captured
    continuously."""
    sources = config.systems[system].sources
    kinds = sorted({s.type for s in sources})
    streamed = any(s.type in LOG_SOURCES and s.stream for s in sources)
    return {"source_types": kinds,
            "database": any(k in LOG_SOURCES for k in kinds),
            "log_streamed": streamed}
