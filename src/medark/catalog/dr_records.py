"""A DR action as the catalog returns it: plain values, no SQLAlchemy session behind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from medark.catalog.models import DrAction
from medark.util import clock


@dataclass(frozen=True)
class DrStep:
    """One step of a DR action (fence, wait_replay, promote, redirect, health, …)."""

    name: str
    started: datetime
    seconds: float
    result: str
    """ok, failed or skipped (the commands choose; the catalog only keeps it)."""
    detail: str = ""

    def stored(self) -> dict[str, Any]:
        return {"name": self.name, "started": clock.format_time(self.started),
                "seconds": self.seconds, "result": self.result, "detail": self.detail}

    @classmethod
    def loaded(cls, row: dict[str, Any]) -> DrStep:
        return cls(str(row["name"]), clock.parse_time(row["started"]), float(row["seconds"]),
                   str(row["result"]), str(row.get("detail", "")))


@dataclass(frozen=True)
class DrActionRecord:
    id: int
    system: str
    kind: str
    requested_by: str
    host: str
    pid: int | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    steps: list[DrStep]
    switch_seconds: float | None
    data_loss: dict[str, Any] | None
    error: str | None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "system": self.system, "kind": self.kind,
                "requested_by": self.requested_by, "host": self.host, "pid": self.pid,
                "status": self.status, "started_at": clock.format_time(self.started_at),
                "finished_at": (clock.format_time(self.finished_at)
                                if self.finished_at is not None else None),
                "steps": [step.stored() for step in self.steps],
                "switch_seconds": self.switch_seconds, "data_loss": self.data_loss,
                "error": self.error}


def dr_record(row: DrAction) -> DrActionRecord:
    return DrActionRecord(row.id, row.system, row.kind, row.requested_by, row.host, row.pid,
                          row.status, _aware(row.started_at), _aware_or_none(row.finished_at),
                          [DrStep.loaded(step) for step in row.steps or []],
                          row.switch_seconds, row.data_loss, row.error)


def _aware(value: datetime) -> datetime:
    """SQLite gives timestamps back without their zone; they were stored in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _aware_or_none(value: datetime | None) -> datetime | None:
    return _aware(value) if value is not None else None
