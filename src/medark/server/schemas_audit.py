"""Response bodies of the audit trail API (routes/audit.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Any

from medark.server.schemas import Reply


class AuditRecordView(Reply):
    seq: int
    at: str
    """UTC, microseconds, a Z: the time as hashed."""
    actor: str
    source: str
    action: str
    target: str | None
    result: str
    """ok, denied or failed."""
    institution: str | None
    detail: dict[str, Any]
    """Secrets were replaced by "***" when the record was written."""
    hash: str


class AuditPage(Reply):
    records: list[AuditRecordView]
    """Newest first."""
    next_before_seq: int | None
    """Give it as before_seq for the next (older) page; None: this was the last."""


class VerifyProblem(Reply):
    seq: int
    kind: str
    """edited, deleted, inserted, reordered, replaced, unknown_key (docs/audit.md)."""
    message: str


class VerifyReply(Reply):
    intact: bool
    records: int
    head: int
    chain: str
    problems: list[VerifyProblem]
