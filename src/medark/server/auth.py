"""Signing in: passwords, lockout, TOTP, sessions with an idle timeout, API tokens.

A login fails with one message whether the user is unknown, disabled or the password is
wrong (and takes as long), so the answer does not tell which names exist. N failures in
a row lock the account for M minutes; a wrong TOTP code counts as a failure. No
password, token or TOTP secret is ever put in a message, a log line or the audit trail;
TOTP secrets are stored encrypted (server/totpkey.py).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from medark.catalog.store import Catalog
from medark.errors import AccessDenied, AuthenticationFailed, Conflict, UsageError
from medark.server import roles as R
from medark.server.accounts import NAME, Principal
from medark.server.db import audit, aware, digest, transaction
from medark.server.passwords import PasswordPolicy, hash_password, needs_rehash, verify
from medark.server.tables import ApiToken, Institution, User, UserSession
from medark.server.totpkey import SecretBox

TOTP_STEP = 30
TOUCH_EVERY = timedelta(seconds=5)
"""A session's last use is written at most this often (or a tenth of the idle timeout):
the idle timeout is that much less exact, and a read costs no database write."""
MAX_SESSION = timedelta(hours=12)
"""A session ends after this long even when in use: a stolen cookie does not live on."""


@dataclass(frozen=True)
class AuthPolicy:
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    lockout_after: int = 5
    lockout_for: timedelta = timedelta(minutes=15)
    idle_timeout: timedelta = timedelta(minutes=15)
    issuer: str = "Medark"


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session_token: str
    csrf_token: str


def _failed(message: str = "wrong user name or password", code: str = "login_failed"
            ) -> AuthenticationFailed:
    return AuthenticationFailed(message, code)


def _principal(user: User, institution: Institution, address: str,
               session_id: str | None) -> Principal:
    return Principal(name=user.name, kind="session", roles=tuple(user.roles),
                     institution=institution.name, institution_id=institution.id,
                     center=institution.kind == "center", address=address,
                     user_id=user.id, session_id=session_id,
                     must_change_password=user.must_change_password,
                     totp_enrolment_required=(R.needs_totp(user.roles)
                                              and not user.totp_confirmed))


def _totp_step(secret: str, code: str, last: int | None, now: datetime) -> int | None:
    """The time step `code` is valid for (this one or a neighbour, for clock skew),
    unless that step was used already; None when it does not match."""
    current = int(now.timestamp()) // TOTP_STEP
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    for step in (current, current - 1, current + 1):
        if (last is None or step > last) and hmac.compare_digest(
                totp.at(step * TOTP_STEP), code.strip()):
            return step
    return None


class Auth:
    def __init__(self, catalog: Catalog, policy: AuthPolicy, box: SecretBox) -> None:
        self.catalog = catalog
        self.policy = policy
        self.box = box
        """Encrypts the TOTP secrets in the catalog (server/totpkey.py)."""

    def login(self, name: str, password: str, totp: str | None, address: str,
              now: datetime) -> SignedIn:
        shown = name[:64] if name[:64].isprintable() else ascii(name[:64])[1:-1][:64]
        result, reason, institution = "failed", "", None
        try:
            with transaction(self.catalog) as session:
                user = None if not NAME.fullmatch(name) else session.scalars(
                    select(User).where(User.name == name).with_for_update()).first()
                if user is None or user.disabled:
                    verify(None, password)
                    reason = "unknown user" if user is None else "disabled"
                    raise _failed()
                inst = session.get(Institution, user.institution_id)
                assert inst is not None
                institution = inst.name
                locked = aware(user.locked_until)
                if locked is not None and locked > now:
                    result, reason = "denied", "locked"
                    raise _failed("the account is locked after too many failed logins; "
                                  "try again later", "account_locked")
                if locked is not None:  # the window passed: a fresh count
                    user.locked_until, user.failed_logins = None, 0
                error = self._check(user, password, totp, now)
                if error is not None:
                    reason = {"login_failed": "wrong password"}.get(error.code, error.code)
                else:
                    if needs_rehash(user.password_hash):
                        user.password_hash = hash_password(password)
                    signed = self._new_session(session, user, inst, address, now)
                    result = "ok"
            if error is not None:
                raise error
        except AuthenticationFailed:
            audit(self.catalog, shown, address, "login", shown, result, institution,
                  {"reason": reason})
            if reason in ("wrong password", "totp_invalid"):
                self._audit_lockout(name, address, institution, now)
            raise
        audit(self.catalog, user.name, address, "login", user.name, "ok", institution)
        return signed

    def _check(self, user: User, password: str, totp: str | None, now: datetime
               ) -> AuthenticationFailed | None:
        """Why the password and code do not sign `user` in (a failure counted towards
        the lockout), or None when they do (the failures forgotten, the code used up)."""
        if not verify(user.password_hash, password):
            self._count_failure(user, now)
            return _failed()
        if user.totp_confirmed and user.totp_secret:
            if not totp:
                return _failed("this account needs its TOTP code (field totp)",
                               "totp_required")
            secret = self.box.open(user.id, user.totp_secret)
            step = _totp_step(secret, totp, user.totp_last_step, now)
            if step is None:
                self._count_failure(user, now)
                return _failed("wrong or already used TOTP code", "totp_invalid")
            user.totp_last_step = step
        user.failed_logins, user.locked_until = 0, None
        return None

    def _count_failure(self, user: User, now: datetime) -> None:
        user.failed_logins += 1
        if user.failed_logins >= self.policy.lockout_after:
            user.locked_until = now + self.policy.lockout_for
            user.failed_logins = 0

    def _audit_lockout(self, name: str, address: str, institution: str | None,
                       now: datetime) -> None:
        """Audit the lockout a failure just caused (the row says so after its commit)."""
        with transaction(self.catalog) as session:
            user = None if not NAME.fullmatch(name) else session.scalars(
                select(User).where(User.name == name)).first()
            locked = aware(user.locked_until) if user else None
            just_locked = (locked is not None and
                           locked >= now + self.policy.lockout_for - timedelta(seconds=1))
        if just_locked:
            audit(self.catalog, "server", address, "lockout", name, "ok", institution,
                  {"failures": self.policy.lockout_after,
                   "seconds": int(self.policy.lockout_for.total_seconds())})

    def _new_session(self, session: Session, user: User, inst: Institution, address: str,
                     now: datetime) -> SignedIn:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        row = UserSession(id=digest(token), user_id=user.id, csrf_hash=digest(csrf),
                          address=address[:100], created_at=now, last_seen=now)
        session.add(row)
        return SignedIn(_principal(user, inst, address, row.id), token, csrf)

    def session(self, token: str, address: str, now: datetime,
                csrf: str | None = None, check_csrf: bool = False) -> Principal:
        """The principal of a session cookie, its idle time reset. AuthenticationFailed
        (session_expired) after the idle timeout or the longest session; AccessDenied
        (csrf_failed) when `check_csrf` and the header does not match."""
        with transaction(self.catalog) as session:
            # one round trip for the session, its user and the user's institution
            found = session.execute(
                select(UserSession, User, Institution)
                .outerjoin(User, User.id == UserSession.user_id)
                .outerjoin(Institution, Institution.id == User.institution_id)
                .where(UserSession.id == digest(token))).first()
            if found is None:
                raise _failed("not signed in, or the session ended", "not_authenticated")
            row, user, inst = found
            last, created = aware(row.last_seen), aware(row.created_at)
            assert last is not None and created is not None
            if (user is None or user.disabled or now - last > self.policy.idle_timeout
                    or now - created > MAX_SESSION):
                session.delete(row)
                expired = user is not None
            else:
                expired = False
                if check_csrf and not (csrf and hmac.compare_digest(digest(csrf),
                                                                    row.csrf_hash)):
                    raise AccessDenied("missing or wrong CSRF token (header X-CSRF-Token)",
                                       "csrf_failed")
                if now - last >= min(TOUCH_EVERY, self.policy.idle_timeout / 10):
                    row.last_seen = now  # not on every request: a write costs a sync
                assert inst is not None
                return _principal(user, inst, address, row.id)
        if expired:
            audit(self.catalog, user.name if user else "-", address, "session.expire",
                  user.name if user else None, "ok")
        raise _failed("the session ended (idle too long); sign in again", "session_expired")

    def token(self, token: str, address: str, now: datetime) -> Principal:
        with transaction(self.catalog) as session:
            found = session.execute(select(ApiToken, Institution).join(
                Institution, Institution.id == ApiToken.institution_id).where(
                ApiToken.token_hash == digest(token))).first()
            row, inst = found if found is not None else (None, None)
            expires = aware(row.expires_at) if row else None
            if row is None or row.revoked_at is not None or (expires and expires <= now):
                raise _failed("unknown, revoked or expired API token", "invalid_token")
            used = aware(row.last_used)
            if used is None or now - used >= TOUCH_EVERY:
                # as a session's: a write on every request cost a sync, and a busy
                # token's concurrent requests queued on its row's lock
                row.last_used = now
            assert inst is not None
            return Principal(name=row.name, kind="token", roles=(row.role,),
                             institution=inst.name, institution_id=inst.id,
                             center=inst.kind == "center", address=address)

    def logout(self, principal: Principal) -> None:
        with transaction(self.catalog) as session:
            row = session.get(UserSession, principal.session_id)
            if row is not None:
                session.delete(row)
        audit(self.catalog, principal.actor, principal.address, "logout", principal.name,
              "ok", principal.institution)

    def change_password(self, principal: Principal, current: str, new: str,
                        now: datetime) -> None:
        """The user's own password; every other session of the user ends."""
        try:
            self.policy.password.check(new, principal.name)
            if new == current:
                raise Conflict("the new password must differ from the current one",
                               "password_reused")
            with transaction(self.catalog) as session:
                user = session.get(User, principal.user_id)
                assert user is not None
                if not verify(user.password_hash, current):
                    raise _failed("the current password is wrong", "wrong_password")
                user.password_hash = hash_password(new)
                user.must_change_password = False
                user.updated_at = now
                for row in session.scalars(select(UserSession).where(
                        UserSession.user_id == user.id,
                        UserSession.id != principal.session_id)):
                    session.delete(row)
        except (AuthenticationFailed, Conflict, UsageError) as exc:
            audit(self.catalog, principal.actor, principal.address, "password.change",
                  principal.name, "failed", principal.institution, {"reason": exc.code})
            raise
        audit(self.catalog, principal.actor, principal.address, "password.change",
              principal.name, "ok", principal.institution)

    def enrol_totp(self, principal: Principal) -> str:
        """A new TOTP secret for the user, pending until confirmed with a code; its
        otpauth:// URI (shown once). Conflict when one is confirmed already (the security
        administrator resets it)."""
        secret = pyotp.random_base32()
        with transaction(self.catalog) as session:
            user = session.get(User, principal.user_id)
            assert user is not None
            if user.totp_confirmed:
                raise Conflict("a second factor is enrolled already; the security "
                               "administrator can reset it", "totp_already_enrolled")
            user.totp_secret = self.box.seal(user.id, secret)
            user.totp_last_step = None
        audit(self.catalog, principal.actor, principal.address, "totp.enrol",
              principal.name, "ok", principal.institution)
        return pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(
            name=principal.name, issuer_name=self.policy.issuer)

    def confirm_totp(self, principal: Principal, code: str, now: datetime) -> None:
        with transaction(self.catalog) as session:
            user = session.get(User, principal.user_id)
            assert user is not None
            if user.totp_confirmed:
                raise Conflict("the second factor is confirmed already",
                               "totp_already_enrolled")
            if user.totp_secret is None:
                raise Conflict("enrol first (POST /api/me/totp)", "totp_not_enrolled")
            step = _totp_step(self.box.open(user.id, user.totp_secret), code,
                              user.totp_last_step, now)
            if step is not None:
                user.totp_confirmed = True
                user.totp_last_step = step
        result = "ok" if step is not None else "failed"
        audit(self.catalog, principal.actor, principal.address, "totp.confirm",
              principal.name, result, principal.institution)
        if step is None:
            raise AuthenticationFailed("wrong TOTP code", "totp_invalid")
