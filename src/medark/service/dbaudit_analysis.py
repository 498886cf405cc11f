"""The monthly analysis of the database audit events (docs/dbaudit.md, Sichuan 1.5.2):
privilege changes, DDL on clinical objects, bulk reads, access outside working hours,
failed logins by source, connections from addresses outside the allow list, and client
programs not seen the month before. Each finding cites its events by their audit trail
numbers.

`analyse` is pure (events and settings in, findings out); `month_analysis` reads the
events from the catalog."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo
from typing import Any

from medark.catalog.audit_trail import AuditRecord
from medark.catalog.dbaudit_state import ACTOR_PREFIX, events
from medark.catalog.store import Catalog
from medark.config.dbaudit import DbAuditConf
from medark.config.plans import MedarkConfig
from medark.service.dbaudit import audited_sources

KINDS = ("privilege", "ddl", "bulk_read", "off_hours", "failed_logins",
         "disallowed_client", "new_program")
CITED = 50
"""Event numbers a finding lists (its count says how many there were)."""
TITLES = {
    "en": {"privilege": "privilege changes", "ddl": "DDL on clinical tables",
           "bulk_read": "bulk reads and exports", "off_hours": "access outside working hours",
           "failed_logins": "failed logins", "disallowed_client":
           "connections from addresses outside the allow list",
           "new_program": "new client programs"},
    "zh": {"privilege": "权限变更", "ddl": "临床数据表结构变更（DDL）",
           "bulk_read": "批量读取与导出", "off_hours": "非工作时间访问",
           "failed_logins": "登录失败", "disallowed_client": "来自白名单以外地址的连接",
           "new_program": "新出现的客户端程序"},
}

REPORT_TEXT = {
    "en": {"title": "Database audit analysis",
           "source": "From the database audit trail ({sources}): {n} events in the month; "
                     "each finding cites its events (medark dbaudit search).",
           "kind": "Finding", "count": "Findings", "subject": "Who / what",
           "events": "Events", "none": "None", "detail": "Detail"},
    "zh": {"title": "数据库审计分析",
           "source": "来源：数据库审计日志（{sources}），本月 {n} 条事件；每项发现列出其事件编号"
                     "（medark dbaudit search）。",
           "kind": "发现", "count": "数量", "subject": "对象", "events": "事件",
           "none": "无", "detail": "说明"},
}


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    time: datetime
    source: str
    user: str
    client: str
    database: str
    object: str
    cls: str
    command: str
    statement: str
    application: str
    rows: int | None
    result: str


def stored_event(record: AuditRecord) -> StoredEvent | None:
    d = record.detail
    try:
        when = datetime.fromisoformat(str(d["time"]))
    except (KeyError, ValueError):
        return None
    source = (record.target or "").split("/", 1)[0]
    rows = d.get("rows")
    return StoredEvent(record.seq, when, source, record.actor.removeprefix(ACTOR_PREFIX),
                       record.source, str(d.get("database", "")), str(d.get("object", "")),
                       str(d.get("class", "")), str(d.get("command", "")),
                       str(d.get("statement", "")), str(d.get("application", "")),
                       rows if isinstance(rows, int) else None, record.result)


@dataclass
class Finding:
    kind: str
    source: str
    subject: str
    """Who or what: a user, an address, an object, a program."""
    events: list[int] = field(default_factory=list)
    count: int = 0
    detail: str = ""

    def add(self, event: StoredEvent) -> None:
        self.count += 1
        if len(self.events) < CITED:
            self.events.append(event.seq)

    def public(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "subject": self.subject,
                "count": self.count, "events": self.events, "detail": self.detail}

    def line(self, language: str = "en") -> str:
        ids = ", ".join(f"#{s}" for s in self.events)
        more = "" if self.count <= len(self.events) else \
            (f" (+{self.count - len(self.events)} more)" if language == "en"
             else f"（另 {self.count - len(self.events)} 条）")
        times = f"{self.count}×" if language == "en" else f"{self.count} 次"
        detail = f" {self.detail}" if self.detail else ""
        return (f"{TITLES[language][self.kind]}: {self.source} {self.subject}{detail} "
                f"{times} [{ids}{more}]")


@dataclass
class Analysis:
    month: str
    events: int = 0
    sources: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_kind(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = {k: [] for k in KINDS}
        for finding in self.findings:
            grouped[finding.kind].append(finding)
        return grouped

    def words(self, language: str) -> dict[str, Any]:
        """The report section's words (service/templates/report_dbaudit.html.j2)."""
        return {**REPORT_TEXT[language], "kinds": TITLES[language]}

    def public(self) -> dict[str, Any]:
        return {"month": self.month, "events": self.events, "sources": self.sources,
                "counts": {k: len(v) for k, v in self.by_kind().items()},
                "findings": [f.public() for f in self.findings], "notes": self.notes}


def _inside(moment: time, hours: tuple[time, time]) -> bool:
    start, end = hours
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # a window past midnight


def _clinical(conf: DbAuditConf, obj: str) -> bool:
    if not conf.clinical:
        return True
    name = obj.lower()
    for pattern in (p.lower() for p in conf.clinical):
        if fnmatch.fnmatch(name, pattern):
            return True
        if "." not in name and fnmatch.fnmatch(name, pattern.rsplit(".", 1)[-1]):
            return True  # an object named without its schema (log_statement lines)
    return False


def analyse(month: str, current: Iterable[StoredEvent], earlier: Iterable[StoredEvent],
            confs: dict[str, DbAuditConf], zone: tzinfo,
            had_baseline: bool) -> Analysis:
    """The findings of `current` (the month's events, in order). `earlier`: the events of
    the month before (for new programs); `had_baseline`: whether any was collected then
    (without, every program would be new: none is reported)."""
    result = Analysis(month, sources=sorted(confs))
    seen_programs = {(e.source, e.application) for e in earlier if e.application}
    grouped: dict[tuple[str, str, str], Finding] = {}

    def group(kind: str, source: str, subject: str, detail: str = "") -> Finding:
        key = (kind, source, subject)
        if key not in grouped:
            grouped[key] = Finding(kind, source, subject, detail=detail)
            result.findings.append(grouped[key])
        return grouped[key]

    for e in current:
        result.events += 1
        conf = confs.get(e.source)
        if conf is None:
            continue
        if e.cls == "ROLE":
            finding = Finding("privilege", e.source, e.user, detail=e.statement[:200])
            finding.add(e)
            result.findings.append(finding)
        elif e.cls == "DDL" and e.result == "ok" and _clinical(conf, e.object):
            finding = Finding("ddl", e.source, e.object or e.database,
                              detail=f"{e.user}: {e.command}")
            finding.add(e)
            result.findings.append(finding)
        elif e.cls == "EXPORT" or (e.cls == "READ" and e.rows is not None
                                   and e.rows > conf.bulk_rows):
            rows = f"{e.rows} rows" if e.cls == "READ" else e.command
            finding = Finding("bulk_read", e.source, e.user,
                              detail=f"{e.object or e.database} ({rows})")
            finding.add(e)
            result.findings.append(finding)
        if e.cls == "FAILED_LOGIN":
            group("failed_logins", e.source, e.client).add(e)
            continue
        if e.cls == "DISCONNECT":
            continue  # not an access (MariaDB logs one after a refused login too)
        if not _inside(e.time.astimezone(zone).time(), conf.hours):
            group("off_hours", e.source, e.user, detail=f"({conf.working_hours})").add(e)
        if not conf.allows(e.client):
            group("disallowed_client", e.source, e.client).add(e)
        if had_baseline and e.application and (e.source, e.application) not in \
                seen_programs:
            group("new_program", e.source, e.application).add(e)
    if not had_baseline:
        result.notes.append("no events of the month before: new client programs are "
                            "reported from next month on")
    return result


def month_bounds(month: str, zone: tzinfo) -> tuple[datetime, datetime, datetime]:
    """The start of the month before, of the month, and of the month after."""
    year, number = (int(p) for p in month.split("-"))
    start = datetime(year, number, 1, tzinfo=zone)
    after = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    before = datetime(year - (number == 1), (number - 2) % 12 + 1, 1, tzinfo=zone)
    return before, start, after


def month_analysis(config: MedarkConfig, catalog: Catalog, month: str) -> Analysis:
    zone = config.zone
    before, start, after = month_bounds(month, zone)
    confs = {s.key: s.conf for s in audited_sources(config)}
    current: list[StoredEvent] = []
    earlier: list[StoredEvent] = []
    for record in events(catalog, since=before):
        event = stored_event(record)
        if event is None:
            continue
        if start <= event.time < after:
            current.append(event)
        elif before <= event.time < start:
            earlier.append(event)
    return analyse(month, current, earlier, confs, zone, bool(earlier))
