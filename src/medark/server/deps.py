"""Who makes a request, as FastAPI dependencies every route module shares.

The server's state (catalog, sign-in, accounts) is one `ApiContext` on `app.state`, so a
route module needs no closure over create_app: it declares `who: Who` and reads the
context with `context(request)`.

No `from __future__ import annotations`: FastAPI reads these annotations.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from medark.catalog.store import Catalog
from medark.errors import AccessDenied, AuthenticationFailed
from medark.server.accounts import Accounts, Principal
from medark.server.agents import CREDENTIAL_PREFIX as AGENT_CREDENTIAL
from medark.server.auth import Auth, AuthPolicy
from medark.server.ratelimit import RateLimiter
from medark.server.totpkey import SecretBox
from medark.util import clock

SESSION_COOKIE = "medark_session"
CSRF_COOKIE = "medark_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ServerSettings:
    catalog: Catalog
    policy: AuthPolicy
    tls: bool
    box: SecretBox
    """The server key the TOTP secrets are encrypted under."""
    login_rate: int = 10
    """Login attempts per client address per minute."""
    job_stale_after: float = 600.0
    """Seconds a running job's agent may stay silent before the job is failed
    (server/jobs.py, the scheduler's task jobs.stale)."""
    agent_offline_after: float | None = None
    """Seconds without a heartbeat before an agent is marked offline (None: 3 × the
    agent's heartbeat interval; server/agents.py)."""
    keep_alive: float = 15.0
    """--keep-alive: seconds of silence after which a live stream (job events, the
    console's /api/events) sends a comment, so that proxies and load balancers do not
    close it as idle."""
    single_security_admin: bool = False
    """--single-security-admin: changes to administrator accounts take effect without a
    second security administrator's approval, each recorded `approval.waived`
    (server/approvals.py)."""


@dataclass(frozen=True)
class ApiContext:
    """What every route works with; built once per server process."""

    settings: ServerSettings
    auth: Auth
    accounts: Accounts
    limiter: RateLimiter

    @property
    def catalog(self) -> Catalog:
        return self.settings.catalog

    @classmethod
    def build(cls, settings: ServerSettings) -> "ApiContext":
        return cls(settings, Auth(settings.catalog, settings.policy, settings.box),
                   Accounts(settings.catalog), RateLimiter(settings.login_rate))


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.medark
    return ctx


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def principal(request: Request, *, during_password_change: bool = False,
              during_totp_enrolment: bool = False) -> Principal:
    """The caller, from an API token (`Authorization: Bearer`) or the session cookie
    (with the CSRF header for an unsafe method); refused while a one-time password or an
    administrator's second factor is still outstanding, except for what settles it."""
    auth = context(request).auth
    where = address(request)
    now = clock.now()
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        if bearer[7:].strip().startswith(AGENT_CREDENTIAL):
            raise AccessDenied("an agent's credential reaches only /api/agent/*",
                               "agent_only")
        return auth.token(bearer[7:].strip(), where, now)
    if "authorization" in request.headers:
        # credentials the server cannot read (even an empty header) are refused, not
        # passed over for a session cookie sent beside them
        raise AuthenticationFailed("the Authorization header is `Bearer <API token>`",
                                   "invalid_token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise AuthenticationFailed("sign in first (POST /api/login) or give an API "
                                   "token", "not_authenticated")
    who = auth.session(cookie, where, now, request.headers.get(CSRF_HEADER),
                       check_csrf=request.method not in SAFE_METHODS)
    if who.must_change_password and not during_password_change:
        raise AccessDenied("change the one-time password first (POST "
                           "/api/me/password)", "password_change_required")
    if who.totp_enrolment_required and not (during_totp_enrolment
                                            or during_password_change):
        raise AccessDenied("administrators need a second factor: enrol it first "
                           "(POST /api/me/totp, then /api/me/totp/confirm)",
                           "totp_enrolment_required")
    return who


def signed_in(request: Request) -> Principal:
    return principal(request)


def enrolling(request: Request) -> Principal:
    return principal(request, during_totp_enrolment=True)


def changing_password(request: Request) -> Principal:
    return principal(request, during_password_change=True)


def user_session(who: Principal) -> Principal:
    if who.kind != "session":
        raise AccessDenied("an API token cannot do this; sign in as the user",
                           "session_required")
    return who


Who = Annotated[Principal, Depends(signed_in)]
"""A signed-in user or an API token, with nothing outstanding."""
Enrolling = Annotated[Principal, Depends(enrolling)]
ChangingPassword = Annotated[Principal, Depends(changing_password)]
async def _context(request: Request) -> ApiContext:
    """context() as a dependency: a coroutine, so FastAPI calls it on the event loop
    rather than in a worker thread (a thread hop per request cost more than the call)."""
    return context(request)


Ctx = Annotated[ApiContext, Depends(_context)]
