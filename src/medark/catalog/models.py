"""The catalog's tables (SQLAlchemy 2). Changes go through an Alembic migration in
migrations/versions, never through create_all: a central PostgreSQL catalog outlives
many Medark versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from medark.catalog.statuses import CANCELLED, FAILED, QUEUED, RUNNING, STATUSES, SUCCEEDED

__all__ = ["CANCELLED", "FAILED", "QUEUED", "RUNNING", "STATUSES", "SUCCEEDED", "Alert",
           "Base", "DrAction", "Job", "JobEvent"]

LOCAL_JOB = text("institution IS NULL")
SERVER_JOB = text("institution IS NOT NULL")


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One run of one plan's job: what ran, when, how it ended, and what it measured."""

    __tablename__ = "jobs"
    __table_args__ = (
        # one attempt per schedule slot: of a plan of this catalog's own daemons, or of an
        # institution's plan (two institutions may name their plans alike); migration
        # 0008_server_jobs says why two partial indexes
        Index("uq_jobs_local_slot", "plan", "kind", "scheduled_for", "attempt", unique=True,
              sqlite_where=LOCAL_JOB, postgresql_where=LOCAL_JOB),
        Index("uq_jobs_institution_slot", "institution", "plan", "kind", "scheduled_for",
              "attempt", unique=True, sqlite_where=SERVER_JOB, postgresql_where=SERVER_JOB),
        Index("ix_jobs_institution_status", "institution", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(120))
    """backup, copy:TARGET (a scheduled copy), follow:TARGET (a continuous copy),
    restore_test."""
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The schedule slot this run serves (None for `medark run`): with the plan, kind and
    attempt unique, so a daemon restarted mid-slot never runs an attempt twice."""
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int | None] = mapped_column(Integer)
    bytes_added: Mapped[int | None] = mapped_column(BigInteger)
    snapshot_id: Mapped[str | None] = mapped_column(String(64))
    rpo_seconds: Mapped[float | None] = mapped_column(Float)
    """The plan's achieved RPO when the job ended: age of its newest recoverable point."""
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    institution: Mapped[str | None] = mapped_column(String(64))
    """The institution whose plan this is (a management server's job); None for a job of
    this catalog's own daemon or `medark run`."""
    system: Mapped[str | None] = mapped_column(String(200))
    agent: Mapped[str | None] = mapped_column(String(64))
    """The agent running it, or (while queued) the only agent that may claim it."""
    requested_by: Mapped[str | None] = mapped_column(String(200))
    """Who asked for it to run now (a user or API token); None for a scheduled run."""
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The newest progress the agent reported: percent, bytes_done, bytes_total,
    eta_seconds, message."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False,
                                                   server_default=false())
    origin_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    """"<agent>:<local job id>" of a job an agent ran on its own and reported later: a
    replayed report is recognised and not recorded twice."""


class JobEvent(Base):
    """What happened to a job, in order: progress, log lines, status changes. The id
    orders them and is the Server-Sent Events id a client resumes from."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(20))
    """progress, log or status."""
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Alert(Base):
    """One occurrence of an alert condition, from when it was raised until it cleared.
    At most one open row per key: that is what deduplicates notifications."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    """job_failed, rpo_breach, suspicious_snapshot, restore_test_failed."""
    plan: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    delivery: Mapped[str | None] = mapped_column(String(20), index=True)
    """pending, delivered or undelivered: how the newest notice (the firing one, then
    the resolved one) got to the channels. None: no channel, or recorded before
    deliveries were tracked."""
    notice: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """That notice as sent (state, title, text, details): retried word for word."""
    delivery_channels: Mapped[list[str] | None] = mapped_column(JSON)
    """The channels (config keys: webhooks[0], email) still to deliver it to."""
    delivery_tries: Mapped[int | None] = mapped_column(Integer)
    delivery_error: Mapped[str | None] = mapped_column(Text)
    """The last failure, one line per channel (no secret in it)."""
    delivery_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the notice was queued or last tried."""
    institution: Mapped[str | None] = mapped_column(String(64), index=True)
    """Whose condition it is on a management server (an agent's, an institution's
    plan); None for this catalog's own daemon."""


class DrAction(Base):
    """One DR action (switchover, failover, failback, drill) on one system: who asked,
    every step with its duration, and what it measured. A row still `running` is the
    system's DR claim: the partial unique index allows one per system
    (migrations/versions/0004_dr_actions.py says why an index, not a lock table)."""

    __tablename__ = "dr_actions"
    __table_args__ = (
        Index("ix_dr_actions_system", "system", "id"),
        Index("uq_dr_actions_running", "system", unique=True,
              sqlite_where=text("status = 'running'"),
              postgresql_where=text("status = 'running'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    """switchover, failover, failback or drill."""
    requested_by: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    """The process running it: a claim whose process died on this host is released."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    """running, succeeded, failed or rolled_back."""
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """[{name, started, seconds, result, detail}] in the order they ran."""
    switch_seconds: Mapped[float | None] = mapped_column(Float)
    """From the command to the first acknowledged write on the new primary."""
    data_loss: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The window a failover lost (bytes, seconds, last replayed against last known)."""
    error: Mapped[str | None] = mapped_column(Text)
    institution: Mapped[str | None] = mapped_column(String(64))
    """The institution whose system it is (a management server); None for a DR action
    of this catalog's own hosts."""
