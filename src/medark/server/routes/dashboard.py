"""The console's overview: the dashboard, the topology, and the live events that keep
both current without a reload (server/dashboard.py, server/topology.py,
server/live_events.py).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from medark.catalog.store import Catalog
from medark.errors import CatalogError
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.dashboard import dashboard as dashboard_of
from medark.server.dashboard_facts import scoped
from medark.server.deps import SESSION_COOKIE, Ctx, Who
from medark.server.live_events import Credential, Event, Hub, Subscriber, job_events_after
from medark.server.oversight import allowed
from medark.server.schemas_dashboard import Dashboard, Topology
from medark.server.topology import topology as topology_of
from medark.util import clock

router = APIRouter(tags=["dashboard"])
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"
InstitutionQuery = Annotated[str | None, Query(min_length=1, max_length=64,
                                               pattern=NAME_PATTERN)]
CREDENTIAL_EVERY = 5.0
"""Seconds between two looks at whether the stream's session or token still holds."""
REPLAY = 1000
"""Job events replayed after a reconnection; more: the console is told to reload."""
EVENT_NAMES = ("ready", "job", "dr_step", "alert", "agent", "resync")
EVENTS_DOC: dict[int | str, dict[str, Any]] = {200: {
    "description": "text/event-stream (docs/server.md#the-dashboard-and-the-topology): "
                   "`ready`, then `job`, `dr_step`, `alert`, `agent` events, `resync` "
                   "when the console should reload; ends after `max_seconds`",
    "content": {"text/event-stream": {"schema": {
        "type": "object", "description": "one event (its `data` a JSON object)",
        "properties": {
            "event": {"type": "string", "enum": list(EVENT_NAMES)},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {"type": "string", "contentMediaType": "application/json"},
            "retry": {"type": "integer"}}}}}}}


@router.get("/api/dashboard", response_model=Dashboard)
def dashboard(who: Who, ctx: Ctx, institution: InstitutionQuery = None) -> dict[str, Any]:
    """Per system of the institutions in scope (or the one named): status and reasons,
    RPO against its target, last backup, restore test and RTO, offsite lag, standby lag
    and last drill, open alerts; counts per institution and overall."""
    return dashboard_of(ctx.catalog, who, institution)


@router.get("/api/topology", response_model=Topology)
def topology(who: Who, ctx: Ctx, institution: InstitutionQuery = None) -> dict[str, Any]:
    """Institutions, sites, systems, repositories and standbys, linked by backups,
    copies and replication, each link with its state and lag."""
    return topology_of(ctx.catalog, who, institution)


@router.get("/api/events", responses=EVENTS_DOC, response_class=StreamingResponse)
async def events(request: Request, who: Who, ctx: Ctx,
                 institution: InstitutionQuery = None,
                 max_seconds: Annotated[int, Query(ge=1, le=3600)] = 3600,
                 last_event_id: Annotated[str | None, Header(
                     alias="Last-Event-ID", max_length=200)] = None) -> StreamingResponse:
    """Server-Sent Events of the institutions in scope: job status and progress, DR
    steps, alerts opened and resolved, agents online and offline (for who may read
    agents). Each event's id is a cursor: a reconnecting browser sends it back as
    Last-Event-ID and gets the job events it missed."""
    subscriber = await run_in_threadpool(_subscriber, ctx.catalog, who, institution)
    hub = _hub(request, ctx.catalog)
    bearer = request.headers.get("authorization", "")
    credential = Credential(
        None if bearer else request.cookies.get(SESSION_COOKIE),
        bearer[7:].strip() if bearer.lower().startswith("bearer ") else None,
        ctx.settings.policy.idle_timeout.total_seconds())
    return StreamingResponse(
        _stream(hub, subscriber, _cursor(last_event_id), request, max_seconds, credential,
                ctx.settings.keep_alive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _subscriber(catalog: Catalog, who: Principal, institution: str | None) -> Subscriber:
    allowed(catalog, who, R.DASHBOARD_READ, "events.read", institution, institution)
    if institution is not None:
        scoped(catalog, who, institution, "events.read")
        names: frozenset[str] | None = frozenset({institution})
    else:
        names = None if who.center else frozenset({who.institution})
    return Subscriber(names, local=names is None, agents=R.allowed(who.roles,
                                                                   R.AGENTS_READ))


def _hub(request: Request, catalog: Catalog) -> Hub:
    """The process's hub, made at the first subscription."""
    state = request.app.state
    hub: Hub | None = getattr(state, "live_events", None)
    if hub is None:
        hub = Hub(catalog)
        state.live_events = hub
    return hub


def _cursor(header: str | None) -> int | None:
    """The job event id a client resumes after (ours are decimal, below 2**62)."""
    text = (header or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


async def _stream(hub: Hub, subscriber: Subscriber, after: int | None, request: Request,
                  max_seconds: int, credential: Credential, keep_alive: float
                  ) -> AsyncIterator[str]:
    """The frames; a catalog that fails mid-stream ends it (the browser reconnects and
    gets the 503), never a traceback."""
    try:
        high = await hub.subscribe(subscriber)
    except CatalogError:
        hub.unsubscribe(subscriber)
        return
    try:
        async with contextlib.aclosing(_frames(hub, subscriber, high, after, request,
                                               max_seconds, credential, keep_alive)) as frames:
            async for frame in frames:
                yield frame
    except CatalogError:
        return
    finally:
        hub.unsubscribe(subscriber)


async def _frames(hub: Hub, subscriber: Subscriber, high: int, after: int | None,
                  request: Request, max_seconds: int, credential: Credential,
                  keep_alive: float) -> AsyncGenerator[str, None]:
    cursor = high
    yield "retry: 1000\n\n"
    replayed: set[int] = set()
    if after is not None and after < high:
        missed = await run_in_threadpool(job_events_after, hub.catalog, after,
                                         REPLAY, subscriber.institutions,
                                         subscriber.local, high)
        if len(missed) >= REPLAY:
            yield _frame("resync", {"reason": "too_many_missed"}, cursor)
        else:
            for old in missed:
                replayed.add(old.job_event_id or 0)
                yield _frame(old.name, old.data, cursor)
    yield _frame("ready", {"cursor": cursor, "resumed": after is not None,
                           "replayed": len(replayed)}, cursor)
    deadline = clock.monotonic() + max_seconds
    quiet_since = checked = clock.monotonic()
    while (clock.monotonic() < deadline and not stopping()
           and not await request.is_disconnected()):
        if clock.monotonic() - checked >= CREDENTIAL_EVERY:
            try:
                valid = await run_in_threadpool(credential.valid, hub.catalog)
            except Exception:  # the catalog is away: so is the stream's ground
                valid = False
            if not valid:
                return  # signed out, idle too long, changed: the reconnection says so
            checked = clock.monotonic()
        if subscriber.overflowed:
            yield _frame("resync", {"reason": "too_many_events"}, cursor)
            return
        try:
            event: Event | None = await asyncio.wait_for(subscriber.queue.get(), 1.0)
        except TimeoutError:
            event = None
        if event is not None and event.job_event_id not in replayed:
            cursor = max(cursor, event.job_event_id or 0)
            yield _frame(event.name, event.data, cursor)
            quiet_since = clock.monotonic()
        elif clock.monotonic() - quiet_since >= keep_alive:
            yield ": keep-alive\n\n"
            quiet_since = clock.monotonic()


def stopping() -> bool:
    """Whether the server is shutting down: uvicorn's SIGTERM and SIGINT handler is its
    Server's `handle_exit`, which sets `should_exit`. An open stream then ends within a
    second, so a console left open neither holds up a graceful shutdown nor has its
    request cancelled at the shutdown's timeout (with a traceback in the log)."""
    handler = signal.getsignal(signal.SIGTERM)
    return bool(getattr(getattr(handler, "__self__", None), "should_exit", False))


def _frame(name: str, data: dict[str, Any], cursor: int) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {cursor}\nevent: {name}\ndata: {text}\n\n"
