"""Transactions on the catalog's database for the server's tables, and the audit trail.

Every change the server makes is appended to the audit trail (catalog/audit_trail.py)
after its transaction commits; a refused or failed attempt is appended too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.store import Catalog


@contextmanager
def transaction(catalog: Catalog) -> Iterator[Session]:
    """One transaction; CatalogError when the database fails (IntegrityError passes
    through, for the caller to name the conflict)."""
    with catalog._session() as session:
        yield session


def audit(catalog: Catalog, actor: str, source: str, action: str, target: str | None = None,
          result: str = "ok", institution: str | None = None,
          detail: dict[str, Any] | None = None) -> None:
    append(catalog, AuditEntry(actor=actor, source=source, action=action, target=target,
                               result=result, institution=institution, detail=detail or {}))


def digest(token: str) -> str:
    """How a session or API token is stored and looked up: its SHA-256 (the token has
    256 random bits, so no slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def aware(value: datetime | None) -> datetime | None:
    """SQLite gives timestamps back without their zone; they were stored in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
