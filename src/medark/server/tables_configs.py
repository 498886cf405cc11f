"""The institutions' versioned protection configurations (migration 0007_server_configs).

A change never rewrites a row: each saved document is a new version, unique per
institution, so two administrators saving at once cannot both become version N.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medark.server.tables import Base


class ConfigVersionRow(Base):
    __tablename__ = "config_versions"
    __table_args__ = (UniqueConstraint("institution_id", "version",
                                       name="uq_config_versions_institution_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)
    """The TOML text as saved (medark.toml's form, docs/configuration.md); no secrets."""
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
