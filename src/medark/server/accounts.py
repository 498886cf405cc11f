"""Institutions, users and API tokens: what the security and system administrators
manage. Every change is audited; every check of who may do it is here, not in the routes.

Tenancy: an account of the regional center manages every institution's accounts; an
account of a hospital only its own hospital's.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medark.catalog.store import Catalog
from medark.errors import AccessDenied, Conflict, ObjectNotFound, SeparationOfDuties, UsageError
from medark.server import roles as R
from medark.server.db import audit, aware, digest, transaction
from medark.server.passwords import hash_password, one_time_password
from medark.server.tables import ApiToken, Institution, User, UserSession
from medark.util import clock

CENTER = "center"
HOSPITAL = "hospital"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TITLE_CHARACTERS = r"[^\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
"""What a title may hold: any text but control characters, line breaks and the bidi
overrides that make a shown name lie (CVE-2021-42574). Also the OpenAPI pattern."""
_TITLE = re.compile(TITLE_CHARACTERS + "*")
ADMINS = (("sysadmin", R.SYSADMIN), ("secadmin", R.SECADMIN), ("auditadmin", R.AUDITADMIN))
"""The accounts `server init` creates: one per administrator role."""


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a signed-in user (kind `session`) or an API token."""

    name: str
    kind: str
    roles: tuple[str, ...]
    institution: str
    institution_id: int
    center: bool
    """Whether the account belongs to the regional center (it sees every institution)."""
    address: str
    user_id: int | None = None
    session_id: str | None = None
    must_change_password: bool = False
    totp_enrolment_required: bool = False

    @property
    def actor(self) -> str:
        return f"token:{self.name}" if self.kind == "token" else self.name

    def require(self, permission: str) -> None:
        if not R.allowed(self.roles, permission):
            raise AccessDenied(f"the role{'s' if len(self.roles) > 1 else ''} "
                               f"{', '.join(self.roles)} may not do this ({permission})")

    def require_scope(self, institution_id: int, name: str) -> None:
        if not self.center and institution_id != self.institution_id:
            raise AccessDenied(f"{name} belongs to another institution than yours")


def _surrogates(text: str) -> bool:
    """A lone surrogate (JSON allows "\\udcff") cannot be stored as UTF-8."""
    return any("\ud800" <= c <= "\udfff" for c in text)


def valid_name(name: str, what: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(f"invalid {what} name: use 1-64 of a-z, 0-9, '.', '_', '-', "
                         "starting with a letter or digit")
    return name


def user_view(user: User, institution: str) -> dict[str, Any]:
    locked = aware(user.locked_until)
    return {"name": user.name, "institution": institution, "roles": list(user.roles),
            "disabled": user.disabled, "must_change_password": user.must_change_password,
            "totp_enrolled": user.totp_confirmed,
            "locked_until": clock.format_time(locked) if locked else None,
            "created_at": clock.format_time(aware(user.created_at) or clock.now())}


def _institution_view(row: Institution) -> dict[str, Any]:
    return {"name": row.name, "title": row.title, "kind": row.kind,
            "created_at": clock.format_time(aware(row.created_at) or clock.now())}


def institution_row(session: Session, name: str) -> Institution:
    """The institution named; ObjectNotFound (also for a name that cannot be one)."""
    row = None if not NAME.fullmatch(name) else session.scalars(
        select(Institution).where(Institution.name == name)).first()
    if row is None:
        raise ObjectNotFound(f"no institution {name!r}")
    return row


def _user(session: Session, principal: Principal, name: str) -> tuple[User, Institution]:
    user = None if not NAME.fullmatch(name) else session.scalars(
        select(User).where(User.name == name)).first()
    if user is None:
        raise ObjectNotFound(f"no user {name!r}")
    principal.require_scope(user.institution_id, f"user {name}")
    institution = session.get(Institution, user.institution_id)
    assert institution is not None
    return user, institution


def _new_user(name: str, institution_id: int, roles: list[str], password: str,
              now: datetime) -> User:
    return User(name=name, institution_id=institution_id, roles=roles,
                password_hash=hash_password(password), must_change_password=True,
                totp_secret=None, totp_confirmed=False, totp_last_step=None,
                failed_logins=0, locked_until=None, disabled=False, created_at=now,
                updated_at=now)


class Accounts:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def initialised(self) -> bool:
        with transaction(self.catalog) as session:
            return session.scalars(select(Institution.id).where(
                Institution.kind == CENTER)).first() is not None

    def initialise(self, center: str, title: str, now: datetime,
                   source: str = "cli") -> dict[str, str]:
        """Create the regional center and the three administrators; {user: one-time
        password}. Conflict when the catalog has its center already."""
        valid_name(center, "institution")
        if not _TITLE.fullmatch(title) or _surrogates(title):
            raise UsageError("the center's title is printable text (no control characters)")
        if self.initialised():
            raise Conflict("the server is already initialised (its regional center "
                           "exists); manage accounts through the API", "already_initialised")
        passwords = {name: one_time_password() for name, _role in ADMINS}
        try:
            with transaction(self.catalog) as session:
                row = Institution(name=center, title=title, kind=CENTER, created_at=now)
                session.add(row)
                session.flush()
                for name, role in ADMINS:
                    session.add(_new_user(name, row.id, [role], passwords[name], now))
        except IntegrityError:
            raise Conflict("the server is already initialised (its regional center "
                           "exists)", "already_initialised") from None
        audit(self.catalog, "server init", source, "server.init", center, "ok", center,
              {"administrators": [name for name, _role in ADMINS]})
        for name, role in ADMINS:
            audit(self.catalog, "server init", source, "user.create", name, "ok", center,
                  {"roles": [role]})
        return passwords

    # institutions

    def institutions(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require(R.INSTITUTIONS_READ)
        query = select(Institution).order_by(Institution.id)
        if not principal.center:
            query = query.where(Institution.id == principal.institution_id)
        with transaction(self.catalog) as session:
            return [_institution_view(row) for row in session.scalars(query)]

    def create_institution(self, principal: Principal, name: str, title: str,
                           now: datetime) -> dict[str, Any]:
        """A member hospital; only the regional center's system administrator adds one."""
        principal.require(R.INSTITUTIONS_WRITE)
        if not principal.center:
            raise AccessDenied("only the regional center adds institutions")
        valid_name(name, "institution")
        if not _TITLE.fullmatch(title) or _surrogates(title):
            raise UsageError("an institution's title is printable text (no control "
                             "characters)")
        try:
            with transaction(self.catalog) as session:
                row = Institution(name=name, title=title or name, kind=HOSPITAL,
                                  created_at=now)
                session.add(row)
                session.flush()
                view = _institution_view(row)
        except IntegrityError:
            self._audit(principal, "institution.create", name, "failed", name,
                        {"reason": "exists"})
            raise Conflict(f"institution {name!r} exists already") from None
        self._audit(principal, "institution.create", name, "ok", name, {"title": title})
        return view

    # users

    def users(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require(R.USERS_READ)
        query = select(User, Institution).join(Institution).order_by(User.id)
        if not principal.center:
            query = query.where(User.institution_id == principal.institution_id)
        with transaction(self.catalog) as session:
            return [user_view(user, inst.name) for user, inst in session.execute(query)]

    def user(self, principal: Principal, name: str) -> dict[str, Any]:
        principal.require(R.USERS_READ)
        with transaction(self.catalog) as session:
            user, institution = _user(session, principal, name)
            return user_view(user, institution.name)

    def check_create(self, principal: Principal, name: str, institution: str,
                     roles: list[str]) -> tuple[list[str], int]:
        """What create_user checks before it makes anything: the roles checked and the
        institution's id (a four-eyes request is made only for a creation that could
        happen)."""
        principal.require(R.USERS_WRITE)
        valid_name(name, "user")
        checked = self._checked_roles(principal, "user.create", name, institution, roles)
        assert checked is not None
        with transaction(self.catalog) as session:
            inst = institution_row(session, institution)
            principal.require_scope(inst.id, f"institution {institution}")
            if session.scalars(select(User.id).where(User.name == name)).first():
                raise Conflict(f"user {name!r} exists already")
            return checked, inst.id

    def create_user(self, principal: Principal, name: str, institution: str,
                    roles: list[str], now: datetime,
                    extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
        """The new user and its one-time password (shown once, changed at first login).
        `extra` joins the audit record's detail (the approval that allowed it)."""
        principal.require(R.USERS_WRITE)
        valid_name(name, "user")
        checked = self._checked_roles(principal, "user.create", name, institution, roles)
        assert checked is not None
        password = one_time_password()
        try:
            with transaction(self.catalog) as session:
                inst = institution_row(session, institution)
                principal.require_scope(inst.id, f"institution {institution}")
                user = _new_user(name, inst.id, checked, password, now)
                session.add(user)
                session.flush()
                view = user_view(user, inst.name)
        except IntegrityError:
            raise Conflict(f"user {name!r} exists already") from None
        self._audit(principal, "user.create", name, "ok", institution,
                    {"roles": checked, **(extra or {})})
        return view, password

    def check_update(self, principal: Principal, name: str, *,
                     roles: list[str] | None = None, disabled: bool | None = None,
                     reset_password: bool = False, reset_totp: bool = False
                     ) -> list[str] | None:
        """What update_user refuses before it looks at the account: the roles checked.

        Resetting one's own password or second factor is refused: a stolen session cookie
        would otherwise buy a new password and factor without the current ones, and keep
        the account."""
        principal.require(R.USERS_WRITE)
        yourself = name == principal.name and principal.kind == "session"
        if yourself and (disabled or (roles is not None and R.SECADMIN not in roles)):
            raise Conflict("you cannot disable yourself or give up your own security "
                           "administrator role", "self_lockout")
        if yourself and (reset_password or reset_totp):
            raise Conflict("you cannot reset your own password or second factor: change "
                           "your password with POST /api/me/password; another security "
                           "administrator resets a lost factor", "self_reset")
        return self._checked_roles(principal, "user.update", name, None, roles)

    def update_user(self, principal: Principal, name: str, now: datetime, *,
                    roles: list[str] | None = None, disabled: bool | None = None,
                    reset_password: bool = False, reset_totp: bool = False,
                    expect_roles: list[str] | None = None,
                    extra: dict[str, Any] | None = None
                    ) -> tuple[dict[str, Any], str | None]:
        """Change roles, disable or enable, reset the password (a new one-time one,
        returned) or the second factor. Sessions of the user end with any change (but the
        one making a change to itself).

        `expect_roles`: the roles the caller judged the change by (server/approvals.py:
        whether it needs four eyes); Conflict `user_changed` if the account holds others
        by now. `extra` joins the audit record's detail."""
        checked = self.check_update(principal, name, roles=roles, disabled=disabled,
                                    reset_password=reset_password, reset_totp=reset_totp)
        changes: dict[str, Any] = {}
        password = None
        with transaction(self.catalog) as session:
            user, institution = _user(session, principal, name)
            if expect_roles is not None and sorted(user.roles) != sorted(expect_roles):
                raise Conflict(f"user {name}'s roles changed meanwhile; try again",
                               "user_changed")
            if checked is not None and checked != list(user.roles):
                changes["roles"] = {"from": list(user.roles), "to": checked}
                user.roles = checked
            if disabled is not None and disabled != user.disabled:
                user.disabled = disabled
                changes["disabled"] = disabled
            if reset_password:
                password = one_time_password()
                user.password_hash = hash_password(password)
                user.must_change_password = True
                user.failed_logins = 0
                user.locked_until = None
                changes["password_reset"] = True
            if reset_totp:
                user.totp_secret = None
                user.totp_confirmed = False
                user.totp_last_step = None
                changes["second_factor_reset"] = True
            if changes:
                user.updated_at = now
                for row in session.scalars(select(UserSession).where(
                        UserSession.user_id == user.id,
                        UserSession.id != (principal.session_id or ""))):
                    session.delete(row)
            view = user_view(user, institution.name)
            institution_name = institution.name
        if changes:
            action = "user.disable" if changes.get("disabled") is True else "user.update"
            self._audit(principal, action, name, "ok", institution_name,
                        {**changes, **(extra or {})})
        return view, password

    # API tokens

    def tokens(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require(R.TOKENS_MANAGE)
        query = select(ApiToken, Institution).join(Institution).order_by(ApiToken.id)
        if not principal.center:
            query = query.where(ApiToken.institution_id == principal.institution_id)
        with transaction(self.catalog) as session:
            return [_token_view(token, inst.name) for token, inst in session.execute(query)]

    def create_token(self, principal: Principal, name: str, role: str, institution: str,
                     days: int | None, now: datetime) -> tuple[dict[str, Any], str]:
        """A token for automation with one role in one institution; the token itself is
        returned once and only its hash kept."""
        principal.require(R.TOKENS_MANAGE)
        valid_name(name, "token")
        if role not in R.TOKEN_ROLES:
            raise UsageError(f"a token's role is one of {', '.join(R.TOKEN_ROLES)} "
                             "(administrators sign in with a second factor)")
        secret = "mdk_" + secrets.token_urlsafe(32)
        try:
            with transaction(self.catalog) as session:
                inst = institution_row(session, institution)
                principal.require_scope(inst.id, f"institution {institution}")
                row = ApiToken(name=name, token_hash=digest(secret), role=role,
                               institution_id=inst.id, created_by=principal.name,
                               created_at=now, revoked_at=None, last_used=None,
                               expires_at=now + timedelta(days=days) if days else None)
                session.add(row)
                session.flush()
                view = _token_view(row, inst.name)
        except IntegrityError:
            raise Conflict(f"token {name!r} exists already") from None
        self._audit(principal, "token.create", name, "ok", institution,
                    {"role": role, "expires_at": view["expires_at"]})
        return view, secret

    def revoke_token(self, principal: Principal, name: str, now: datetime) -> dict[str, Any]:
        principal.require(R.TOKENS_MANAGE)
        with transaction(self.catalog) as session:
            row = None if not NAME.fullmatch(name) else session.scalars(
                select(ApiToken).where(ApiToken.name == name)).first()
            if row is None:
                raise ObjectNotFound(f"no token {name!r}")
            principal.require_scope(row.institution_id, f"token {name}")
            if row.revoked_at is None:
                row.revoked_at = now
            inst = session.get(Institution, row.institution_id)
            assert inst is not None
            view = _token_view(row, inst.name)
        self._audit(principal, "token.revoke", name, "ok", view["institution"])
        return view

    def _checked_roles(self, principal: Principal, action: str, name: str,
                       institution: str | None, roles: list[str] | None) -> list[str] | None:
        """The roles checked (R.checked_roles); a refusal is audited before it is raised."""
        if roles is None:
            return None
        try:
            return R.checked_roles(roles)
        except (SeparationOfDuties, UsageError) as exc:
            self._audit(principal, action, name, "denied", institution,
                        {"roles": sorted(set(roles)), "reason": exc.code})
            raise

    def _audit(self, principal: Principal, action: str, target: str, result: str,
               institution: str | None, detail: dict[str, Any] | None = None) -> None:
        audit(self.catalog, principal.actor, principal.address, action, target, result,
              institution, detail)


def _token_view(row: ApiToken, institution: str) -> dict[str, Any]:
    def fmt(value: datetime | None) -> str | None:
        value = aware(value)
        return clock.format_time(value) if value else None

    return {"name": row.name, "role": row.role, "institution": institution,
            "created_by": row.created_by, "created_at": fmt(row.created_at),
            "expires_at": fmt(row.expires_at), "revoked_at": fmt(row.revoked_at),
            "last_used": fmt(row.last_used)}
