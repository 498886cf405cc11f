"""Request and response bodies of alerts, compliance and reports (routes/alerts.py,
routes/compliance.py, routes/reports.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Any, Literal

from pydantic import Field

from medark.catalog.alert_severity import Severity
from medark.server.schemas import Reply, Strict

PERIOD = "^20[0-9]{2}-(0[1-9]|1[0-2]|Q[1-4])$"
"""2026-11 (a monthly report) or 2026-Q4 (quarterly)."""


class AlertView(Reply):
    id: int
    institution: str | None
    """None: an alert of the catalog's own daemon, not of an institution."""
    key: str
    kind: str
    severity: Severity
    """From the kind (catalog/alert_severity.py): critical, major or minor."""
    plan: str
    summary: str
    opened_at: str
    resolved_at: str | None
    open: bool
    details: dict[str, Any] | None
    delivery: str | None
    """pending, delivered or undelivered (None: no notification channel)."""


class AlertList(Reply):
    alerts: list[AlertView]


class Judged(Reply):
    status: str
    evidence: str


class VerdictView(Reply):
    system: str
    requirement: str
    title: str
    source: str
    must: bool
    status: str
    design: Judged
    measured: Judged


class ComplianceReply(Reply):
    institution: str
    config_version: int
    at: str
    profile: str
    level: int
    sichuan: bool
    lang: str
    compliant: bool
    counts: dict[str, int]
    must_not_covered: int
    verdicts: list[VerdictView]


class NewReport(Strict):
    kind: Literal["monthly", "quarterly"]
    period: str | None = Field(default=None, max_length=7, pattern=PERIOD)
    """The month (2026-11) or quarter (2026-Q4); default the last whole one."""
    language: Literal["zh", "en"] = "zh"


class ReportView(Reply):
    id: int
    institution: str
    kind: str
    period: str
    language: str
    status: str
    """queued, running, done or failed."""
    config_version: int | None
    file_name: str
    size: int | None
    sha256: str | None
    created_by: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None


class ReportReply(Reply):
    report: ReportView


class ReportList(Reply):
    reports: list[ReportView]
