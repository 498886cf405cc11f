"""The server's outermost layer of its own: the security headers on every answer, and a
bug (an exception no handler took) answered as a 500 with the stable error body
instead of a traceback.

A plain ASGI middleware, not Starlette's `@app.middleware("http")`: that one runs each
request's app in a task of its own and copies the response through a memory stream,
which cost about a tenth of the server's CPU per list request (bench/server_bench.py,
profiled with py-spy).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("medark.server")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
          problems: list[dict[str, str]] | None = None) -> JSONResponse:
    """The error body; `problems` (a 422's fields and what is wrong with each) only when
    there are some."""
    body: dict[str, Any] = {"code": code, "message": message}
    if problems:
        body["problems"] = problems
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class SecurityHeaders:
    """`Cache-Control: no-store` unless the route set its own, `nosniff` and
    `X-Frame-Options: DENY` on every HTTP answer; an unhandled exception before the
    answer started becomes 500 `internal` (its kind logged, not its text: it may hold
    input)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.setdefault("Cache-Control", "no-store")
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            log.error("internal error: %s", type(exc).__name__)
            if started:  # nothing left to answer with: the connection ends
                raise
            answer = error(500, "internal", "internal error (the server log names its "
                                            "kind)")
            await answer(scope, receive, sending)
