"""Cross-institution grants: reading another institution's patient data needs one.

The rule (docs/server.md, "Cross-institution grants"; the Sichuan review 1.5.1 wants every
cross-institution use authorised and traceable):
- an account reads its own institution's patient data (snapshot listings, browsing,
  finding files, restores, downloads) without a grant;
- another institution's needs an approved grant in its time window, a regional center's
  account too (the center sees every institution's status and metadata, not its data);
- a user with the operator or viewer role requests one, for a scope (systems or
  snapshots), a purpose and a window of at most 30 days; only a security administrator
  of the institution that owns the data approves or denies it, never the requester;
  the owner's security administrator or the requester revokes it;
- a requested or approved grant past its end is "expired" (computed on read);
  `record_expiries` appends one `grant.expire` per grant;
- every use is audited `grant.use`, every refusal `grant.refused`, with detail
  {grant, from_institution, to_institution, purpose, scope}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from medark.catalog.store import Catalog
from medark.errors import AccessDenied, Conflict, ObjectNotFound, UsageError
from medark.server import roles as R
from medark.server import scheduler
from medark.server.accounts import NAME, TITLE_CHARACTERS, Principal
from medark.server.db import audit, aware, transaction
from medark.server.tables import Institution
from medark.server.tables_grants import GrantRow
from medark.util import clock

REQUESTED = "requested"
APPROVED = "approved"
DENIED = "denied"
REVOKED = "revoked"
EXPIRED = "expired"
STATES = (REQUESTED, APPROVED, DENIED, REVOKED, EXPIRED)
MAX_WINDOW = timedelta(days=30)
"""The longest window a grant may have, and how far ahead it may start."""
MAX_SCOPE = 50
SNAPSHOT_REF = re.compile(r"[0-9a-f]{8,64}")
"""A snapshot in a scope: its id or an id prefix of at least 8 hex digits."""
_TEXT = re.compile(TITLE_CHARACTERS + "+")
GRANT_REQUIRED = "grant_required"
EXPIRE_EVERY = 10.0
"""Seconds between two runs of the server scheduler's task "grants.expire"."""


@dataclass(frozen=True)
class Grant:
    id: int
    requester: str
    requester_id: int
    from_institution: str
    to_institution: str
    scope: dict[str, list[str]]
    purpose: str
    starts_at: datetime
    ends_at: datetime
    stored_state: str
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    revoked_by: str | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """The stored state, or "expired" for a requested or approved grant past its
        end."""
        if self.stored_state in (REQUESTED, APPROVED) and now >= self.ends_at:
            return EXPIRED
        return self.stored_state

    def active(self, now: datetime) -> bool:
        return self.stored_state == APPROVED and self.starts_at <= now < self.ends_at

    def covers(self, system: str, snapshot: str | None) -> bool:
        """Whether the scope takes in this system (or this snapshot of it). A snapshot
        scope takes in a system's listing too, which then shows only its snapshots."""
        if "systems" in self.scope:
            return system in self.scope["systems"]
        return snapshot is None or self.allows_snapshot(snapshot)

    def allows_snapshot(self, snapshot_id: str) -> bool:
        if "systems" in self.scope:
            return True
        return any(snapshot_id.startswith(ref) for ref in self.scope.get("snapshots", []))

    def detail(self) -> dict[str, Any]:
        """The audit records' detail (the monthly report reads these keys)."""
        return {"grant": self.id, "from_institution": self.from_institution,
                "to_institution": self.to_institution, "purpose": self.purpose,
                "scope": self.scope}

    def view(self, now: datetime) -> dict[str, Any]:
        def fmt(value: datetime | None) -> str | None:
            return clock.format_time(value) if value else None

        return {"id": self.id, "requester": self.requester,
                "from_institution": self.from_institution,
                "to_institution": self.to_institution, "scope": self.scope,
                "purpose": self.purpose, "starts_at": fmt(self.starts_at),
                "ends_at": fmt(self.ends_at), "state": self.state(now),
                "active": self.active(now), "decided_by": self.decided_by,
                "decided_at": fmt(self.decided_at), "decision_note": self.decision_note,
                "revoked_by": self.revoked_by, "revoked_at": fmt(self.revoked_at),
                "created_at": fmt(self.created_at)}


def _when(value: datetime | None) -> datetime:
    found = aware(value)
    assert found is not None
    return found


def _grant(row: GrantRow, names: dict[int, str]) -> Grant:
    return Grant(id=row.id, requester=row.requester, requester_id=row.requester_id,
                 from_institution=names[row.from_institution_id],
                 to_institution=names[row.to_institution_id],
                 scope={k: list(v) for k, v in row.scope.items()}, purpose=row.purpose,
                 starts_at=_when(row.starts_at), ends_at=_when(row.ends_at),
                 stored_state=row.state, created_at=_when(row.created_at),
                 decided_by=row.decided_by, decided_at=aware(row.decided_at),
                 decision_note=row.decision_note, revoked_by=row.revoked_by,
                 revoked_at=aware(row.revoked_at))


def _names(session: Session) -> dict[int, str]:
    return {i: n for i, n in session.execute(select(Institution.id, Institution.name))}


def _institution(session: Session, name: str) -> Institution | None:
    if not NAME.fullmatch(name):
        return None
    return session.scalars(select(Institution).where(Institution.name == name)).first()


def _text(value: str | None, what: str, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise UsageError(f"a grant needs a {what}: say why the data is needed")
        return None
    if len(text) > 1000 or not _TEXT.fullmatch(text) or any(
            "\ud800" <= c <= "\udfff" for c in text):
        raise UsageError(f"the {what} is at most 1000 characters of printable text (no "
                         "control characters or line breaks)")
    return text


def checked_scope(scope: dict[str, list[str]]) -> dict[str, list[str]]:
    """{"systems": [names]} or {"snapshots": [ids or prefixes of 8+ hex digits]}, 1-50
    entries, sorted and without repeats."""
    if len(scope) != 1 or next(iter(scope)) not in ("systems", "snapshots"):
        raise UsageError('a grant\'s scope is {"systems": [...]} or {"snapshots": [...]}')
    kind, entries = next(iter(scope.items()))
    unique = sorted(set(entries))
    if not 1 <= len(unique) <= MAX_SCOPE:
        raise UsageError(f"a grant's scope names 1 to {MAX_SCOPE} {kind}")
    pattern = NAME if kind == "systems" else SNAPSHOT_REF
    bad = [e for e in unique if not pattern.fullmatch(e)]
    if bad:
        raise UsageError("a system is named by 1-64 of a-z 0-9 . _ -" if kind == "systems"
                         else "a snapshot is its id or an id prefix of 8 to 64 lowercase "
                              "hex digits")
    return {kind: unique}


def _window(starts_at: datetime | None, ends_at: datetime, now: datetime
            ) -> tuple[datetime, datetime]:
    start = now if starts_at is None or starts_at < now else starts_at
    if start > now + MAX_WINDOW:
        raise UsageError("a grant starts within 30 days")
    if ends_at <= start:
        raise UsageError("a grant's window ends after it starts (and after now)")
    if ends_at - start > MAX_WINDOW:
        raise UsageError("a grant's window is at most 30 days: request another one later")
    return start, ends_at


def request_grant(catalog: Catalog, principal: Principal, institution: str,
                  scope: dict[str, list[str]], purpose: str, starts_at: datetime | None,
                  ends_at: datetime, now: datetime) -> Grant:
    """A request by a person (not an API token: a grant answers for a person's use) for
    another institution's data; a start in the past means now."""
    if principal.kind != "session" or principal.user_id is None:
        raise AccessDenied("an API token cannot request a grant; sign in as the user",
                           "session_required")
    principal.require(R.GRANTS_REQUEST)
    with transaction(catalog) as session:
        owner = _institution(session, institution)
        if owner is None:
            raise ObjectNotFound(f"no institution {institution!r}")
        if owner.id == principal.institution_id:
            raise UsageError("your own institution's data needs no grant")
        checked = checked_scope(scope)
        text = _text(purpose, "purpose", required=True)
        assert text is not None
        start, end = _window(starts_at, ends_at, now)
        row = GrantRow(requester_id=principal.user_id, requester=principal.name,
                       from_institution_id=principal.institution_id,
                       to_institution_id=owner.id, scope=checked, purpose=text,
                       starts_at=start, ends_at=end, state=REQUESTED, created_at=now)
        session.add(row)
        session.flush()
        grant = _grant(row, _names(session))
    _audit(catalog, principal, "grant.request", grant, "ok",
           {"starts_at": clock.format_time(start), "ends_at": clock.format_time(end)})
    return grant


def _visible(principal: Principal, row: GrantRow) -> bool:
    return principal.center or principal.institution_id in (row.from_institution_id,
                                                            row.to_institution_id)


def _load(session: Session, principal: Principal, grant_id: int) -> GrantRow:
    row = session.get(GrantRow, grant_id) if 1 <= grant_id < 2**31 else None
    if row is None or not _visible(principal, row):
        raise ObjectNotFound(f"no grant {grant_id}")
    return row


def get_grant(catalog: Catalog, principal: Principal, grant_id: int) -> Grant:
    principal.require(R.GRANTS_READ)
    with transaction(catalog) as session:
        return _grant(_load(session, principal, grant_id), _names(session))


def list_grants(catalog: Catalog, principal: Principal, now: datetime,
                state: str | None = None, limit: int = 500) -> list[Grant]:
    """Newest first: every grant for a center account; otherwise those the account's
    institution asked for or owns the data of (the account's own requests and those
    awaiting its decision among them)."""
    principal.require(R.GRANTS_READ)
    query = select(GrantRow).order_by(GrantRow.id.desc())
    if not principal.center:
        query = query.where(or_(GrantRow.from_institution_id == principal.institution_id,
                                GrantRow.to_institution_id == principal.institution_id))
    if state in (DENIED, REVOKED):
        query = query.where(GrantRow.state == state)
    elif state in (REQUESTED, APPROVED):
        query = query.where(GrantRow.state == state, GrantRow.ends_at > now)
    elif state == EXPIRED:
        query = query.where(GrantRow.state.in_((REQUESTED, APPROVED)),
                            GrantRow.ends_at <= now)
    with transaction(catalog) as session:
        names = _names(session)
        return [_grant(row, names) for row in session.scalars(query.limit(limit))]


def decide(catalog: Catalog, principal: Principal, grant_id: int, approve: bool,
           note: str | None, now: datetime) -> Grant:
    """Approve or deny a requested grant: only a security administrator of the
    institution that owns the data, never the requester. A refusal is audited."""
    if principal.kind != "session":
        raise AccessDenied("an API token cannot decide a grant", "session_required")
    principal.require(R.GRANTS_DECIDE)
    action = "grant.approve" if approve else "grant.deny"
    text = _text(note, "note", required=False)
    with transaction(catalog) as session:
        row = _load(session, principal, grant_id)
        grant = _grant(row, _names(session))
    refusal: AccessDenied | Conflict | None = None
    if row.requester_id == principal.user_id:
        refusal = AccessDenied("you cannot decide your own grant request: the data "
                               "owner's security administrator does", "self_approval")
    elif principal.institution_id != row.to_institution_id:
        refusal = AccessDenied(f"only a security administrator of {grant.to_institution} "
                               "(whose data it is) decides this grant")
    elif grant.state(now) != REQUESTED:
        refusal = Conflict(f"grant {grant_id} is {grant.state(now)}, not awaiting a "
                           "decision", "grant_state")
    if refusal is None:
        with transaction(catalog) as session:
            done = session.execute(
                update(GrantRow).where(GrantRow.id == grant_id, GrantRow.state == REQUESTED)
                .values(state=APPROVED if approve else DENIED, decided_by=principal.name,
                        decided_at=now, decision_note=text))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                refusal = Conflict(f"grant {grant_id} was decided meanwhile", "grant_state")
            else:
                grant = _grant(_load(session, principal, grant_id), _names(session))
    if refusal is not None:
        _audit(catalog, principal, action, grant, "denied", {"reason": refusal.code})
        raise refusal
    _audit(catalog, principal, action, grant, "ok", {"note": text} if text else None)
    return grant


def revoke(catalog: Catalog, principal: Principal, grant_id: int, note: str | None,
           now: datetime) -> Grant:
    """End a requested or approved grant: its requester, or a security administrator
    of the institution that owns the data."""
    principal.require(R.GRANTS_READ)
    text = _text(note, "note", required=False)
    with transaction(catalog) as session:
        row = _load(session, principal, grant_id)
        grant = _grant(row, _names(session))
    owner = (R.allowed(principal.roles, R.GRANTS_DECIDE) and principal.kind == "session"
             and principal.institution_id == row.to_institution_id)
    refusal: AccessDenied | Conflict | None = None
    if row.requester_id != principal.user_id and not owner:
        refusal = AccessDenied("only the requester or a security administrator of "
                               f"{grant.to_institution} revokes this grant")
    elif grant.state(now) not in (REQUESTED, APPROVED):
        refusal = Conflict(f"grant {grant_id} is {grant.state(now)} already", "grant_state")
    if refusal is None:
        with transaction(catalog) as session:
            done = session.execute(
                update(GrantRow).where(GrantRow.id == grant_id,
                                       GrantRow.state.in_((REQUESTED, APPROVED)))
                .values(state=REVOKED, revoked_by=principal.name, revoked_at=now))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                refusal = Conflict(f"grant {grant_id} changed meanwhile", "grant_state")
            else:
                grant = _grant(_load(session, principal, grant_id), _names(session))
    if refusal is not None:
        _audit(catalog, principal, "grant.revoke", grant, "denied", {"reason": refusal.code})
        raise refusal
    _audit(catalog, principal, "grant.revoke", grant, "ok", {"note": text} if text else None)
    return grant


def record_expiries(catalog: Catalog, now: datetime, source: str = "server") -> int:
    """Append `grant.expire` for each requested or approved grant past its end, once per
    grant even with several processes (a guarded update of expired_at); how many.
    `source`: "scheduler" from the periodic task, "server" before a refused read."""
    with transaction(catalog) as session:
        names = _names(session)
        due = [_grant(row, names) for row in session.scalars(
            select(GrantRow).where(GrantRow.expired_at.is_(None), GrantRow.ends_at <= now,
                                   GrantRow.state.in_((REQUESTED, APPROVED))))]
    recorded = 0
    for grant in due:
        with transaction(catalog) as session:
            done = session.execute(update(GrantRow).where(
                GrantRow.id == grant.id, GrantRow.expired_at.is_(None)
            ).values(expired_at=now))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                continue
        audit(catalog, "server", source, "grant.expire", f"grant:{grant.id}", "ok",
              grant.to_institution, {**grant.detail(), "state": grant.stored_state,
                                     "ends_at": clock.format_time(grant.ends_at)})
        recorded += 1
    return recorded


def expire_task(catalog: Catalog, now: datetime) -> None:
    """The server scheduler's periodic task "grants.expire"."""
    record_expiries(catalog, now, "scheduler")


def grant_allows(catalog: Catalog, principal: Principal, institution: str, system: str,
                 *, snapshot: str | None = None, use: str = "snapshot.read",
                 now: datetime | None = None) -> Grant | None:
    """May `principal` read patient data of `system` (`snapshot` of it) in
    `institution`? None: its own institution, no grant needed. A Grant: the active
    grant it uses (audited `grant.use`). Otherwise AccessDenied `grant_required`
    (audited `grant.refused`). `use` names the read in the records."""
    now = now or clock.now()
    if institution == principal.institution:
        return None
    record_expiries(catalog, now)  # an expiry is on record before the refusal it causes
    found: list[Grant] = []
    with transaction(catalog) as session:
        owner = _institution(session, institution)
        if owner is None and principal.center:
            raise ObjectNotFound(f"no institution {institution!r}")
        if owner is not None and principal.user_id is not None:
            names = _names(session)
            found = [g for g in (_grant(row, names) for row in session.scalars(
                select(GrantRow).where(GrantRow.requester_id == principal.user_id,
                                       GrantRow.to_institution_id == owner.id,
                                       GrantRow.state == APPROVED)))
                     if g.active(now) and g.covers(system, snapshot)]
    wanted = {"snapshots": [snapshot]} if snapshot else {"systems": [system]}
    if not found:
        audit(catalog, principal.actor, principal.address, "grant.refused",
              f"{institution}/{system}", "denied", institution,
              {"grant": None, "from_institution": principal.institution,
               "to_institution": institution, "purpose": None, "scope": wanted, "use": use})
        raise AccessDenied(f"reading {institution}'s data needs a grant: request one "
                           "(POST /api/grants) for its security administrator to approve",
                           GRANT_REQUIRED)
    grant = max(found, key=lambda g: (g.ends_at, g.id))
    audit(catalog, principal.actor, principal.address, "grant.use", f"grant:{grant.id}",
          "ok", institution, {**grant.detail(), "use": use, "system": system,
                              **({"snapshot": snapshot} if snapshot else {})})
    return grant


def _audit(catalog: Catalog, principal: Principal, action: str, grant: Grant, result: str,
           extra: dict[str, Any] | None = None) -> None:
    audit(catalog, principal.actor, principal.address, action, f"grant:{grant.id}", result,
          grant.to_institution, {**grant.detail(), **(extra or {})})


scheduler.register("grants.expire", EXPIRE_EVERY, expire_task)
