"""The FastAPI application: routes, who may call them, and the error mapping.

Every route but /api/health, /api/login and the OpenAPI documents needs a session cookie
or an API token (`Authorization: Bearer mdk_…`). With a cookie, an unsafe method also
needs the session's CSRF token in the X-CSRF-Token header (the double-submit token the
login returned and set as the readable medark_csrf cookie). Errors are always
{"error": {"code": …, "message": …}} with a stable code (docs/server.md).

No `from __future__ import annotations` here: FastAPI reads the routes' annotations,
whose dependencies are local to create_app.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from medark.catalog.store import Catalog
from medark.errors import (
    AccessDenied,
    AuthenticationFailed,
    CatalogError,
    Conflict,
    MedarkError,
    ObjectNotFound,
    SeparationOfDuties,
    UsageError,
)
from medark.server import roles as R
from medark.server.accounts import TITLE_CHARACTERS, Accounts, Principal
from medark.server.auth import Auth, AuthPolicy
from medark.server.ratelimit import RateLimiter
from medark.server.totpkey import SecretBox
from medark.util import clock

SESSION_COOKIE = "medark_session"
CSRF_COOKIE = "medark_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STATUS = {"account_locked": 423, "wrong_password": 403, "rate_limited": 429}
"""HTTP statuses of the codes whose class does not decide it."""
log = logging.getLogger("medark.server")
SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"
"""Swagger UI's files, served by the server itself: a hospital intranet has no CDN."""
DOCS_STATIC = "/api/docs/static"


@dataclass(frozen=True)
class ServerSettings:
    catalog: Catalog
    policy: AuthPolicy
    tls: bool
    box: SecretBox
    """The server key the TOTP secrets are encrypted under."""
    login_rate: int = 10
    """Login attempts per client address per minute."""


class RateLimited(MedarkError):
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many login attempts from this address; retry in "
                         f"{retry_after:.0f} s")
        self.retry_after = retry_after


def _status(exc: MedarkError) -> int:
    if exc.code in STATUS:
        return STATUS[exc.code]
    for kind, status in ((AuthenticationFailed, 401), (AccessDenied, 403),
                         (ObjectNotFound, 404), (SeparationOfDuties, 409), (Conflict, 409),
                         (UsageError, 422), (CatalogError, 503)):
        if isinstance(exc, kind):
            return status
    return 500


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None
          ) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


class Strict(BaseModel):
    """A request body: no unknown field, no coercion (0 is not false, 1 is not "1")."""

    model_config = ConfigDict(extra="forbid", strict=True)


NAMED: dict[str, Any] = {"pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}
"""A name's form in the OpenAPI document; the code checks it (accounts.NAME) with a
message that says what a name may hold."""


RoleName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(R.ROLES)})]
"""A role, its values in the OpenAPI document; the code checks it (roles.checked_roles),
so that a refusal is audited."""


def _whole(value: Any) -> Any:
    """JSON Schema's integer includes 7.0; strict pydantic would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Days = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=3650),
                 WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 3650})]
"""(pydantic would write the bounds as `ge`/`le`, which JSON Schema does not know.)"""


class LoginBody(Strict):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)


class PasswordBody(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=256)  # the policy's longest


class CodeBody(Strict):
    code: str = Field(min_length=1, max_length=16)


class NewUser(Strict):
    name: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    institution: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    roles: list[RoleName] = Field(min_length=1, max_length=5)


class UserChange(Strict):
    roles: list[RoleName] | None = Field(default=None, min_length=1, max_length=5)
    disabled: bool | None = None
    reset_password: bool = False
    reset_totp: bool = False


class NewInstitution(Strict):
    name: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    title: str = Field(default="", max_length=200,
                       json_schema_extra={"pattern": f"^{TITLE_CHARACTERS}*$"})


class NewToken(Strict):
    name: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    role: str = Field(min_length=1, max_length=20,
                      json_schema_extra={"enum": list(R.TOKEN_ROLES)})
    institution: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    days: Days | None = None


class Reply(BaseModel):
    """A response body: its fields are exactly those declared (schemathesis checks)."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Reply):
    code: str
    message: str


class ErrorBody(Reply):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "bad request"), (401, "not signed in, or the sign-in failed"),
        (403, "not allowed (role, scope, CSRF, pending password change or enrolment)"),
        (404, "no such object"), (405, "method not allowed"),
        (409, "conflict (separation of duties, exists already, ...)"),
        (422, "invalid request (the fields named, never their values)"),
        (423, "account locked"), (429, "too many login attempts"),
        (503, "the catalog cannot be reached or its key is wrong"))}
"""Every error response, on every route: `{"error": {"code", "message"}}`."""


class Status(Reply):
    status: str


class MeView(Reply):
    name: str
    kind: str
    institution: str
    regional_center: bool
    roles: list[str]
    password_change_required: bool
    totp_enrolment_required: bool


class MeReply(Reply):
    user: MeView


class LoginReply(Reply):
    user: MeView
    csrf_token: str


class TotpReply(Reply):
    otpauth_uri: str


class UserView(Reply):
    name: str
    institution: str
    roles: list[str]
    disabled: bool
    must_change_password: bool
    totp_enrolled: bool
    locked_until: str | None
    created_at: str


class UserReply(Reply):
    user: UserView


class UserCreated(Reply):
    user: UserView
    one_time_password: str


class UserUpdated(Reply):
    user: UserView
    one_time_password: str | None = None
    """Only after a password reset."""


class UserList(Reply):
    users: list[UserView]


class InstitutionView(Reply):
    name: str
    title: str
    kind: str
    created_at: str


class InstitutionReply(Reply):
    institution: InstitutionView


class InstitutionList(Reply):
    institutions: list[InstitutionView]


class TokenView(Reply):
    name: str
    role: str
    institution: str
    created_by: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used: str | None


class TokenReply(Reply):
    token: TokenView


class TokenCreated(Reply):
    token: TokenView
    secret: str


class TokenList(Reply):
    tokens: list[TokenView]


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(settings: ServerSettings) -> FastAPI:
    app = FastAPI(title="Medark management API", version="1",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  responses=ERRORS,
                  description="Users, roles with separation of duties, institutions and "
                              "sign-in for Medark's management server (docs/server.md).")
    auth = Auth(settings.catalog, settings.policy, settings.box)
    accounts = Accounts(settings.catalog)
    limiter = RateLimiter(settings.login_rate)
    _handlers(app)

    @app.middleware("http")
    async def _headers(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            response = await call_next(request)
        except Exception as exc:  # a bug: answered here, so no traceback is logged
            log.error("internal error: %s", type(exc).__name__)  # (its text may hold input)
            response = error(500, "internal", "internal error (the server log names its "
                                              "kind)")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    def principal(request: Request, *, during_password_change: bool = False,
                  during_totp_enrolment: bool = False) -> Principal:
        address = _address(request)
        now = clock.now()
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return auth.token(bearer[7:].strip(), address, now)
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise AuthenticationFailed("sign in first (POST /api/login) or give an API "
                                       "token", "not_authenticated")
        who = auth.session(cookie, address, now, request.headers.get(CSRF_HEADER),
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

    app.mount(DOCS_STATIC, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the server's own files (FastAPI's self-hosting recipe); no
        validator badge, which would call validator.swagger.io."""
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json", title=f"{app.title} (docs/server.md)",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None})

    Who = Annotated[Principal, Depends(signed_in)]
    Enrolling = Annotated[Principal, Depends(enrolling)]
    ChangingPassword = Annotated[Principal, Depends(changing_password)]

    @app.get("/api/health", tags=["server"], response_model=Status)
    def health() -> dict[str, str]:
        """Whether the server answers; no data, no login."""
        return {"status": "ok"}

    @app.post("/api/login", tags=["session"], response_model=LoginReply)
    def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        address = _address(request)
        wait = limiter.retry_after(address)
        if wait:
            raise RateLimited(wait)
        signed = auth.login(body.username, body.password, body.totp, address, clock.now())
        response.set_cookie(SESSION_COOKIE, signed.session_token, path="/api",
                            httponly=True, samesite="strict", secure=settings.tls)
        response.set_cookie(CSRF_COOKIE, signed.csrf_token, path="/", samesite="strict",
                            secure=settings.tls)
        return {"user": _me(signed.principal), "csrf_token": signed.csrf_token}

    @app.post("/api/logout", tags=["session"], response_model=Status)
    def logout(who: ChangingPassword, response: Response) -> dict[str, str]:
        if who.kind == "session":
            auth.logout(who)
        response.delete_cookie(SESSION_COOKIE, path="/api")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return {"status": "signed out"}

    @app.get("/api/me", tags=["session"], response_model=MeReply)
    def me(who: Enrolling) -> dict[str, Any]:
        return {"user": _me(who)}

    @app.post("/api/me/password", tags=["session"], response_model=Status)
    def change_password(body: PasswordBody, who: ChangingPassword) -> dict[str, str]:
        auth.change_password(user_session(who), body.current_password, body.new_password,
                             clock.now())
        return {"status": "password changed"}

    @app.post("/api/me/totp", tags=["session"], response_model=TotpReply)
    def enrol_totp(who: Enrolling) -> dict[str, str]:
        """A new TOTP secret as an otpauth:// URI, shown this once; confirm with a code."""
        return {"otpauth_uri": auth.enrol_totp(user_session(who))}

    @app.post("/api/me/totp/confirm", tags=["session"], response_model=Status)
    def confirm_totp(body: CodeBody, who: Enrolling) -> dict[str, str]:
        auth.confirm_totp(user_session(who), body.code, clock.now())
        return {"status": "second factor enrolled"}

    @app.get("/api/users", tags=["users"], response_model=UserList)
    def users(who: Who) -> dict[str, Any]:
        return {"users": accounts.users(who)}

    @app.post("/api/users", tags=["users"], status_code=201, response_model=UserCreated)
    def create_user(body: NewUser, who: Who) -> dict[str, Any]:
        """The user and its one-time password (shown once; changed at first login)."""
        view, password = accounts.create_user(who, body.name, body.institution,
                                              body.roles, clock.now())
        return {"user": view, "one_time_password": password}

    @app.get("/api/users/{name}", tags=["users"], response_model=UserReply)
    def user(name: str, who: Who) -> dict[str, Any]:
        return {"user": accounts.user(who, name)}

    @app.patch("/api/users/{name}", tags=["users"],
               response_model=UserUpdated, response_model_exclude_unset=True)
    def update_user(name: str, body: UserChange, who: Who) -> dict[str, Any]:
        view, password = accounts.update_user(
            who, name, clock.now(), roles=body.roles, disabled=body.disabled,
            reset_password=body.reset_password, reset_totp=body.reset_totp)
        return {"user": view, **({"one_time_password": password} if password else {})}

    @app.delete("/api/users/{name}", tags=["users"], response_model=UserReply)
    def disable_user(name: str, who: Who) -> dict[str, Any]:
        """Disables the account: users are never deleted (the audit trail names them)."""
        view, _password = accounts.update_user(who, name, clock.now(), disabled=True)
        return {"user": view}

    @app.get("/api/institutions", tags=["institutions"], response_model=InstitutionList)
    def institutions(who: Who) -> dict[str, Any]:
        return {"institutions": accounts.institutions(who)}

    @app.post("/api/institutions", tags=["institutions"], status_code=201,
              response_model=InstitutionReply)
    def create_institution(body: NewInstitution, who: Who) -> dict[str, Any]:
        return {"institution": accounts.create_institution(who, body.name, body.title,
                                                           clock.now())}

    @app.get("/api/tokens", tags=["tokens"], response_model=TokenList)
    def tokens(who: Who) -> dict[str, Any]:
        return {"tokens": accounts.tokens(who)}

    @app.post("/api/tokens", tags=["tokens"], status_code=201, response_model=TokenCreated)
    def create_token(body: NewToken, who: Who) -> dict[str, Any]:
        """The token's record and the token itself (shown once; only its hash is kept)."""
        view, secret = accounts.create_token(who, body.name, body.role, body.institution,
                                             body.days, clock.now())
        return {"token": view, "secret": secret}

    @app.delete("/api/tokens/{name}", tags=["tokens"], response_model=TokenReply)
    def revoke_token(name: str, who: Who) -> dict[str, Any]:
        return {"token": accounts.revoke_token(who, name, clock.now())}

    return app


def _me(who: Principal) -> dict[str, Any]:
    return {"name": who.name, "kind": who.kind, "institution": who.institution,
            "regional_center": who.center, "roles": list(who.roles),
            "password_change_required": who.must_change_password,
            "totp_enrolment_required": who.totp_enrolment_required}


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods of every route of the request's path: Starlette's own 405 names only
    the first route's, and FastAPI makes one route per method."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(MedarkError)
    async def _medark(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MedarkError)
        status = _status(exc)
        code = "invalid_request" if exc.code == "usage" else exc.code
        if status >= 500:
            log.error("request failed: %s", type(exc).__name__)
        headers = ({"Retry-After": str(max(1, round(exc.retry_after)))}
                   if isinstance(exc, RateLimited) else None)
        message = str(exc).splitlines()[0] if str(exc) else code
        return error(status, code if status != 500 else "internal", message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
        """Names the fields and what is wrong; never echoes a value (it may be a
        password)."""
        assert isinstance(exc, RequestValidationError)
        problems = []
        for item in exc.errors()[:5]:
            where = ".".join(str(part) for part in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return error(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # RFC 9110: Allow lists every method of the path
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return error(exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"),
                     str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return error(500, "internal", "internal error (the server log names its kind)")
