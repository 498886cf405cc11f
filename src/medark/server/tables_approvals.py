"""Four-eyes approvals (migration 0012_approvals): a change to an administrator account
that a second security administrator must approve before it takes effect
(server/approvals.py).

A row is never deleted: the decision and the audited expiry are columns set once, so the
table answers "who asked for which change of whose account, and who allowed it". No
password is ever stored here: an approved reset's one-time password is made at approval
and shown to the approver once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from medark.server.tables import Base


class ApprovalRow(Base):
    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_open", "state", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    """user.create | user.update: what the approval applies."""
    target: Mapped[str] = mapped_column(String(64), index=True)
    """The account's name (for user.create: the account to be made)."""
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    """The account's institution: its security administrators (or the center's) approve."""
    change: Mapped[dict[str, Any]] = mapped_column(JSON)
    """{"roles": [...]|null, "disabled": bool|null, "reset_password": bool,
    "reset_totp": bool} (user.create: {"roles": [...]}) and, for an update, the roles
    the account held when asked ("roles_before")."""
    reasons: Mapped[list[str]] = mapped_column(JSON)
    """Why four eyes: admin_create, admin_role_given, admin_role_taken, admin_disable,
    admin_password_reset, admin_totp_reset."""
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    requester: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    """pending | approved | rejected | expired (set by the audited expiry)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(String(1000))
