"""Live events for the console (GET /api/events): a job changed state or progressed, a DR
action's step ended, an alert opened or resolved, an agent went online or offline.

Why from catalog rows and not from this process's memory: several server processes
serve one PostgreSQL catalog behind a load balancer, and the change may have been made
by any of them (or by the scheduler's leader). Each process runs one `Poller` while
somebody listens (three small queries every POLL seconds, shared by all its
subscribers): the job events after the last one seen (`job_events` ids), and the open
alerts and the agents' states compared with the previous look.

Job event ids are given at insert, not at commit (PostgreSQL), so an id below the newest
one seen may still appear: the poller keeps the ids it has not seen below the newest as
gaps for GAP_WAIT seconds and delivers them when they commit (a rolled-back insert
leaves a gap that simply expires).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from medark.catalog.alert_severity import severity_of
from medark.catalog.models import Alert, Job
from medark.catalog.models import JobEvent as EventRow
from medark.catalog.store import Catalog
from medark.server.auth import MAX_SESSION
from medark.server.db import aware, digest, transaction
from medark.server.remote_ops import DR_ACTIONS
from medark.server.tables import ApiToken, Institution, User, UserSession
from medark.server.tables_agents import Agent
from medark.util import clock

POLL = 0.5
"""Seconds between two looks at the catalog: an event reaches the console within ~1 s."""
GAP_WAIT = 5.0
"""Seconds an id below the newest seen may take to commit before it is given up."""
BATCH = 2000
MAX_GAP = 5000
"""A hole wider than this in the ids is a sequence jump, not transactions in flight."""
QUEUE = 5000
"""Events a slow subscriber may have waiting before it is told to resynchronise."""
DR_KINDS = frozenset(DR_ACTIONS.values())
"""The job kinds of DR actions, whose steps go out as `dr_step` (failback too)."""


@dataclass(frozen=True)
class Event:
    """One live event: its SSE name, payload, institution (None: the catalog's own
    daemon's job) and, for a job event, the job event's id."""

    name: str
    data: dict[str, Any]
    institution: str | None
    job_event_id: int | None = None
    agents_only: bool = False
    """An agent's state: only for callers who may read agents."""


@dataclass(eq=False)
class Subscriber:
    """One open stream: what it may see, and its events still to send (compared by
    identity: two alike subscribers are two streams)."""

    institutions: frozenset[str] | None
    """None: every institution (a regional center's account)."""
    local: bool
    """Also the catalog's own daemon's jobs (a regional center's unnarrowed view)."""
    agents: bool
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE))
    overflowed: bool = False

    def wants(self, event: Event) -> bool:
        if event.agents_only and not self.agents:
            return False
        if event.institution is None:
            return self.local
        return self.institutions is None or event.institution in self.institutions

    def offer(self, event: Event) -> None:
        if self.overflowed or not self.wants(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class Poller:
    """The catalog side: what changed since the previous look (synchronous: it runs in
    the thread pool)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.floor = 0
        """Every job event id up to here was delivered or given up."""
        self.seen: set[int] = set()
        self.gaps: dict[int, float] = {}
        self.alerts: dict[int, dict[str, Any]] = {}
        self.agents: dict[int, dict[str, Any]] = {}

    def start(self) -> None:
        """The baseline: events from now on; alerts and agents as they are."""
        with transaction(self.catalog) as session:
            self.floor = int(session.scalar(select(func.max(EventRow.id))) or 0)
        self.alerts = self._open_alerts()
        self.agents = self._agents()

    @property
    def high_water(self) -> int:
        return max([self.floor, *self.seen])

    def poll(self) -> list[Event]:
        return [*self._job_events(), *self._alert_events(), *self._agent_events()]

    def _job_events(self) -> list[Event]:
        rows = job_events_after(self.catalog, self.floor, BATCH)
        found = []
        for row in rows:
            if row.job_event_id in self.seen:
                continue
            self.seen.add(row.job_event_id or 0)
            self.gaps.pop(row.job_event_id or 0, None)
            found.append(row)
        now = clock.monotonic()
        top = max([self.floor, *(r.job_event_id or 0 for r in rows)])
        if top - self.floor <= MAX_GAP:
            for missing in range(self.floor + 1, top):
                if missing not in self.seen:
                    self.gaps.setdefault(missing, now)
        for missing, since in list(self.gaps.items()):
            if now - since > GAP_WAIT:
                del self.gaps[missing]
        self.floor = min(self.gaps) - 1 if self.gaps else top
        self.seen = {i for i in self.seen if i > self.floor}
        return found

    def _open_alerts(self) -> dict[int, dict[str, Any]]:
        query = select(Alert).where(Alert.resolved_at.is_(None))
        with transaction(self.catalog) as session:
            return {row.id: _alert(row) for row in session.scalars(query)}

    def _alert_events(self) -> list[Event]:
        current = self._open_alerts()
        found = [Event("alert", {"state": "opened", "alert": view}, view["institution"])
                 for alert_id, view in current.items() if alert_id not in self.alerts]
        gone = [i for i in self.alerts if i not in current]
        if gone:
            with transaction(self.catalog) as session:
                rows = {row.id: _alert(row) for row in session.scalars(
                    select(Alert).where(Alert.id.in_(gone[:BATCH])))}
            for alert_id in gone:
                view = rows.get(alert_id, {**self.alerts[alert_id], "resolved_at": None})
                found.append(Event("alert", {"state": "resolved", "alert": view},
                                   view["institution"]))
        self.alerts = current
        return found

    def _agents(self) -> dict[int, dict[str, Any]]:
        query = select(Agent, Institution.name).join(Institution)
        with transaction(self.catalog) as session:
            return {row.id: {"name": row.name, "institution": institution,
                             "state": "revoked" if row.revoked_at else row.state,
                             "last_heartbeat": _time(row.last_heartbeat),
                             "dr": dr_shape((row.advertised or {}).get("dr"))}
                    for row, institution in session.execute(query)}

    def _agent_events(self) -> list[Event]:
        current = self._agents()
        found: list[Event] = []
        for agent_id, view in current.items():
            before = self.agents.get(agent_id)
            public = {k: v for k, v in view.items() if k != "dr"}
            if before is None or before["state"] != view["state"]:
                found.append(Event("agent", {"state": view["state"], "agent": public},
                                   view["institution"], agents_only=True))
            if before is not None and before["dr"] != view["dr"]:
                found.append(Event("dr_status", {
                    "agent": view["name"], "institution": view["institution"],
                    "systems": sorted({system for system, *_ in view["dr"]})},
                    view["institution"]))
        self.agents = current
        return found


def dr_shape(report: Any) -> tuple[tuple[Any, ...], ...]:
    """What a console shows of an agent's DR status report, without its lag figures
    (which change at every report): per system its nodes' sites, roles and reachability,
    health and problems. A change (a switch-over seen, a standby lost) is a `dr_status`
    event; the same picture reported again is none."""
    if not isinstance(report, dict):
        return ()
    shapes = []
    for system in report.get("systems") or []:
        if not isinstance(system, dict):
            continue
        nodes = tuple((str(n.get("site")), str(n.get("role")), bool(n.get("reachable")))
                      for n in system.get("nodes") or [] if isinstance(n, dict))
        shapes.append((str(system.get("system")), nodes, bool(system.get("healthy")),
                       tuple(str(p) for p in system.get("problems") or [])))
    return tuple(sorted(shapes))


def job_events_after(catalog: Catalog, after: int, limit: int,
                     institutions: frozenset[str] | None = None, local: bool = True,
                     up_to: int | None = None) -> list[Event]:
    """The job events with an id above `after` (up to `up_to`), oldest first, each with
    its job; only the institutions' when given (and the catalog's own jobs if `local`)."""
    query = (select(EventRow, Job).join(Job, Job.id == EventRow.job_id)
             .where(EventRow.id > after).order_by(EventRow.id).limit(limit))
    if up_to is not None:
        query = query.where(EventRow.id <= up_to)
    if institutions is not None:
        scope = Job.institution.in_(sorted(institutions))
        query = query.where(scope | Job.institution.is_(None) if local else scope)
    elif not local:
        query = query.where(Job.institution.is_not(None))
    with transaction(catalog) as session:
        return [_job_event(event, job) for event, job in session.execute(query)]


def _job_event(event: EventRow, job: Job) -> Event:
    data = dict(event.data or {})
    at = _time(event.at)
    brief = {"id": job.id, "institution": job.institution, "plan": job.plan,
             "kind": job.kind, "system": job.system, "agent": job.agent,
             "status": job.status, "progress": job.progress}
    if event.kind == "log" and job.kind in DR_KINDS and isinstance(data.get("step"), dict):
        return Event("dr_step", {"event_id": event.id, "at": at, "job": brief,
                                 "step": data["step"], "message": data.get("message")},
                     job.institution, event.id)
    return Event("job", {"event_id": event.id, "at": at, "kind": event.kind, "data": data,
                         "job": brief}, job.institution, event.id)


def _alert(row: Alert) -> dict[str, Any]:
    return {"id": row.id, "institution": row.institution, "key": row.key,
            "kind": row.kind, "severity": severity_of(row.kind), "plan": row.plan,
            "summary": row.summary,
            "opened_at": _time(row.opened_at), "resolved_at": _time(row.resolved_at)}


def _time(value: Any) -> str | None:
    found = aware(value)
    return clock.format_time(found) if found is not None else None


@dataclass(frozen=True)
class Credential:
    """What a stream was opened with, to end it when that ends (sign-out, an idle
    timeout, a change to the user, a token revoked): looked at without touching the
    session, so an open stream never keeps an idle session alive."""

    session: str | None
    token: str | None
    idle_timeout: float

    def valid(self, catalog: Catalog) -> bool:
        now = clock.now()
        with transaction(catalog) as session:
            if self.token is not None:
                row = session.scalars(select(ApiToken).where(
                    ApiToken.token_hash == digest(self.token))).first()
                expires = aware(row.expires_at) if row is not None else None
                return row is not None and row.revoked_at is None and (
                    expires is None or expires > now)
            if self.session is None:
                return False
            found = session.execute(select(UserSession, User).join(
                User, User.id == UserSession.user_id).where(
                UserSession.id == digest(self.session))).first()
        if found is None or found[1].disabled:
            return False
        last, created = aware(found[0].last_seen), aware(found[0].created_at)
        return (last is not None and created is not None
                and (now - last).total_seconds() <= self.idle_timeout
                and now - created <= MAX_SESSION)


class Hub:
    """One poller per process for all its subscribers; it runs while any listens."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.subscribers: set[Subscriber] = set()
        self.poller: Poller | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def subscribe(self, subscriber: Subscriber) -> int:
        """Add the subscriber; the newest job event id already handed out (what came
        before it the caller replays from the catalog)."""
        async with self._lock:
            if self.poller is None:
                poller = Poller(self.catalog)
                await run_in_threadpool(poller.start)
                self.poller = poller
            self.subscribers.add(subscriber)
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run())
            return self.poller.high_water

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            async with self._lock:
                if not self.subscribers or self.poller is None:
                    # nobody listens: the next subscriber starts from a fresh baseline
                    self.poller = None
                    return
                poller = self.poller
                try:
                    events = await run_in_threadpool(poller.poll)
                except Exception:  # the catalog is away: try again at the next look
                    continue
                for event in events:
                    for subscriber in list(self.subscribers):
                        subscriber.offer(event)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
