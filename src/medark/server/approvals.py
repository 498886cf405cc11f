"""Four-eyes approval of changes to administrator accounts (docs/server.md, "Four-eyes
approvals"; Veeam Enterprise Manager's four-eyes principle).

A security administrator who resets the password or second factor of an account holding
an administrator role (sysadmin, secadmin, auditadmin), disables one, creates one, or
gives or takes an administrator role, does not change it at once: a pending request is
made, and a second, different security administrator of the account's institution or of
the regional center approves it (it then takes effect, as that approver's change) or
rejects it. The requester never approves their own request, nor the account's holder a
change to their own account. A request expires after 24 hours (`approval.expire`).

With no second security administrator to approve, the request is refused with 409
`four_eyes_unavailable`, unless the server runs with `--single-security-admin`: then the
change takes effect at once and an `approval.waived` record says that four eyes were
skipped. Once a second one exists, four eyes apply even with the flag. Changes to
operator and viewer accounts are always immediate.

An approved reset's one-time password is made when it is approved and shown once to the
approver (who hands it over); it is never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from medark.catalog.store import Catalog
from medark.errors import AccessDenied, Conflict, MedarkError, ObjectNotFound, UsageError
from medark.server import roles as R
from medark.server.accounts import CENTER, TITLE_CHARACTERS, Accounts, Principal
from medark.server.db import audit, aware, transaction
from medark.server.scheduler import register
from medark.server.tables import Institution, User
from medark.server.tables_approvals import ApprovalRow
from medark.util import clock

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
FAILED = "failed"
"""Approved, but the change could no longer be made (the account changed meanwhile)."""
STATES = (PENDING, APPROVED, REJECTED, EXPIRED, FAILED)
TTL = timedelta(hours=24)
EXPIRE_TASK = "approvals.expire"
EXPIRE_EVERY = 300.0
CREATE = "user.create"
UPDATE = "user.update"
_TEXT = re.compile(TITLE_CHARACTERS + "+")


def update_reasons(before: list[str], roles: list[str] | None, disabled: bool | None,
                   reset_password: bool, reset_totp: bool) -> list[str]:
    """Why a change of an account holding `before` needs four eyes (empty: it does
    not)."""
    held = bool(R.ADMIN_ROLES & set(before))
    reasons = []
    if roles is not None and R.ADMIN_ROLES & (set(roles) - set(before)):
        reasons.append("admin_role_given")
    if roles is not None and R.ADMIN_ROLES & (set(before) - set(roles)):
        reasons.append("admin_role_taken")
    if held and disabled:
        reasons.append("admin_disable")
    if held and reset_password:
        reasons.append("admin_password_reset")
    if held and reset_totp:
        reasons.append("admin_totp_reset")
    return reasons


@dataclass(frozen=True)
class Outcome:
    """A change made at once (`user`, `password` after a reset or a creation) or a
    request awaiting a second security administrator (`approval`)."""

    user: dict[str, Any] | None = None
    password: str | None = None
    approval: dict[str, Any] | None = None


def create_user(accounts: Accounts, principal: Principal, name: str, institution: str,
                roles: list[str], now: datetime, *, waive: bool) -> Outcome:
    """POST /api/users: an account with an administrator role waits for approval."""
    checked, institution_id = accounts.check_create(principal, name, institution, roles)
    reasons = ["admin_create"] if R.ADMIN_ROLES & set(checked) else []
    change = {"roles": checked, "disabled": None, "reset_password": False,
              "reset_totp": False}
    if reasons and not _waived(accounts.catalog, principal, CREATE, name, institution,
                               institution_id, reasons, change, waive):
        return Outcome(approval=_request(accounts.catalog, principal, CREATE, name,
                                         institution_id, change, reasons, now))
    view, password = accounts.create_user(principal, name, institution, roles, now)
    return Outcome(user=view, password=password)


def update_user(accounts: Accounts, principal: Principal, name: str, now: datetime, *,
                roles: list[str] | None = None, disabled: bool | None = None,
                reset_password: bool = False, reset_totp: bool = False,
                waive: bool) -> Outcome:
    """PATCH and DELETE /api/users/NAME: immediate, or a request if four eyes apply."""
    checked = accounts.check_update(principal, name, roles=roles, disabled=disabled,
                                    reset_password=reset_password, reset_totp=reset_totp)
    current = accounts.user(principal, name)
    before = list(current["roles"])
    reasons = update_reasons(before, checked, disabled, reset_password, reset_totp)
    change = {"roles": checked, "disabled": disabled, "reset_password": reset_password,
              "reset_totp": reset_totp}
    with transaction(accounts.catalog) as session:
        institution_id = session.scalars(select(User.institution_id)
                                         .where(User.name == name)).one()
    if reasons and not _waived(accounts.catalog, principal, UPDATE, name,
                               current["institution"], institution_id, reasons, change,
                               waive):
        return Outcome(approval=_request(accounts.catalog, principal, UPDATE, name,
                                         institution_id, {**change, "roles_before": before},
                                         reasons, now))
    view, password = accounts.update_user(
        principal, name, now, roles=roles, disabled=disabled,
        reset_password=reset_password, reset_totp=reset_totp, expect_roles=before)
    return Outcome(user=view, password=password)


def _waived(catalog: Catalog, principal: Principal, kind: str, target: str,
            institution: str, institution_id: int, reasons: list[str],
            change: dict[str, Any], waive: bool) -> bool:
    """With --single-security-admin and no second security administrator who could
    approve: the change goes ahead, recorded as a warning. Once a second one exists, four
    eyes apply again, flag or not (the flag is for making that second one)."""
    if not waive:
        return False
    with transaction(catalog) as session:
        if _approvers(session, institution_id, principal.user_id, target):
            return False
    audit(catalog, principal.actor, principal.address, "approval.waived", target, "ok",
          institution, {"kind": kind, "reasons": reasons, "change": change,
                        "why": "single_security_admin"})
    return True


def _approvers(session: Session, institution_id: int, requester_id: int | None,
               target: str) -> list[str]:
    """Who could approve: the other enabled security administrators of the account's
    institution or of the regional center, never its holder."""
    center = session.scalars(select(Institution.id).where(Institution.kind == CENTER)
                             ).first()
    places = [institution_id] if center is None else [institution_id, center]
    rows = session.scalars(select(User).where(User.institution_id.in_(places),
                                              User.disabled.is_(False)))
    return sorted(u.name for u in rows if R.SECADMIN in u.roles and u.id != requester_id
                  and u.name != target)


def _request(catalog: Catalog, principal: Principal, kind: str, target: str,
             institution_id: int, change: dict[str, Any], reasons: list[str],
             now: datetime) -> dict[str, Any]:
    refusal: MedarkError | None = None
    with transaction(catalog) as session:
        institution = _institution_name(session, institution_id)
        if principal.kind != "session" or principal.user_id is None:
            refusal = AccessDenied("a change of an administrator account is asked for "
                                   "by a signed-in security administrator",
                                   "session_required")
        elif not _approvers(session, institution_id, principal.user_id, target):
            refusal = Conflict(
                f"four eyes: changing administrator account {target} needs a second "
                f"security administrator of {institution} or of the regional center to "
                "approve it, and there is none; create one (while you are the only one, "
                "the server must run with --single-security-admin)",
                "four_eyes_unavailable")
        elif session.scalars(select(ApprovalRow.id).where(
                ApprovalRow.target == target, ApprovalRow.state == PENDING,
                ApprovalRow.expires_at > now)).first() is not None:
            refusal = Conflict(f"a change of {target} awaits approval already: approve "
                               "or reject it first (GET /api/approvals)", "approval_pending")
        else:
            assert principal.user_id is not None
            row = ApprovalRow(kind=kind, target=target, institution_id=institution_id,
                              change=change, reasons=reasons, requester_id=principal.user_id,
                              requester=principal.name, state=PENDING, created_at=now,
                              expires_at=now + TTL)
            session.add(row)
            session.flush()
            view = _view(row, institution, now)
    detail = {"kind": kind, "reasons": reasons, "change": _public(change)}
    if refusal is not None:
        audit(catalog, principal.actor, principal.address, "approval.request", target,
              "denied", institution, {**detail, "reason": refusal.code})
        raise refusal
    audit(catalog, principal.actor, principal.address, "approval.request", target, "ok",
          institution, {"approval": view["id"], **detail,
                        "expires_at": view["expires_at"]})
    return view


def _public(change: dict[str, Any]) -> dict[str, Any]:
    return {k: change.get(k) for k in ("roles", "disabled", "reset_password", "reset_totp")}


def _institution_name(session: Session, institution_id: int) -> str:
    row = session.get(Institution, institution_id)
    assert row is not None
    return row.name


def _state(row: ApprovalRow, now: datetime) -> str:
    expires = aware(row.expires_at)
    if row.state == PENDING and expires is not None and now >= expires:
        return EXPIRED
    return row.state


def _view(row: ApprovalRow, institution: str, now: datetime) -> dict[str, Any]:
    def fmt(value: datetime | None) -> str | None:
        value = aware(value)
        return clock.format_time(value) if value else None

    return {"id": row.id, "kind": row.kind, "target": row.target,
            "institution": institution, "change": _public(row.change),
            "reasons": list(row.reasons), "requested_by": row.requester,
            "state": _state(row, now), "created_at": fmt(row.created_at),
            "expires_at": fmt(row.expires_at), "decided_by": row.decided_by,
            "decided_at": fmt(row.decided_at), "note": row.note}


def _visible(principal: Principal, row: ApprovalRow) -> bool:
    return principal.center or row.institution_id == principal.institution_id


def _load(session: Session, principal: Principal, approval_id: int) -> ApprovalRow:
    row = session.get(ApprovalRow, approval_id) if 1 <= approval_id < 2**31 else None
    if row is None or not _visible(principal, row):
        raise ObjectNotFound(f"no approval {approval_id}")
    return row


def list_approvals(catalog: Catalog, principal: Principal, now: datetime,
                   state: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Newest first: every institution's for a center account, else its own's."""
    principal.require(R.USERS_READ)
    query = select(ApprovalRow).order_by(ApprovalRow.id.desc())
    if not principal.center:
        query = query.where(ApprovalRow.institution_id == principal.institution_id)
    if state == PENDING:
        query = query.where(ApprovalRow.state == PENDING, ApprovalRow.expires_at > now)
    elif state == EXPIRED:
        query = query.where(ApprovalRow.state.in_((PENDING, EXPIRED)),
                            ApprovalRow.expires_at <= now)
    elif state is not None:
        query = query.where(ApprovalRow.state == state)
    with transaction(catalog) as session:
        names = {i: n for i, n in session.execute(select(Institution.id, Institution.name))}
        return [_view(row, names[row.institution_id], now)
                for row in session.scalars(query.limit(limit))]


def get_approval(catalog: Catalog, principal: Principal, approval_id: int,
                 now: datetime) -> dict[str, Any]:
    principal.require(R.USERS_READ)
    with transaction(catalog) as session:
        row = _load(session, principal, approval_id)
        return _view(row, _institution_name(session, row.institution_id), now)


def _note(note: str | None) -> str | None:
    text = (note or "").strip()
    if not text:
        return None
    if len(text) > 1000 or not _TEXT.fullmatch(text) or any(
            "\ud800" <= c <= "\udfff" for c in text):
        raise UsageError("a note is at most 1000 characters of printable text (no "
                         "control characters or line breaks)")
    return text


def decide(accounts: Accounts, principal: Principal, approval_id: int, approve: bool,
           note: str | None, now: datetime) -> Outcome:
    """Approve (the change takes effect as the approver's) or reject a pending request.
    Approving needs a security administrator other than the requester and the
    account's holder; the requester may withdraw (reject) their own. Refusals are
    audited."""
    catalog = accounts.catalog
    action = "approval.approve" if approve else "approval.reject"
    if principal.kind != "session":
        raise AccessDenied("an API token cannot decide an approval", "session_required")
    principal.require(R.USERS_WRITE)
    text = _note(note)
    with transaction(catalog) as session:
        row = _load(session, principal, approval_id)
        view = _view(row, _institution_name(session, row.institution_id), now)
        change, requester_id = dict(row.change), row.requester_id
    refusal: MedarkError | None = None
    own = requester_id == principal.user_id
    if approve and own:
        refusal = AccessDenied("four eyes: you cannot approve your own request; another "
                               "security administrator does", "self_approval")
    elif principal.name == view["target"]:
        refusal = AccessDenied("you cannot decide a change of your own account",
                               "self_approval")
    elif view["state"] == EXPIRED:
        record_expiries(catalog, now)
        refusal = Conflict(f"approval {approval_id} expired at {view['expires_at']}: ask "
                           "again", "approval_expired")
    elif view["state"] != PENDING:
        refusal = Conflict(f"approval {approval_id} is {view['state']}, not pending",
                           "approval_state")
    if refusal is None:
        with transaction(catalog) as session:
            done = session.execute(update(ApprovalRow).where(
                ApprovalRow.id == approval_id, ApprovalRow.state == PENDING,
                ApprovalRow.expires_at > now).values(
                state=APPROVED if approve else REJECTED, decided_by=principal.name,
                decided_at=now, note=text))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                refusal = Conflict(f"approval {approval_id} was decided meanwhile",
                                   "approval_state")
    detail = {"approval": approval_id, "kind": view["kind"], "reasons": view["reasons"],
              "change": view["change"], "requested_by": view["requested_by"]}
    if refusal is not None:
        audit(catalog, principal.actor, principal.address, action, view["target"],
              "denied", view["institution"], {**detail, "reason": refusal.code})
        raise refusal
    if not approve:
        audit(catalog, principal.actor, principal.address, action, view["target"], "ok",
              view["institution"], {**detail, **({"note": text} if text else {})})
        return Outcome(approval=get_approval(catalog, principal, approval_id, now))
    try:
        user, password = _apply(accounts, principal, view, change, now)
    except MedarkError as exc:
        with transaction(catalog) as session:
            session.execute(update(ApprovalRow).where(ApprovalRow.id == approval_id)
                            .values(state=FAILED))
        audit(catalog, principal.actor, principal.address, action, view["target"],
              "failed", view["institution"], {**detail, "reason": exc.code})
        raise
    audit(catalog, principal.actor, principal.address, action, view["target"], "ok",
          view["institution"], {**detail, **({"note": text} if text else {})})
    return Outcome(user=user, password=password,
                   approval=get_approval(catalog, principal, approval_id, now))


def _apply(accounts: Accounts, principal: Principal, view: dict[str, Any],
           change: dict[str, Any], now: datetime) -> tuple[dict[str, Any], str | None]:
    extra = {"approval": view["id"], "requested_by": view["requested_by"]}
    if view["kind"] == CREATE:
        return accounts.create_user(principal, view["target"], view["institution"],
                                    list(change["roles"]), now, extra)
    return accounts.update_user(
        principal, view["target"], now, roles=change.get("roles"),
        disabled=change.get("disabled"), reset_password=bool(change.get("reset_password")),
        reset_totp=bool(change.get("reset_totp")), expect_roles=change.get("roles_before"),
        extra=extra)


def record_expiries(catalog: Catalog, now: datetime) -> int:
    """Append `approval.expire` once per pending request past its 24 hours (a guarded
    update, so once even with several server processes); how many."""
    with transaction(catalog) as session:
        names = {i: n for i, n in session.execute(select(Institution.id, Institution.name))}
        due = [_view(row, names[row.institution_id], now) for row in session.scalars(
            select(ApprovalRow).where(ApprovalRow.state == PENDING,
                                      ApprovalRow.expires_at <= now))]
    recorded = 0
    for view in due:
        with transaction(catalog) as session:
            done = session.execute(update(ApprovalRow).where(
                ApprovalRow.id == view["id"], ApprovalRow.state == PENDING)
                .values(state=EXPIRED))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                continue
        audit(catalog, "server", "server", "approval.expire", view["target"], "ok",
              view["institution"], {"approval": view["id"], "kind": view["kind"],
                                    "reasons": view["reasons"],
                                    "requested_by": view["requested_by"],
                                    "expires_at": view["expires_at"]})
        recorded += 1
    return recorded


def expire_task(catalog: Catalog, now: datetime) -> None:
    """The server scheduler's periodic task "approvals.expire"."""
    record_expiries(catalog, now)


register(EXPIRE_TASK, EXPIRE_EVERY, expire_task)
