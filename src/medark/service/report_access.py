"""The periodic reports' access section, from the audit trail (catalog/audit_query.py):
cross-institution data sharing under grants, failed logins, and administrators' actions
(等保 level 3 security audit: who did what, from where, with what result; Sichuan
1.5.2's monthly data-security analysis).

What counts as an administrator's action is decided by the action, not by the actor's
roles today (roles change; the record is what happened): ADMIN_ACTIONS below, the
actions that change accounts, credentials, institutions, agents, the configuration or a
grant, or read the trail itself. docs/audit.md lists them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medark.catalog.audit_query import count_between, records_between
from medark.catalog.audit_trail import AuditRecord
from medark.catalog.store import Catalog

GRANT_ACTIONS = ("grant.*",)
"""grant.request, grant.approve, grant.deny, grant.use, grant.expire, grant.refused, …"""
GRANT_USE = "grant.use"
GRANT_REFUSED = "grant.refused"
LOGIN_ACTIONS = ("login", "lockout")
ADMIN_ACTIONS = ("server.*", "institution.*", "user.*", "token.*", "password.*", "totp.*",
                 "config.*", "agent.*", "key.*", "grant.approve", "grant.deny",
                 "grant.revoke", "audit.export", "audit.verify")
"""Administrators' actions: accounts, credentials, institutions, agents, configuration,
grant decisions, reading the trail. Routine records (logins, `audit.anchor` by the
daemon, backups) are not: they would bury the few that matter."""
LIST_LIMIT = 200
"""Rows a list shows; the counts above it cover every record, and `medark audit export
--from --to` gives them all."""


@dataclass(frozen=True)
class GrantUse:
    """One grant's use in the period: uses and refusals, who shared with whom."""

    grant: str
    """The grant's number; "" for refusals where no grant was found."""
    from_institution: str
    """The requesting institution (whose account reads)."""
    to_institution: str
    """The institution that owns the data (its security administrator decides)."""
    purpose: str
    uses: int = 0
    refused: int = 0
    last: datetime | None = None


@dataclass(frozen=True)
class Event:
    """One record as a list shows it."""

    at: datetime
    actor: str
    source: str
    action: str
    target: str
    result: str
    note: str
    """A grant's requesting and owning institutions and purpose, or the detail's short
    form."""


@dataclass(frozen=True)
class FailedLogins:
    """Failed logins from one address to one account."""

    source: str
    account: str
    failures: int
    lockouts: int
    first: datetime
    last: datetime


@dataclass
class AccessSection:
    records: int
    """Audit records in the period: 0 says the trail has nothing for it (no server
    ran, or the catalog is not the server's)."""
    grants: list[GrantUse] = field(default_factory=list)
    grant_events: list[Event] = field(default_factory=list)
    """Requests, decisions, expiries and refusals (uses are summed in `grants`)."""
    grant_events_total: int = 0
    failed_logins: list[FailedLogins] = field(default_factory=list)
    failed_logins_total: int = 0
    """Failed logins and lockouts, every group."""
    admin_counts: list[tuple[str, int]] = field(default_factory=list)
    """(actor, actions), most first."""
    admin_actions: list[Event] = field(default_factory=list)
    admin_total: int = 0


def gather_access(catalog: Catalog, start: datetime, end: datetime,
                  institution: str | None = None) -> AccessSection:
    """`institution`: only the records filed under it (a management server's report of
    one hospital: the uses of its data, which grants file under the data's owner, its
    accounts' failed logins, the actions on it); None, every record."""
    section = AccessSection(count_between(catalog, start, end, institution))
    if section.records == 0:
        return section
    _grants(section, records_between(catalog, start, end, GRANT_ACTIONS,
                                     institution=institution))
    _failed_logins(section, records_between(catalog, start, end, LOGIN_ACTIONS,
                                            institution=institution))
    counts: Counter[str] = Counter()
    for record in records_between(catalog, start, end, ADMIN_ACTIONS,
                                  institution=institution):
        counts[record.actor] += 1
        section.admin_total += 1
        if len(section.admin_actions) < LIST_LIMIT:
            section.admin_actions.append(_event(record, _short(record.detail)))
    section.admin_counts = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return section


def _text(detail: dict[str, Any], key: str, default: str = "") -> str:
    value = detail.get(key)
    return default if value is None else str(value)


def _grants(section: AccessSection, found: Any) -> None:
    by_grant: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in found:
        detail = record.detail
        grant = _text(detail, "grant")  # "": a refusal for want of any grant
        source = _text(detail, "from_institution", "-")
        target = _text(detail, "to_institution", record.institution or "-")
        purpose = _text(detail, "purpose")
        refused = record.action == GRANT_REFUSED or record.result == "denied"
        if record.action == GRANT_USE or refused:
            row = by_grant.setdefault((grant, source, target), {
                "purpose": purpose, "uses": 0, "refused": 0, "last": None})
            row["purpose"] = row["purpose"] or purpose
            row["refused" if refused else "uses"] += 1
            row["last"] = record.at
        if record.action != GRANT_USE or refused:
            section.grant_events_total += 1
            if len(section.grant_events) < LIST_LIMIT:
                note = f"{source} → {target}" + (f" · {purpose}" if purpose else "")
                section.grant_events.append(_event(record, note))
    section.grants = sorted(
        (GrantUse(g, s, t, r["purpose"], r["uses"], r["refused"], r["last"])
         for (g, s, t), r in by_grant.items()),
        key=lambda u: (-u.uses - u.refused, u.grant))


def _failed_logins(section: AccessSection, found: Any) -> None:
    groups: dict[tuple[str, str], list[Any]] = {}
    for record in found:
        if record.action == "login" and record.result == "ok":
            continue
        account = record.target or record.actor
        row = groups.setdefault((record.source, account), [0, 0, record.at, record.at])
        row[1 if record.action == "lockout" else 0] += 1
        row[3] = record.at
    rows = sorted((FailedLogins(s, a, f, lock, first, last)
                   for (s, a), (f, lock, first, last) in groups.items()),
                  key=lambda g: (-g.failures - g.lockouts, g.source, g.account))
    section.failed_logins_total = len(rows)
    section.failed_logins = rows[:LIST_LIMIT]


def _event(record: AuditRecord, note: str) -> Event:
    return Event(record.at, record.actor, record.source, record.action,
                 record.target or "", record.result, note)


def _short(detail: dict[str, Any]) -> str:
    """The detail as `key=value` pairs, at most 120 characters (secrets are never
    stored: audit_entry.SECRET_NAMES)."""
    text = ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))
    return text if len(text) <= 120 else text[:119] + "…"
