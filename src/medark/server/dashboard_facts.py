"""What the dashboard and the topology read from the catalog, for every institution in a
caller's scope at once: each institution's current configuration, the newest jobs of each
plan and kind (the rows agents uploaded and the jobs the server queued), the open alerts,
and the DR status the agents report with their heartbeats (server/remote_ops.py).

Why a few grouped queries and not `catalog.latest` per plan (as service/compliance.py
does for one institution): a regional center has some 200 systems and 100,000 jobs, and
one round trip per plan and kind would be thousands per page; the figures are the same
(the newest job of a plan and kind, in a status), read in three queries. The server never
opens a repository or a database: what no job or report says stays None.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from medark.catalog.models import Alert, Job
from medark.catalog.statuses import ENDED, RUNNING, SUCCEEDED
from medark.catalog.store import Catalog, JobRecord, _record
from medark.config.plans import MedarkConfig
from medark.server.accounts import Principal
from medark.server.configs import ConfigRejected, check_document, in_scope
from medark.server.db import aware, transaction
from medark.server.tables import Institution
from medark.server.tables_agents import Agent
from medark.server.tables_configs import ConfigVersionRow

CHUNK = 500
"""Ids per `IN (…)`: well under SQLite's and PostgreSQL's limits on bound parameters."""
RECENT = 20_000
"""Jobs (newest ids) grouped first: at a regional center's some 1,000 jobs a day, weeks of
them; a plan with no newest or successful job among them is looked up further back."""
Key = tuple[str, str, str]
"""(institution, plan, job kind)."""


@dataclass(frozen=True)
class Inst:
    """An institution in scope and its current configuration (None before its first, or
    when the stored version no longer passes the checks: `problem` says which)."""

    name: str
    title: str
    config: MedarkConfig | None
    version: int | None
    problem: str | None = None
    """no_configuration or invalid_configuration."""
    problem_message: str | None = None


@dataclass(frozen=True)
class AgentState:
    name: str
    institution: str
    state: str
    """online or offline."""
    dr_systems: list[str]
    reported_at: str | None
    systems: list[dict[str, Any]]
    """The `medark --json dr status` systems it last reported."""


@dataclass
class Facts:
    institutions: list[Inst]
    newest: dict[Key, JobRecord] = field(default_factory=dict)
    """The newest ended job (succeeded, failed or cancelled) of each plan and kind."""
    succeeded: dict[Key, JobRecord] = field(default_factory=dict)
    running: dict[Key, JobRecord] = field(default_factory=dict)
    alerts: list[Any] = field(default_factory=list)
    """Open alerts: rows of (id, institution, plan, kind, key)."""
    agents: list[AgentState] = field(default_factory=list)
    _alert_counts: Counter[tuple[str, str | None]] | None = field(default=None, repr=False)

    def alerts_of(self, institution: str, plans: Iterable[str]) -> int:
        """Open alerts of these plans (counted once per page, not per system: a
        regional center's 200 systems each looked through every open alert)."""
        if self._alert_counts is None:
            self._alert_counts = Counter((a.institution, a.plan) for a in self.alerts)
        return sum(self._alert_counts[(institution, plan)] for plan in set(plans))

    def job(self, which: str, institution: str, plan: str, kind: str) -> JobRecord | None:
        table = {"newest": self.newest, "succeeded": self.succeeded,
                 "running": self.running}[which]
        return table.get((institution, plan, kind))

    def dr_report(self, institution: str, system: str
                  ) -> tuple[AgentState, dict[str, Any]] | None:
        """The newest DR status of the system an agent of the institution reported."""
        found: tuple[AgentState, dict[str, Any]] | None = None
        for agent in self.agents:
            if agent.institution != institution:
                continue
            for entry in agent.systems:
                if entry.get("system") != system:
                    continue
                if found is None or (agent.reported_at or "") > (found[0].reported_at or ""):
                    found = (agent, entry)
        return found


def scoped(catalog: Catalog, principal: Principal, institution: str | None,
           action: str) -> list[tuple[str, str]]:
    """(name, title) of the institutions the caller may see, or only `institution` (403
    `out_of_scope` outside the scope, audited as `action`; 404 unknown)."""
    with transaction(catalog) as session:
        if institution is not None:
            row = in_scope(catalog, session, principal, institution, action)
            return [(row.name, row.title)]
        query = select(Institution.name, Institution.title).order_by(Institution.name)
        if not principal.center:
            query = query.where(Institution.id == principal.institution_id)
        return [(name, title) for name, title in session.execute(query)]


def load(catalog: Catalog, institutions: list[tuple[str, str]]) -> Facts:
    """Everything the dashboard judges from, for these institutions: read in one
    transaction (a regional center's page was 18 of them, one per configuration, each a
    few round trips the loaded server waited on)."""
    names = [name for name, _title in institutions]
    with transaction(catalog) as session:
        documents = _documents(session, names)
        found = [_inst(name, title, documents.get(name)) for name, title in institutions]
        facts = Facts(found)
        if names:
            _jobs(session, names, facts)
            facts.alerts = _open_alerts(session, names)
            facts.agents = _agents(session, names)
    return facts


def _documents(session: Session, names: list[str]) -> dict[str, tuple[int, str]]:
    """(version, document) of each institution's newest configuration, by name."""
    latest = (select(ConfigVersionRow.institution_id,
                     func.max(ConfigVersionRow.version).label("version"))
              .group_by(ConfigVersionRow.institution_id).subquery())
    query = (select(Institution.name, ConfigVersionRow.version, ConfigVersionRow.document)
             .join(latest, latest.c.institution_id == Institution.id)
             .join(ConfigVersionRow, (ConfigVersionRow.institution_id == Institution.id)
                   & (ConfigVersionRow.version == latest.c.version))
             .where(Institution.name.in_(names)))
    return {name: (version, document) for name, version, document in session.execute(query)}


def _inst(name: str, title: str, stored: tuple[int, str] | None) -> Inst:
    """The institution with its configuration checked (configs.check_document keeps each
    document it checked: a regional center's 17 are checked once, not per request)."""
    if stored is None:
        return Inst(name, title, None, None, "no_configuration",
                    f"{name} has no configuration yet")
    version, document = stored
    try:
        return Inst(name, title, check_document(document), version)
    except ConfigRejected as exc:
        return Inst(name, title, None, None, "invalid_configuration",
                    f"version {version} of {name}'s configuration no longer passes the "
                    f"checks (save a corrected version): {str(exc).splitlines()[0]}")


def _jobs(session: Session, names: list[str], facts: Facts) -> None:
    """The newest job of each (institution, plan, kind) in each status: grouped over the
    newest RECENT jobs (a range of the primary key), then over the older ones only for
    the plans whose newest or newest successful job that did not hold, and the running
    ones (a continuous copy runs for weeks) through the institution-status index; then
    those rows by id (their columns, not ORM objects: some 600 of them per page)."""
    best: dict[tuple[str, Key], int] = {}
    top = int(session.scalar(select(func.max(Job.id))) or 0)
    floor = max(0, top - RECENT)
    grouped = (select(Job.institution, Job.plan, Job.kind, Job.status, func.max(Job.id))
               .where(Job.institution.in_(names))
               .group_by(Job.institution, Job.plan, Job.kind, Job.status))
    running = grouped.where(Job.status == RUNNING, Job.id <= floor)
    _best(session.execute(union_all(grouped.where(Job.id > floor), running)), best)
    older = sorted({key[:2] for key in _expected(facts)
                    if ("newest", key) not in best or ("succeeded", key) not in best})
    if floor and older:
        for start in range(0, len(older), CHUNK):
            part = older[start:start + CHUNK]
            plans = sorted({p for _i, p in part})
            rows = session.execute(grouped.where(
                Job.id <= floor, Job.plan.in_(plans),
                Job.institution.in_(sorted({i for i, _p in part}))))
            _best(rows, best)
    wanted: dict[int, list[tuple[str, Key]]] = {}
    for (slot, key), job_id in best.items():
        wanted.setdefault(job_id, []).append((slot, key))
    ids = sorted(wanted)
    columns = select(*Job.__table__.columns)
    for start in range(0, len(ids), CHUNK):
        for row in session.execute(columns.where(Job.id.in_(ids[start:start + CHUNK]))):
            record = _record(cast(Job, row))
            for slot, key in wanted[row.id]:
                getattr(facts, slot)[key] = record


def _best(rows: Iterable[Any], best: dict[tuple[str, Key], int]) -> None:
    """Fold grouped rows (institution, plan, kind, status, newest id) into the newest id
    per slot."""
    for institution, plan, kind, status, newest in rows:
        key: Key = (str(institution), str(plan), str(kind))
        slots = []
        if status in ENDED:
            slots.append("newest")
        if status == SUCCEEDED:
            slots.append("succeeded")
        if status == RUNNING:
            slots.append("running")
        for slot in slots:
            if best.get((slot, key), 0) < newest:
                best[(slot, key)] = int(newest)


def _expected(facts: Facts) -> set[Key]:
    """The (institution, plan, kind) the dashboard reads: each plan's backups, restore
    tests and copies, each DR system's drills."""
    found: set[Key] = set()
    for inst in facts.institutions:
        config = inst.config
        if config is None:
            continue
        for name, plan in config.plans.items():
            found.add((inst.name, name, "backup"))
            found |= {(inst.name, name, kind) for kind, _r, _t in plan.restore_tests()}
            found |= {(inst.name, name, ("follow:" if c.parsed_schedule().continuous
                                         else "copy:") + c.to) for c in plan.copies}
        for system in config.dr:
            found |= {(inst.name, f"dr:{system}", kind) for kind in ("drill", "dr_drill")}
    return found


def open_alerts(catalog: Catalog, names: Iterable[str]) -> list[Any]:
    """(id, institution, plan, kind, key) of each open alert of these institutions."""
    with transaction(catalog) as session:
        return _open_alerts(session, list(names))


def _open_alerts(session: Session, names: list[str]) -> list[Any]:
    query = (select(Alert.id, Alert.institution, Alert.plan, Alert.kind, Alert.key)
             .where(Alert.resolved_at.is_(None), Alert.institution.in_(names))
             .order_by(Alert.id))
    return list(session.execute(query))


def agents(catalog: Catalog, names: list[str]) -> list[AgentState]:
    """The enrolled agents (not revoked) of these institutions, with their reports."""
    with transaction(catalog) as session:
        return _agents(session, names)


def _agents(session: Session, names: list[str]) -> list[AgentState]:
    query = (select(Agent, Institution.name).join(Institution)
             .where(Institution.name.in_(names), Agent.revoked_at.is_(None))
             .order_by(Institution.name, Agent.name))
    found = []
    for row, institution in session.execute(query):
        advertised = row.advertised or {}
        reported = advertised.get("dr") or {}
        systems = reported.get("systems") if isinstance(reported, dict) else None
        found.append(AgentState(
            row.name, institution, row.state,
            [str(s) for s in advertised.get("dr_systems", []) if isinstance(s, str)],
            reported.get("at") if isinstance(reported, dict) else None,
            [s for s in systems if isinstance(s, dict)] if isinstance(systems, list)
            else []))
    return found


def seconds_between(later: datetime, earlier: datetime | None) -> float | None:
    if earlier is None:
        return None
    return round(max(0.0, (later - (aware(earlier) or earlier)).total_seconds()), 3)
