"""The catalog: every job the daemon or `medark run` starts, in SQLite (embedded, the
default) or PostgreSQL (a central deployment), through SQLAlchemy 2; the schema is
brought up to date by Alembic on open.

A job is written `running` before its work starts and closed after, so a job whose
process died is never left looking alive: on start the daemon marks its own host's
running jobs whose process is gone as failed (`reap_orphans`)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from medark.catalog.alert_severity import Severity, severity_of
from medark.catalog.dr_records import DrActionRecord, DrStep, dr_record
from medark.catalog.models import FAILED, RUNNING, STATUSES, Alert, DrAction, Job
from medark.catalog.statuses import DR_KINDS, DR_STATUSES
from medark.errors import CatalogError, SwitchRefused
from medark.util import clock
from medark.util.pids import pid_alive

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATE_ATTEMPTS = 5
MIGRATION_LOCK = 0x6D656461726B  # "medark": the advisory lock key of schema migrations
CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class JobRecord:
    id: int
    plan: str
    kind: str
    status: str
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int
    host: str
    bytes_added: int | None
    snapshot_id: str | None
    rpo_seconds: float | None
    error: str | None
    details: dict[str, Any] | None
    institution: str | None = None
    """The management server's jobs (catalog/job_queue.py): whose, where, who asked."""
    system: str | None = None
    agent: str | None = None
    requested_by: str | None = None
    progress: dict[str, Any] | None = None
    cancel_requested: bool = False
    origin_key: str | None = None

    def public(self) -> dict[str, Any]:
        def fmt(t: datetime | None) -> str | None:
            return clock.format_time(t) if t is not None else None

        return {"id": self.id, "plan": self.plan, "kind": self.kind, "status": self.status,
                "scheduled_for": fmt(self.scheduled_for), "started_at": fmt(self.started_at),
                "finished_at": fmt(self.finished_at), "attempt": self.attempt,
                "host": self.host, "bytes_added": self.bytes_added,
                "snapshot_id": self.snapshot_id, "rpo_seconds": self.rpo_seconds,
                "error": self.error, "details": self.details,
                "institution": self.institution, "system": self.system,
                "agent": self.agent, "requested_by": self.requested_by,
                "progress": self.progress, "cancel_requested": self.cancel_requested}


def head_revision() -> str:
    """The newest migration: revision ids are the file names, numbered in order."""
    return max(p.stem for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))


def _current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


class Catalog:
    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine = _engine(url)
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog {redacted(url)}: {_reason(exc)}") from None
        for attempt in range(1, MIGRATE_ATTEMPTS + 1):
            try:
                self._migrate()
                break
            except SQLAlchemyError as exc:
                # two processes creating a new catalog at once: the loser finds the
                # tables made and, next time, the schema current
                if attempt == MIGRATE_ATTEMPTS:
                    raise CatalogError(f"catalog {redacted(url)}: {_reason(exc)}") from None
                clock.sleep(0.2 * attempt)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def _migrate(self) -> None:
        with self._engine.connect() as connection:
            if _current_revision(connection) == head_revision():
                return  # the common case: no Alembic (a fifth of a second to import)
        from alembic import command
        from alembic.config import Config as AlembicConfig

        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # one migrator at a time
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK})
            alembic = AlembicConfig()
            alembic.set_main_option("script_location", str(MIGRATIONS))
            alembic.attributes["connection"] = connection
            command.upgrade(alembic, "head")

    @property
    def public_url(self) -> str:
        return redacted(self.url)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog {redacted(self.url)}: {_reason(exc)}") from None

    def start(self, plan: str, kind: str, scheduled_for: datetime | None = None,
              attempt: int = 1) -> int | None:
        """Record a job as running (now, this host and process); its id, or None when
        this plan's slot was already taken (another daemon, or before a restart)."""
        slot = scheduled_for.astimezone(UTC) if scheduled_for is not None else None
        job = Job(plan=plan, kind=kind, scheduled_for=slot, started_at=clock.now(),
                  status=RUNNING, attempt=attempt, host=socket.gethostname(), pid=os.getpid())
        try:
            with self._session() as session:
                session.add(job)
                session.flush()
                return int(job.id)
        except IntegrityError:
            return None

    def finish(self, job_id: int, status: str, *, bytes_added: int | None = None,
               snapshot_id: str | None = None, rpo_seconds: float | None = None,
               error: str | None = None, details: dict[str, Any] | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown job status {status!r}")
        with self._session() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise CatalogError(f"job {job_id} is not in the catalog")
            job.status = status
            job.finished_at = clock.now()
            job.bytes_added = bytes_added
            job.snapshot_id = snapshot_id
            job.rpo_seconds = rpo_seconds
            job.error = error
            job.details = details

    def reap_orphans(self, alive: Any = None) -> list[int]:
        """Mark failed the running jobs of this host whose process is gone (killed with
        the daemon, or the machine rebooted). `alive(pid)`: whether a process lives."""
        is_alive = alive or pid_alive
        host = socket.gethostname()
        reaped = []
        with self._session() as session:
            running = session.scalars(select(Job).where(Job.status == RUNNING,
                                                        Job.host == host))
            for job in running:
                if job.pid is None or not is_alive(job.pid):
                    job.status = FAILED
                    job.finished_at = clock.now()
                    job.error = "interrupted: the process running it ended before it finished"
                    reaped.append(job.id)
        return reaped

    def last_slot(self, plan: str, kind: str) -> datetime | None:
        """The newest schedule slot a job of this plan and kind served (missed-run
        handling after downtime starts from it)."""
        query = (select(Job.scheduled_for).where(Job.plan == plan, Job.kind == kind,
                                                 Job.scheduled_for.is_not(None))
                 .order_by(Job.scheduled_for.desc()).limit(1))
        with self._session() as session:
            return _aware(session.scalars(query).first())

    def latest(self, plan: str, kind: str, status: str | None = None,
               started_by: datetime | None = None, institution: str | None = None
               ) -> JobRecord | None:
        """The newest job of this plan and kind (in this status; started by then; of
        this institution's plans, on a management server)."""
        query = (_of(select(Job).where(Job.plan == plan, Job.kind == kind),
                     Job.institution, institution)
                 .order_by(Job.id.desc()).limit(1))
        if status is not None:
            query = query.where(Job.status == status)
        if started_by is not None:
            query = query.where(Job.started_at <= started_by.astimezone(UTC))
        with self._session() as session:
            job = session.scalars(query).first()
            return _record(job) if job is not None else None

    def jobs_between(self, start: datetime, end: datetime,
                     institution: str | None = None) -> list[JobRecord]:
        """Every job started in [start, end), oldest first (reports)."""
        query = (_of(select(Job).where(Job.started_at >= start.astimezone(UTC),
                                       Job.started_at < end.astimezone(UTC)),
                     Job.institution, institution)
                 .order_by(Job.started_at))
        with self._session() as session:
            return [_record(job) for job in session.scalars(query)]

    def counts(self) -> list[tuple[str, str, str, int]]:
        """(plan, kind, status, jobs) over the whole history."""
        query = (select(Job.plan, Job.kind, Job.status, func.count())
                 .group_by(Job.plan, Job.kind, Job.status))
        with self._session() as session:
            return [(p, k, s, int(n)) for p, k, s, n in session.execute(query)]

    def raise_alert(self, key: str, kind: str, plan: str, summary: str,
                    details: dict[str, Any] | None = None,
                    notice: dict[str, Any] | None = None,
                    channels: list[str] | None = None,
                    institution: str | None = None) -> int | None:
        """Open an alert unless one with this key is open (then only note it was seen
        again); the new row's id when it was opened and deserves a notification. With
        `channels`, the notice is recorded pending for them before anything is sent, so
        a daemon that dies before sending leaves it to the next one."""
        now = clock.now()
        with self._session() as session:
            current = session.scalars(select(Alert).where(
                Alert.key == key, Alert.resolved_at.is_(None)).limit(1)).first()
            if current is not None:
                current.last_seen = now
                return None
            row = Alert(key=key, kind=kind, plan=plan, opened_at=now, last_seen=now,
                        summary=summary, details=details, institution=institution)
            _pending(row, notice, channels, now)
            session.add(row)
            session.flush()
            return int(row.id)

    def resolve_alert(self, key: str, notice: dict[str, Any] | None = None,
                      channels: list[str] | None = None) -> AlertRecord | None:
        """Close the open alert with this key (its resolved notice pending for
        `channels`); it, or None when none was open."""
        with self._session() as session:
            current = session.scalars(select(Alert).where(
                Alert.key == key, Alert.resolved_at.is_(None)).limit(1)).first()
            if current is None:
                return None
            current.resolved_at = clock.now()
            _pending(current, notice, channels, current.resolved_at)
            return _alert(current)

    def record_delivery(self, alert_id: int, state: str, failed: dict[str, str],
                        tries: int) -> None:
        """The outcome of sending the alert's `state` notice (firing or resolved):
        delivered, or undelivered to the `failed` channels ({channel: error}). Ignored
        when the alert has moved on to its next notice meanwhile."""
        with self._session() as session:
            row = session.get(Alert, alert_id)
            if row is None or not row.notice or row.notice.get("state") != state:
                return
            row.delivery = "undelivered" if failed else "delivered"
            row.delivery_channels = sorted(failed)
            row.delivery_error = "\n".join(failed[c] for c in sorted(failed)) or None
            row.delivery_tries = (row.delivery_tries or 0) + tries
            row.delivery_at = clock.now()

    def claim_undelivered(self, retry_before: datetime, pending_before: datetime,
                          skip: set[int]) -> list[AlertRecord]:
        """Alerts whose newest notice is still to deliver: undelivered ones last tried
        before `retry_before`, and pending ones queued before `pending_before` (left by a
        daemon that stopped). Each is marked pending now, so it is claimed once."""
        now = clock.now()
        query = select(Alert).where(Alert.delivery.in_(("pending", "undelivered")))
        claimed = []
        with self._session() as session:
            for row in session.scalars(query):
                since = _aware(row.delivery_at)
                limit = retry_before if row.delivery == "undelivered" else pending_before
                if row.id in skip or (since is not None and since > limit):
                    continue
                row.delivery = "pending"
                row.delivery_at = now
                claimed.append(_alert(row))
        return claimed

    def alerts(self, open_only: bool = False, limit: int = 100,
               institution: str | None = None) -> list[AlertRecord]:
        """Newest first (of one institution, on a management server)."""
        query = (_of(select(Alert.__table__), Alert.institution, institution)
                 .order_by(Alert.id.desc()).limit(limit))
        if open_only:
            query = query.where(Alert.resolved_at.is_(None))
        with self._session() as session:  # plain rows: ORM objects cost a server's CPU
            result = session.execute(query)
            names = list(result.keys())
            return [_alert(SimpleNamespace(**dict(zip(names, row, strict=True))))
                    for row in result]

    def jobs(self, plan: str | None = None, status: str | None = None,
             limit: int = 100) -> list[JobRecord]:
        """Newest first."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if plan is not None:
            query = query.where(Job.plan == plan)
        if status is not None:
            query = query.where(Job.status == status)
        with self._session() as session:
            return [_record(job) for job in session.scalars(query)]

    def start_dr_action(self, system: str, kind: str, requested_by: str,
                        alive: Any = None, institution: str | None = None) -> int:
        """Record a DR action as running (now, this host and process) and so claim the
        system; its id. SwitchRefused, naming the holder, when another DR action on the
        system is running. A claim left by a process of this host that is gone (killed
        mid-switch) is closed as failed first. `alive(pid)`: whether a process lives."""
        if kind not in DR_KINDS:
            raise ValueError(f"unknown DR action {kind!r}")
        is_alive = alive or pid_alive
        for _attempt in range(CLAIM_ATTEMPTS):
            row = DrAction(system=system, kind=kind, requested_by=requested_by,
                           host=socket.gethostname(), pid=os.getpid(),
                           started_at=clock.now(), status=RUNNING, steps=[],
                           institution=institution)
            try:
                with self._session() as session:
                    session.add(row)
                    session.flush()
                    return int(row.id)
            except IntegrityError:
                holder = self.running_dr_action(system)
            if holder is None:
                continue  # it finished in between: claim again
            if holder.host == socket.gethostname() and (holder.pid is None
                                                       or not is_alive(holder.pid)):
                self._release_orphan(holder.id)
                continue
            raise SwitchRefused(
                f"dr {kind} {system}: refused, {holder.kind} #{holder.id} by "
                f"{holder.requested_by} on {holder.host} (pid {holder.pid}) is running since "
                f"{clock.format_time(holder.started_at)}; wait for it to end "
                f"(medark dr history {system})")
        raise SwitchRefused(f"dr {kind} {system}: refused, another DR action keeps claiming "
                            "the system; try again")

    def _release_orphan(self, action_id: int) -> None:
        with self._session() as session:
            row = session.get(DrAction, action_id)
            if row is not None and row.status == RUNNING:
                row.status = FAILED
                row.finished_at = clock.now()
                row.error = "interrupted: the process running it ended before it finished"

    def running_dr_action(self, system: str) -> DrActionRecord | None:
        """The DR action holding the system's claim, if any."""
        query = select(DrAction).where(DrAction.system == system, DrAction.status == RUNNING)
        with self._session() as session:
            row = session.scalars(query.limit(1)).first()
            return dr_record(row) if row is not None else None

    def record_step(self, action_id: int, step: DrStep) -> None:
        """Append a finished step to a running DR action (each step is written as it
        ends, so an action whose process died still shows how far it got)."""
        with self._session() as session:
            row = session.get(DrAction, action_id)
            if row is None or row.status != RUNNING:
                raise CatalogError(f"DR action {action_id} is not running in the catalog")
            row.steps = [*(row.steps or []), step.stored()]  # a new list: JSON change seen

    def finish_dr_action(self, action_id: int, status: str, *,
                         switch_seconds: float | None = None,
                         data_loss: dict[str, Any] | None = None,
                         error: str | None = None) -> None:
        """Close a running DR action (succeeded, failed or rolled_back), releasing the
        system's claim."""
        if status not in DR_STATUSES or status == RUNNING:
            raise ValueError(f"a DR action cannot end as {status!r}")
        with self._session() as session:
            row = session.get(DrAction, action_id)
            if row is None or row.status != RUNNING:
                raise CatalogError(f"DR action {action_id} is not running in the catalog")
            row.status = status
            row.finished_at = clock.now()
            row.switch_seconds = switch_seconds
            row.data_loss = data_loss
            row.error = error

    def dr_history(self, system: str | None = None, limit: int = 100,
                   institution: str | None = None) -> list[DrActionRecord]:
        """DR actions, newest first (of one system, or every one; of one institution's
        systems, on a management server)."""
        query = (_of(select(DrAction), DrAction.institution, institution)
                 .order_by(DrAction.id.desc()).limit(limit))
        if system is not None:
            query = query.where(DrAction.system == system)
        with self._session() as session:
            return [dr_record(row) for row in session.scalars(query)]


@dataclass(frozen=True)
class Delivery:
    """How an alert's newest notice got to its channels."""

    status: str
    """pending, delivered or undelivered."""
    state: str
    """The notice: firing or resolved."""
    channels: list[str]
    """Channels it has not reached yet."""
    tries: int
    error: str | None
    at: datetime | None

    def public(self) -> dict[str, Any]:
        return {"status": self.status, "notice": self.state, "channels": self.channels,
                "tries": self.tries, "error": self.error,
                "at": clock.format_time(self.at) if self.at else None}


@dataclass(frozen=True)
class AlertRecord:
    key: str
    kind: str
    plan: str
    summary: str
    opened_at: datetime
    resolved_at: datetime | None
    details: dict[str, Any] | None
    id: int = 0
    delivery: Delivery | None = None
    notice: dict[str, Any] | None = None
    """The newest notice as sent (state, title, text, details)."""
    institution: str | None = None
    """Whose it is, on a management server (not in public(): the daemon's own view)."""

    @property
    def severity(self) -> Severity:
        return severity_of(self.kind)

    def public(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "severity": self.severity,
                "plan": self.plan, "summary": self.summary,
                "opened_at": clock.format_time(self.opened_at),
                "resolved_at": (clock.format_time(self.resolved_at)
                                if self.resolved_at else None), "details": self.details,
                "delivery": self.delivery.public() if self.delivery else None}


def _pending(row: Alert, notice: dict[str, Any] | None, channels: list[str] | None,
             now: datetime) -> None:
    """The row's newest notice, queued for `channels` (none: nothing to track)."""
    row.notice = notice
    row.delivery = "pending" if channels else None
    row.delivery_channels = list(channels or [])
    row.delivery_tries = 0
    row.delivery_error = None
    row.delivery_at = now


def _alert(row: Alert | SimpleNamespace) -> AlertRecord:
    opened = _aware(row.opened_at)
    assert opened is not None
    delivery = None
    if row.delivery is not None:
        delivery = Delivery(row.delivery, str((row.notice or {}).get("state", "")),
                            list(row.delivery_channels or []), row.delivery_tries or 0,
                            row.delivery_error, _aware(row.delivery_at))
    return AlertRecord(row.key, row.kind, row.plan, row.summary, opened,
                       _aware(row.resolved_at), row.details, row.id, delivery, row.notice,
                       row.institution)


_Query = TypeVar("_Query", bound=Select[Any])


def _of(query: _Query, column: Any, institution: str | None) -> _Query:
    """Rows of one institution: a regional center's catalog holds every hospital's, and
    two hospitals may name a plan or a system alike. None: every row (the single
    hospital's CLI and daemon, as before institutions existed)."""
    return query if institution is None else query.where(column == institution)


def _record(job: Job) -> JobRecord:
    return JobRecord(job.id, job.plan, job.kind, job.status, _aware(job.scheduled_for),
                     _aware(job.started_at), _aware(job.finished_at), job.attempt, job.host,
                     job.bytes_added, job.snapshot_id, job.rpo_seconds, job.error, job.details,
                     job.institution, job.system, job.agent, job.requested_by, job.progress,
                     bool(job.cancel_requested), job.origin_key)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives timestamps back without their zone; they were stored in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        target = Path(url.removeprefix("sqlite:///"))
        if str(target) not in ("", ":memory:"):
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers (`medark jobs`) never block
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        dialect = "postgresql+psycopg://" + url.split("://", 1)[1]
        # the server works on up to 40 request threads (anyio's), one connection each:
        # with SQLAlchemy's 5 kept, every burst past 5 opened a backend and closed it
        # again (bench/server_bench.py: a backend started per request); idle ones cost
        # nothing until then, and the CLI and daemon never hold more than a few. LIFO:
        # a burst reuses the connections used last, and the others idle
        engine = create_engine(dialect, pool_size=16, max_overflow=24, pool_use_lifo=True)
        _ping_when_idle(engine)
        return engine
    raise CatalogError(f"catalog {redacted(url)}: use sqlite:///PATH or postgresql://…")


PING_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may have been idle and still be handed out
without a ping."""


def _ping_when_idle(engine: Engine) -> None:
    """A connection idle for PING_IDLE is pinged before use, and replaced when the
    database ended it (a restart, an idle timeout), as pool_pre_ping would; one in use
    a moment ago is not: a ping on every checkout was a round trip per transaction, two
    per API request. A connection that fails in use anyway (the database restarted in
    that moment) fails its transaction (CatalogError), and SQLAlchemy then replaces
    every connection of the pool."""

    @event.listens_for(engine, "checkin")
    def _idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["medark_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("medark_idle_since")
        if since is None or time.monotonic() - since < PING_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool connects anew (up to three times)
            raise DisconnectionError(str(exc)) from exc


def redacted(url: str) -> str:
    """The URL without its password."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _at, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}://{user}:***@{host}" if ":" in credentials else url


def _reason(exc: SQLAlchemyError) -> str:
    if isinstance(exc, OperationalError) and exc.orig is not None:
        return str(exc.orig).strip().splitlines()[0]
    return type(exc).__name__
