"""Request and response bodies of the jobs API (routes/jobs.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Any, Literal

from pydantic import Field

from medark.server.schemas import NAMED, Reply, Strict

PLAN_PATTERN = "^[^\\x00-\\x1f\\x7f]+$"
"""A plan's name: a TOML key of the configuration, without control characters."""


class RunNow(Strict):
    institution: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    plan: str = Field(min_length=1, max_length=200, pattern=PLAN_PATTERN)
    kind: Literal["backup", "check", "restore_test"]


class Progress(Reply):
    percent: float | None
    bytes_done: int | None
    bytes_total: int | None
    eta_seconds: float | None
    message: str


class JobView(Reply):
    id: int
    institution: str | None
    """None: a job of the catalog's own daemon (a regional center account sees them)."""
    plan: str
    kind: str
    status: str
    """queued, running, succeeded, failed or cancelled."""
    system: str | None
    agent: str | None
    host: str
    requested_by: str | None
    scheduled_for: str | None
    started_at: str | None
    finished_at: str | None
    attempt: int
    progress: Progress | None
    cancel_requested: bool
    error: str | None
    snapshot_id: str | None
    bytes_added: int | None
    details: dict[str, Any] | None


class JobReply(Reply):
    job: JobView


class JobList(Reply):
    jobs: list[JobView]
    next_before_id: int | None
    """Give it as before_id for the next (older) page; None: this was the last."""
