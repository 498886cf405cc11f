"""The audit trail for the audit administrator: search it, export it, verify its chain
(routes/audit.py). Nothing here changes or deletes a record: the trail is append-only
(catalog/audit_trail.py) and the catalog's triggers refuse the rest.

Who: the `audit.read` permission (auditadmin only). A regional center's account sees
every record; a hospital's only the records filed under its institution, and naming
another institution is 403 `out_of_scope`. Every search, export and verify is itself
audited (audit.search, audit.export, audit.verify) with its filters in the detail.

Filters run in SQL on the `audit_trail` table; an action may be a family (`user.*`,
catalog/audit_query.py). Pages go back by sequence number (`before_seq`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select

from medark.catalog.audit_entry import RESULTS as RESULTS
from medark.catalog.audit_export import FORMATS, export_header, export_line
from medark.catalog.audit_key import default_key_file, read_key
from medark.catalog.audit_query import _matching
from medark.catalog.audit_trail import (
    AuditRecord,
    AuditSettings,
    format_at,
    read_head,
    records,
    snapshot,
    stream_records,
)
from medark.catalog.audit_verify import Report, verify
from medark.catalog.store import Catalog
from medark.errors import AccessDenied, CatalogError, UsageError
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.db import audit
from medark.server.roles import AUDIT_READ

MAX_LIMIT = 1000
SEARCH = "audit.search"
EXPORT = "audit.export"
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True)
class AuditFilter:
    start: datetime | None = None
    end: datetime | None = None
    actor: str | None = None
    action: str | None = None
    institution: str | None = None
    result: str | None = None
    target: str | None = None
    given: tuple[tuple[str, str], ...] = ()
    """The filters as the caller gave them: the detail of the audit record."""

    def detail(self) -> dict[str, str]:
        return dict(self.given)


def moment(text: str, name: str, end: bool) -> datetime:
    """An ISO 8601 time with its zone, or a date (UTC midnight; for `to` the next one:
    through that day); UsageError (422) otherwise."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise UsageError(f"{name}: give an ISO 8601 time with its zone (2026-12-01 or "
                         "2026-12-01T08:00:00+08:00)") from None
    if value.tzinfo is None:
        raise UsageError(f"{name}: give the time's zone (Z or +08:00)")
    try:
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(f"{name}: out of range") from None
    return value


def audit_filter(*, start: str | None = None, end: str | None = None,
                 actor: str | None = None, action: str | None = None,
                 institution: str | None = None, result: str | None = None,
                 target: str | None = None) -> AuditFilter:
    """The query's filters, checked (422 for a bad time, result or range)."""
    begin = moment(start, "from", False) if start else None
    until = moment(end, "to", True) if end else None
    if begin is not None and until is not None and until <= begin:
        raise UsageError("to must be later than from")
    if result is not None and result not in RESULTS:
        raise UsageError(f"result: use one of {', '.join(RESULTS)}")
    given = tuple((k, v) for k, v in (("from", start), ("to", end), ("actor", actor),
                                      ("action", action), ("institution", institution),
                                      ("result", result), ("target", target))
                  if v is not None)
    return AuditFilter(begin, until, actor, action, institution, result, target, given)


def request_filter(catalog: Catalog, who: Principal, audited: str, **given: str | None
                   ) -> AuditFilter:
    """The request's filters, checked after the caller's role: someone who may not read
    the trail is refused (403, audited) whatever the filters hold, not told they are
    malformed."""
    if not R.allowed(who.roles, AUDIT_READ):
        names = {"start": "from", "end": "to"}  # as the request spelt them
        _allowed(catalog, who, audited, AuditFilter(given=tuple(
            (names.get(k, k), v) for k, v in given.items() if v is not None)))
    return audit_filter(**given)


def _allowed(catalog: Catalog, who: Principal, action: str, wanted: AuditFilter
             ) -> str | None:
    """The institution the caller's records are limited to (None: every one, a regional
    center's account); a refusal audited, then raised."""
    try:
        who.require(AUDIT_READ)
        if not who.center and wanted.institution not in (None, who.institution):
            raise AccessDenied(f"institution {wanted.institution} is not yours (yours is "
                               f"{who.institution})", "out_of_scope")
    except AccessDenied as exc:
        audit(catalog, who.actor, who.address, action, None, "denied", who.institution,
              {**wanted.detail(), "reason": exc.code})
        raise
    return None if who.center else who.institution


def _where(wanted: AuditFilter, scope: str | None) -> list[ColumnElement[bool]]:
    terms: list[ColumnElement[bool]] = []
    if wanted.start is not None:
        terms.append(records.c.at >= wanted.start.astimezone(UTC))
    if wanted.end is not None:
        terms.append(records.c.at < wanted.end.astimezone(UTC))
    for column, value in ((records.c.actor, wanted.actor),
                          (records.c.result, wanted.result),
                          (records.c.target, wanted.target),
                          (records.c.institution, wanted.institution)):
        if value is not None:
            terms.append(column == value)
    if scope is not None:
        terms.append(records.c.institution == scope)
    if wanted.action is not None:
        terms.append(_matching([wanted.action]))
    return terms


def record_view(record: AuditRecord) -> dict[str, Any]:
    return {"seq": record.seq, "at": format_at(record.at), "actor": record.actor,
            "source": record.source, "action": record.action, "target": record.target,
            "result": record.result, "institution": record.institution,
            "detail": record.detail, "hash": record.hash}


def search(catalog: Catalog, who: Principal, wanted: AuditFilter, limit: int = 100,
           before_seq: int | None = None) -> tuple[list[AuditRecord], int | None]:
    """Newest first, at most `limit`, older than `before_seq`; and the before_seq of the
    next page (None: this was the last)."""
    scope = _allowed(catalog, who, SEARCH, wanted)
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(records).where(*_where(wanted, scope))
    if before_seq is not None:
        query = query.where(records.c.seq < before_seq)
    found = list(stream_records(catalog,
                                query.order_by(records.c.seq.desc()).limit(limit)))
    audit(catalog, who.actor, who.address, SEARCH, None, "ok",
          scope or wanted.institution,
          {**wanted.detail(), "limit": limit, "before_seq": before_seq,
           "records": len(found)})
    return found, (found[-1].seq if len(found) == limit else None)


def export(catalog: Catalog, who: Principal, wanted: AuditFilter, form: str
           ) -> Iterator[str]:
    """The records in sequence order as `medark audit export` writes them (JSON lines,
    or CSV with a header), streamed; checked now, read as the caller iterates. The
    export is audited once it ends, with how many records it gave (`failed` when the
    download stopped early). The form: catalog/audit_export.py."""
    if form not in FORMATS:
        raise UsageError(f"format: use one of {', '.join(FORMATS)}")
    scope = _allowed(catalog, who, EXPORT, wanted)
    query = select(records).where(*_where(wanted, scope)).order_by(records.c.seq)
    return _lines(catalog, who, wanted, form, scope, query)


def _lines(catalog: Catalog, who: Principal, wanted: AuditFilter, form: str,
           scope: str | None, query: Any) -> Iterator[str]:
    count, outcome = 0, "failed"
    try:
        if form == "csv":
            yield export_header(form)
        for record in stream_records(catalog, query):
            yield export_line(record, form)
            count += 1
        outcome = "ok"
    finally:
        audit(catalog, who.actor, who.address, EXPORT, None, outcome,
              scope or wanted.institution,
              {**wanted.detail(), "format": form, "records": count})


def export_name(form: str, now: datetime) -> str:
    return f"medark-audit-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.{form}"


def _keys(catalog: Catalog) -> list[bytes]:
    """The key that signs the trail, as `medark audit verify` finds it without
    --key-file: MEDARK_AUDIT_KEY_FILE, else beside a SQLite catalog."""
    path = AuditSettings.from_environment().key_file or default_key_file(catalog.url)
    if not path.exists() and read_head(catalog).seq == 0:
        return []
    if not path.exists():
        raise CatalogError(f"the server's audit key {path.name} is missing: it cannot "
                           "verify the trail")
    return [read_key(path)]


def check(catalog: Catalog, who: Principal) -> Report:
    """`medark audit verify` (without anchors): the whole chain, each problem named by
    sequence number and kind."""
    _allowed(catalog, who, "audit.verify", AuditFilter())
    keys = _keys(catalog)
    before, rows, after = snapshot(catalog)
    report = verify(before, rows, after, keys)
    audit(catalog, who.actor, who.address, "audit.verify", None, "ok", who.institution,
          {"records": report.records, "head": report.head, "intact": report.intact,
           "problems": len(report.findings)})
    return report
