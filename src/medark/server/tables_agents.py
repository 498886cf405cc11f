"""The agents' tables (migration 0009_agents): enrolment tokens and enrolled agents.

Only hashes of enrolment tokens and agent credentials are stored (server/db.py digest).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from medark.server.tables import Base


class EnrolmentToken(Base):
    """A single-use token a system administrator hands to a host's installer."""

    __tablename__ = "enrolment_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    name_hint: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_by_agent: Mapped[str | None] = mapped_column(String(64))


class Agent(Base):
    """An enrolled `medark agent`: its bound credential (hash), heartbeat and what it
    can run (the plans of its own local configuration)."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("institution_id", "name",
                                       name="uq_agents_institution_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(20), index=True)
    """online or offline (no heartbeat for `offline_after` seconds)."""
    offline_after: Mapped[float] = mapped_column(Float)
    """Seconds without a heartbeat after which the server marks it offline."""
    version: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    advertised: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """{"plans": [...], "kinds": [...], "interval": seconds} from its last heartbeat."""
    queue_length: Mapped[int | None] = mapped_column(Integer)
    """Results of its local schedule not yet uploaded."""
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
