"""The web console (web/, built into server/console/) served by `medark server` at /.

Everything outside /api is the console's: a GET or HEAD of a built file answers it
(the hashed files under /assets/ cached for a year as immutable; anything else must be
checked again), and any other path answers index.html (the console's router draws the
page), never cached, with the console's Content-Security-Policy. A missing file under
/assets/ is a 404: a page that asks for a chunk of an older build must not get HTML
as script. Other methods outside /api, and all of /api, go to the API as before (its
JSON 404 and 405).

The directory is `MEDARK_CONSOLE_DIR`, else the package's own `console/` (`make web`
builds it there); without its index.html every console path answers 503 with a short
page saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

CONSOLE_DIR = Path(__file__).parent / "console"
ENV = "MEDARK_CONSOLE_DIR"
ASSETS = "/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    # no inline style either: Vue and Element Plus set styles through the CSSOM
    # (element.style), which a CSP does not restrict; checked in a browser with every
    # component of the jobs page, its dialogs and popups (docs/console.md)
    "style-src 'self'",
    "img-src 'self' data:",  # the TOTP enrolment's QR code is a data: URL made in the page
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
"""The console's Content-Security-Policy: nothing from another origin, no eval, no
inline script or style."""
NOT_BUILT = ("Medark's web console is not built on this server.\n"
             "From a source tree: `make web` (npm in web/), then start `medark server` "
             "again.\nThe API answers at /api (its documents at /api/docs).\n")

def console_dir() -> Path:
    """Where the built console is: $MEDARK_CONSOLE_DIR, else the package's console/."""
    named = os.environ.get(ENV)
    return Path(named) if named else CONSOLE_DIR


def mount(app: FastAPI, directory: Path | None = None) -> None:
    """Serve the console at / beside the API: the API's routes, 404s and 405s stay as
    they are. Added before the security headers' middleware, which wraps it."""
    app.add_middleware(Console, root=(directory or console_dir()).resolve())


class Console:
    """A plain ASGI middleware (no task or stream per request, as server/asgi.py's):
    GET and HEAD outside /api are the console's, everything else goes to the API."""

    def __init__(self, app: ASGIApp, root: Path) -> None:
        self.app = app
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else "/api"
        if (scope.get("method") not in ("GET", "HEAD") or path == "/api"
                or path.startswith("/api/")):
            await self.app(scope, receive, send)
            return
        await answer(self.root, path)(scope, receive, send)


def answer(root: Path, path: str) -> Response:
    """The response to a GET of `path` outside /api."""
    index = root / "index.html"
    if not index.is_file():
        return PlainTextResponse(NOT_BUILT, status_code=503,
                                 headers={"Cache-Control": "no-store"})
    found = _file(root, path)
    if found is not None and found != index:
        cache = IMMUTABLE if path.startswith(ASSETS) else REVALIDATE
        return FileResponse(found, headers={"Cache-Control": cache})
    if path.startswith(ASSETS):
        return PlainTextResponse("not found\n", status_code=404,
                                 headers={"Cache-Control": "no-store"})
    return FileResponse(index, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": CSP,
                                 "Referrer-Policy": "same-origin"})


def _file(root: Path, path: str) -> Path | None:
    """The built file a URL path names, if it is one inside the console's directory
    (no '..', no hidden files, no symlink out of it)."""
    parts = [part for part in path.split("/") if part]
    if not parts or any(part.startswith(".") or "\\" in part or "\0" in part
                        for part in parts):
        return None
    candidate = root.joinpath(*parts)
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved
