"""What Sichuan 1.5.2 is judged on (policy/compliance_dbaudit.py), read from the
configuration, the collectors' state and the audit trail; and the record `medark report`
leaves there when it writes a report, which is how a later `compliance` knows the month's
analysis was made."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from medark.catalog.audit_trail import AuditEntry, append, records, stream_records
from medark.catalog.dbaudit_state import load_states
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.policy.compliance_dbaudit import Collector, DbAuditFacts

REPORT_ACTION = "report.written"
DATABASES = ("postgres", "mariadb")


def previous_month(now: datetime, config: MedarkConfig) -> str:
    first = now.astimezone(config.zone).date().replace(day=1)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def report_written(catalog: Catalog, kind: str, period: str) -> bool:
    """Whether a report of `period` was written with the database audit analysis."""
    query = (select(records).where(records.c.action == REPORT_ACTION)
             .where(records.c.target == f"report:{kind}:{period}"))
    return any([r.detail.get("dbaudit") for r in stream_records(catalog, query)])


def note_report(catalog: Catalog, actor: str, kind: str, period: str, dbaudit: bool,
                files: list[str]) -> int:
    """Records a written report in the audit trail; its number."""
    return append(catalog, AuditEntry(actor=actor, source="cli", action=REPORT_ACTION,
                                      target=f"report:{kind}:{period}",
                                      detail={"dbaudit": dbaudit, "files": files}))


def db_audit_facts(config: MedarkConfig, catalog: Catalog, system: str, now: datetime
                   ) -> DbAuditFacts:
    conf = config.systems[system]
    databases, unaudited = [], []
    for index, source in enumerate(conf.sources):
        if source.type not in DATABASES:
            continue
        key = system if index == 0 else f"{system}#{index}"
        databases.append(key)
        if source.audit is None:
            unaudited.append(key)
    core = conf.criticality == "core"
    if not core or not databases:
        return DbAuditFacts(core, databases, unaudited)
    states = load_states(catalog)
    collectors = []
    for key in databases:
        if key in unaudited:
            continue
        state = states.get(key)
        if state is None:
            collectors.append(Collector(key, None, None))
            continue
        collectors.append(Collector(
            key, now - state.last_run_at if state.last_run_at else None,
            now - state.last_event_at if state.last_event_at else None, state.last_error))
    period = previous_month(now, config)
    return DbAuditFacts(core, databases, unaudited, collectors, period,
                        report_written(catalog, "monthly", period))
