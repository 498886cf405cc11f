"""The database audit collectors' state (migration 0013_dbaudit_sources) and reading the
database audit events back from the audit trail, where they are stored as records of
action `db.CLASS` (docs/dbaudit.md: one chain, verified by `medark audit verify`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from medark.catalog.audit_trail import AuditRecord, records, stream_records
from medark.catalog.store import Catalog
from medark.errors import CatalogError

ACTION_PREFIX = "db."
ACTOR_PREFIX = "db:"

_metadata = MetaData()
sources = Table(
    "dbaudit_sources", _metadata,
    Column("source", String(200), primary_key=True),
    Column("path", Text),
    Column("device", BigInteger),
    Column("inode", BigInteger),
    Column("offset", BigInteger, nullable=False),
    Column("fingerprint", String(64)),
    Column("events", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_event_at", DateTime(timezone=True)),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("notes", JSON),
)


@dataclass
class CollectorState:
    source: str
    """SYSTEM, or SYSTEM#N for a system's N-th audited source (N > 0)."""
    path: str | None = None
    device: int | None = None
    inode: int | None = None
    offset: int = 0
    fingerprint: str | None = None
    events: int = 0
    last_seq: int = 0
    """The audit trail number of the newest event this state accounts for."""
    last_event_at: datetime | None = None
    last_run_at: datetime | None = None
    last_error: str | None = None
    notes: list[str] = field(default_factory=list)
    """What the collector noticed (a truncated file, a rotation), newest last (≤ 20)."""

    def public(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {"source": self.source, "path": self.path, "device": self.device,
                "inode": self.inode, "offset": self.offset, "events": self.events,
                "last_event_at": when(self.last_event_at),
                "last_run_at": when(self.last_run_at), "last_error": self.last_error,
                "notes": self.notes}


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _state(row: Any) -> CollectorState:
    return CollectorState(row.source, row.path, row.device, row.inode, int(row.offset),
                          row.fingerprint, int(row.events), int(row.last_seq),
                          _aware(row.last_event_at), _aware(row.last_run_at),
                          row.last_error, list(row.notes or []))


def load_states(catalog: Catalog) -> dict[str, CollectorState]:
    try:
        with catalog._engine.connect() as connection:
            return {row.source: _state(row) for row in connection.execute(select(sources))}
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: {_reason(exc)}") from None


def save_state(catalog: Catalog, state: CollectorState) -> None:
    """Replace the source's row (one transaction)."""
    values = {"source": state.source, "path": state.path, "device": state.device,
              "inode": state.inode, "offset": state.offset,
              "fingerprint": state.fingerprint, "events": state.events,
              "last_seq": state.last_seq,
              "last_event_at": state.last_event_at, "last_run_at": state.last_run_at,
              "last_error": state.last_error, "notes": state.notes[-20:]}
    try:
        with catalog._engine.begin() as connection:
            connection.execute(delete(sources).where(sources.c.source == state.source))
            connection.execute(insert(sources).values(**values))
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: {_reason(exc)}") from None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def last_stored(catalog: Catalog, source: str) -> AuditRecord | None:
    """The newest event of `source` in the audit trail: where a collector that died
    between storing a batch and saving its state resumes."""
    query = (select(records).where(records.c.action.like("db.%"))
             .where(records.c.target.like(_like(source) + "/%", escape="\\"))
             .order_by(records.c.seq.desc()).limit(1))
    found = list(stream_records(catalog, query))  # read to its end: the cursor closes
    return found[0] if found else None


def events(catalog: Catalog, since: datetime | None = None, system: str | None = None,
           user: str | None = None, cls: str | None = None) -> Iterator[AuditRecord]:
    """Database audit events in the order stored. `since` bounds the time they were
    stored (an event is stored after it happened, so every event since then is
    there); the event's own time is its detail's `time`."""
    query = select(records).where(records.c.action.like("db.%")).order_by(records.c.seq)
    if since is not None:
        query = query.where(records.c.at >= since.astimezone(UTC))
    if system is not None:
        query = query.where(records.c.target.like(_like(system) + "/%", escape="\\")
                            | records.c.target.like(_like(system) + "#%", escape="\\"))
    if user is not None:
        query = query.where(records.c.actor == ACTOR_PREFIX + user)
    if cls is not None:
        query = query.where(records.c.action == ACTION_PREFIX + cls.lower())
    return stream_records(catalog, query)


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    if orig is not None:
        return str(orig).strip().splitlines()[0]
    return type(exc).__name__
