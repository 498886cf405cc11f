"""The server scheduler's record of its periodic tasks (migration 0008_server_jobs).

One row per (task, slot): inserting it is how a leader claims a slot, so a slot runs
once even if two server processes both believed themselves leader for a moment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medark.server.tables import Base


class ServerTaskRun(Base):
    __tablename__ = "server_task_runs"
    __table_args__ = (UniqueConstraint("task", "slot", name="uq_server_task_runs_task_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(100))
    slot: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """The start of the period this run serves (a multiple of the task's interval)."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    leader_host: Mapped[str] = mapped_column(String(255))
    leader_pid: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    """Why the run failed (one line, the exception's kind and message); None: it ran."""
