"""The periodic reports the management server generates (migration 0011_server_oversight).

The PDF is a column of the row (bytea on PostgreSQL), deferred so that listing reports
never reads it: every server process can serve every download, and a report is never
`done` without its file (both are written in one transaction).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medark.server.tables import Base


class ReportRow(Base):
    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_institution", "institution", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    institution: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    """monthly or quarterly."""
    period: Mapped[str] = mapped_column(String(20))
    """2026-11 or 2026-Q4."""
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(20), index=True)
    """queued, running, done or failed."""
    config_version: Mapped[int | None] = mapped_column(Integer)
    """The institution's configuration version the report was made from."""
    file_name: Mapped[str] = mapped_column(String(300))
    """The download's name (the hospital's name may be Chinese)."""
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str] = mapped_column(String(300))
    """host:pid of the server process generating it: a report whose process is gone is
    closed as failed by the next process on that host that lists reports."""
    error: Mapped[str | None] = mapped_column(Text)
