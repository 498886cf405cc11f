"""Sichuan 1.5.2 (a database audit system, and a data-security analysis at least
monthly), judged per system from facts gathered by service/compliance.py: a core system's
every database source must have its audit log collected (its collector ran in the last
hour without error, and stored an event in the last day), and the monthly report of the
last whole month must exist with the database audit analysis in it (docs/dbaudit.md).

Pure; returns (status, evidence key, values) pairs that policy/compliance.py turns into
its checks, with the words below (merged into compliance_text.EVIDENCE)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

RUN_LIMIT = timedelta(hours=1)
EVENT_LIMIT = timedelta(days=1)

Judged = tuple[str, str, dict[str, object]]


@dataclass(frozen=True)
class Collector:
    source: str
    last_run: timedelta | None
    """How long ago its last pass ran; None: never."""
    last_event: timedelta | None
    """How long ago the newest event it stored happened; None: none."""
    error: str | None = None


@dataclass(frozen=True)
class DbAuditFacts:
    core: bool
    databases: list[str]
    """The system's database sources (SYSTEM, SYSTEM#N)."""
    unaudited: list[str]
    collectors: list[Collector] = field(default_factory=list)
    period: str = ""
    """The last whole month, whose report is required."""
    report: bool = False
    """A monthly report of `period` was written with the database audit analysis."""


def judge(f: DbAuditFacts | None) -> tuple[Judged, Judged]:
    if f is None or not f.core or not f.databases:
        na: Judged = ("n/a", "dbaudit.na", {})
        return na, na
    sources = ", ".join(f.databases)
    if f.unaudited:
        design: Judged = ("fail", "dbaudit.unaudited", {"sources": ", ".join(f.unaudited)})
    else:
        design = ("pass", "dbaudit.configured", {"sources": sources})
    problems: list[str] = []
    for c in f.collectors:
        if c.last_run is None:
            problems.append(f"{c.source}: never collected")
        elif c.error:
            problems.append(f"{c.source}: {c.error}")
        elif c.last_run > RUN_LIMIT:
            problems.append(f"{c.source}: last collected {_hours(c.last_run)} ago")
        elif c.last_event is None or c.last_event > EVENT_LIMIT:
            problems.append(f"{c.source}: no event in the last 24 h")
    if not f.report:
        problems.append(f"no monthly report of {f.period} with the database audit "
                        "analysis (medark report --month " + f.period + ")")
    if f.unaudited:
        problems.insert(0, f"not collected: {', '.join(f.unaudited)}")
    if problems:
        return design, ("fail", "dbaudit.problems", {"problems": "; ".join(problems)})
    return design, ("pass", "dbaudit.ok", {"sources": sources, "period": f.period})


def _hours(value: timedelta) -> str:
    return f"{value.total_seconds() / 3600:.1f} h"


EVIDENCE = {
    "en": {
        "dbaudit.na": "not a core system with a database",
        "dbaudit.unaudited": "no audit log configured for {sources} (docs/dbaudit.md)",
        "dbaudit.configured": "audit log collected for {sources}",
        "dbaudit.problems": "{problems}",
        "dbaudit.ok": "collector of {sources} healthy; report of {period} includes the "
                      "database audit analysis",
    },
    "zh": {
        "dbaudit.na": "非核心数据库系统",
        "dbaudit.unaudited": "{sources} 未配置审计日志采集（docs/dbaudit.md）",
        "dbaudit.configured": "已采集 {sources} 的审计日志",
        "dbaudit.problems": "{problems}",
        "dbaudit.ok": "{sources} 审计采集正常；{period} 月度报告包含数据库审计分析",
    },
}
TITLE_ZH = "数据库审计系统，且至少每月一次数据安全分析报告"
