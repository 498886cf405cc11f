"""The FastAPI application: the routes of every area (routes/), the security headers,
the self-hosted API documents, and the mapping of errors to stable codes.

Every route but /api/health, /api/login and the OpenAPI documents needs a session cookie
or an API token (`Authorization: Bearer mdk_…`). With a cookie, an unsafe method also
needs the session's CSRF token in the X-CSRF-Token header (the double-submit token the
login returned and set as the readable medark_csrf cookie). Errors are always
{"error": {"code": …, "message": …}} with a stable code (docs/server.md).

No `from __future__ import annotations` here: FastAPI reads the routes' annotations.
"""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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
from medark.server import console
from medark.server.asgi import SecurityHeaders, error
from medark.server.deps import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    ApiContext,
    ServerSettings,
)
from medark.server.jobs import scheduled_tasks
from medark.server.routes import (
    agents,
    alerts,
    approvals,
    audit,
    compliance,
    configs,
    dashboard,
    dicom,
    grants,
    institutions,
    jobs,
    recovery,
    remote_ops,
    reports,
    session,
    snapshots,
    tokens,
    users,
)
from medark.server.routes.session import RateLimited
from medark.server.scheduler import ServerScheduler
from medark.server.schemas import ERRORS, Status

__all__ = ["ServerSettings", "create_app"]

STATUS = {"account_locked": 423, "wrong_password": 403, "rate_limited": 429}
"""HTTP statuses of the codes whose class does not decide it."""
log = logging.getLogger("medark.server")
SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"
"""Swagger UI's files, served by the server itself: a hospital intranet has no CDN."""
DOCS_STATIC = "/api/docs/static"
MAX_PROBLEMS = 50
"""The most problems a 422 lists (its message names the first five)."""
ROUTERS = (session.router, users.router, institutions.router, tokens.router,
           configs.router, jobs.router,
           grants.router, snapshots.router, dicom.router,
           agents.router,
           alerts.router, compliance.router, reports.router, remote_ops.router,
           recovery.router,
           approvals.router, audit.router, dashboard.router)


def _status(exc: MedarkError) -> int:
    if exc.code in STATUS:
        return STATUS[exc.code]
    for kind, status in ((AuthenticationFailed, 401), (AccessDenied, 403),
                         (ObjectNotFound, 404), (SeparationOfDuties, 409), (Conflict, 409),
                         (UsageError, 422), (CatalogError, 503)):
        if isinstance(exc, kind):
            return status
    return 500


def _scheduler(settings: ServerSettings
               ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The server scheduler's thread (server/scheduler.py) for as long as the server
    runs: it becomes leader or waits to, and the leader runs the periodic tasks."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler = ServerScheduler(settings.catalog,
                                    scheduled_tasks(settings.job_stale_after))
        scheduler.start()
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.stop)

    return lifespan


def create_app(settings: ServerSettings) -> FastAPI:
    app = FastAPI(title="Medark management API", version="1",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=_scheduler(settings),
                  responses=ERRORS,
                  description="Medark's management server (docs/server.md): institutions "
                              "and their configurations, jobs, snapshots, restores, DR, "
                              "agents, compliance, reports, alerts, users with separation "
                              "of duties, cross-institution grants and the audit trail.")
    app.state.medark = ApiContext.build(settings)
    _handlers(app)
    console.mount(app)  # the web console at /, inside the security headers
    app.add_middleware(SecurityHeaders)  # a bug answered there, no traceback logged

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

    @app.get("/api/health", tags=["server"], response_model=Status)
    def health() -> dict[str, str]:
        """Whether the server answers; no data, no login."""
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    _declare_security(app)
    return app


PUBLIC = frozenset({"/api/health", "/api/login", "/api/agent/enroll",
                    "/api/openapi.json", "/api/docs"})
"""The paths that need no credential: everything else answers 401 without one."""
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "mdk_…",
               "description": "An API token (`Authorization: Bearer mdk_…`), or on "
                              "/api/agent/* an enrolled agent's credential."},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                "description": "The session cookie POST /api/login sets (the browser "
                               "sends it: sign in from this page's origin)."},
    "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER,
             "description": "With the session cookie, an unsafe method (POST, PUT, "
                            "PATCH, DELETE) also needs the login's csrf_token here."},
}


def _security(path: str, method: str) -> list[dict[str, list[str]]]:
    """Who may call: a bearer token, or the session cookie (with the CSRF header for an
    unsafe method); an agent's routes take only its bearer credential."""
    if path.startswith("/api/agent/"):
        return [{"bearer": []}]
    session: dict[str, list[str]] = {"session": []}
    if method.upper() not in SAFE_METHODS:
        session["csrf"] = []
    return [{"bearer": []}, session]


def _declare_security(app: FastAPI) -> None:
    """The OpenAPI document declares how to authenticate, for each protected operation,
    so Swagger UI's "Authorize" sends the token."""
    made = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = made()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if path not in PUBLIC and isinstance(operation, dict):
                    operation["security"] = _security(path, method)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods of every route of the request's path: Starlette's own 405 names only
    the first route's, and FastAPI makes one route per method. The routers' own routes:
    FastAPI 0.165 wraps an included router in one opaque route."""
    methods: set[str] = set()
    for route in [*app.routes, *(r for router in ROUTERS for r in router.routes)]:
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
        problems = ([{"field": field, "message": text} for field, text in
                     exc.field_problems()] if status == 422 else None)
        return error(status, code if status != 500 else "internal", message, headers,
                     problems)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
        """Names the fields and what is wrong; never echoes a value (it may be a
        password)."""
        assert isinstance(exc, RequestValidationError)
        problems = [{"field": ".".join(str(part) for part in item.get("loc", ())),
                     "message": str(item.get("msg", "invalid"))}
                    for item in exc.errors()[:MAX_PROBLEMS]]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return error(422, "invalid_request", message or "invalid request",
                     problems=problems)

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
