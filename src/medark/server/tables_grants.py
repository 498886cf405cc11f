"""Cross-institution grants (migration 0010_grants): who of which institution may read
which patient data of another institution, why, and until when (server/grants.py).

A row is never deleted: a decision, a revocation and the audited expiry are columns set
once, so the table answers "who could read what, when, and who allowed it".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from medark.server.tables import Base


class GrantRow(Base):
    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_open", "expired_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    requester: Mapped[str] = mapped_column(String(64))
    from_institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"),
                                                     index=True)
    """The requester's institution."""
    to_institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    """The institution whose data is read: its security administrator decides."""
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    """{"systems": [...]} or {"snapshots": [...]} (snapshot ids or id prefixes)."""
    purpose: Mapped[str] = mapped_column(String(1000))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(20))
    """requested | approved | denied | revoked as stored; "expired" is computed on read
    (a requested or approved grant past ends_at)."""
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str | None] = mapped_column(String(1000))
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the expiry was appended to the audit trail (grant.expire, once per grant)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
