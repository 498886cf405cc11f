"""A repository server: one local (or NFS) directory over HTTP or HTTPS, append-only
unless full access is granted to a named user.

The WORM answer for storage that has no Object Lock: backup clients get credentials that
can add objects but never delete or overwrite one, so a stolen client credential (or
ransomware on the backup host) cannot destroy what was written. Lock files stay
deletable (a client must release its own locks), as restic's rest-server does. Prune
and forget run with a full-access credential, from an administrator's host.

Protocol (HTTP/1.1; object names as in the Backend Protocol, percent-encoded):
  GET    /<name>            the object (Range: bytes=a-b honoured)   200/206, 404
  HEAD   /<name>            its size in Content-Length               200, 404
  PUT    /<name>            store once                               201, 409 if it exists
  DELETE /<name>            remove                                   204, 403 append-only
  GET    /?list=<prefix>    JSON [[name, size], ...]                 200
  GET    /?exists           whether the repository directory exists   200 / 404
  POST   /?create           create it                                 201
Credentials: HTTP Basic, checked by storage/rest_auth.py (argon2id auth file). Who may
listen where, and with which access, is decided by service/serve.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from medark.errors import AlreadyExists, BackendError, ObjectNotFound
from medark.storage.local import LocalBackend
from medark.storage.rest_auth import FULL, Authenticator

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
UPLOAD_CHUNK = 1024 * 1024
HANDSHAKE_TIMEOUT = 30.0


class RepositoryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, auth: Authenticator,
                 log: Callable[[str], None] = lambda _line: None,
                 tls: ssl.SSLContext | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.backend = LocalBackend(root)
        self.auth = auth
        self.log = log
        self.warn = warn or log
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """One line, never a traceback: a client that hangs up is routine (verbose log);
        anything else is a bug worth a line on standard error."""
        exc = sys.exc_info()[1]
        host = client_address[0] if isinstance(client_address, tuple) else client_address
        if isinstance(exc, OSError):
            self.log(f"{host}: connection ended: {exc}")
        else:
            self.warn(f"request from {host} failed: internal error: "
                      f"{type(exc).__name__}: {exc}")

    def finish_request(self, request: socket.socket,  # type: ignore[override]
                       client_address: tuple[str, int]) -> None:
        """The TLS handshake runs here, in the connection's own thread, so a client that
        stalls in it holds up no one else."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.log(f"{client_address[0]}: TLS handshake failed: {exc}")
            return
        try:
            wrapped.settimeout(None)
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class _Handler(BaseHTTPRequestHandler):
    server: RepositoryServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        self.server.log(format % args)

    # ---- plumbing ------------------------------------------------------------------

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               send_body: bool = True) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, message.encode(), {"Content-Type": "text/plain"})

    def _authorized(self) -> str | None:
        mode = self.server.auth.mode_for(self.headers.get("Authorization"))
        if mode is None:
            self._drain()
            self._reply(HTTPStatus.UNAUTHORIZED, b"credentials required",
                        {"WWW-Authenticate": 'Basic realm="medark"'})
        return mode

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            length -= len(self.rfile.read(min(length, UPLOAD_CHUNK)))

    def _target(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return unquote(parts.path.lstrip("/")), parse_qs(parts.query, keep_blank_values=True)

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except ObjectNotFound as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except AlreadyExists as exc:
            self._error(HTTPStatus.CONFLICT, str(exc))
        except BackendError as exc:
            status = HTTPStatus.BAD_REQUEST if "invalid" in str(exc) else \
                HTTPStatus.INTERNAL_SERVER_ERROR
            self._error(status, str(exc))

    # ---- methods -------------------------------------------------------------------

    def do_GET(self) -> None:
        if self._authorized() is None:
            return
        name, query = self._target()
        if not name:
            self._guard(lambda: self._root_query(query))
            return
        self._guard(lambda: self._send_object(name, True))

    def do_HEAD(self) -> None:
        if self._authorized() is None:
            return
        name, _ = self._target()
        self._guard(lambda: self._send_object(name, False))

    def _root_query(self, query: dict[str, list[str]]) -> None:
        backend = self.server.backend
        if "list" in query:
            listing = [[o.name, o.size] for o in backend.list(query["list"][0])]
            self._reply(HTTPStatus.OK, json.dumps(listing).encode(),
                        {"Content-Type": "application/json"})
        elif "exists" in query:
            self._reply(HTTPStatus.OK if backend.exists() else HTTPStatus.NOT_FOUND)
        else:
            self._error(HTTPStatus.BAD_REQUEST, "unknown request")

    def _send_object(self, name: str, with_body: bool) -> None:
        backend = self.server.backend
        size = backend.stat(name).size
        match = _RANGE.match(self.headers.get("Range") or "")
        if not with_body:
            self._reply(HTTPStatus.OK, headers={"Content-Length": str(size)}, send_body=False)
            return
        if match is None:
            self._reply(HTTPStatus.OK, backend.load(name))
            return
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else size - 1
        if start > size or end < start - 1:
            self._error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, f"bad range for {name}")
            return
        data = backend.load(name, start, max(0, min(end, size - 1) - start + 1))
        self._reply(HTTPStatus.PARTIAL_CONTENT, data,
                    {"Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}"})

    def do_PUT(self) -> None:
        if self._authorized() is None:
            return
        name, _ = self._target()
        length = int(self.headers.get("Content-Length") or -1)
        if length < 0:
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return
        spool = self.server.backend.spool_dir()
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=spool)
        try:
            with os.fdopen(fd, "wb") as f:
                remaining = length
                while remaining:
                    chunk = self.rfile.read(min(remaining, UPLOAD_CHUNK))
                    if not chunk:
                        raise BackendError("the upload ended early", transient=True)
                    f.write(chunk)
                    remaining -= len(chunk)
            self._guard(lambda: self._store(name, tmp))
        except BackendError as exc:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _store(self, name: str, path: str) -> None:
        self.server.backend.save_file(name, path)
        self._reply(HTTPStatus.CREATED)

    def do_DELETE(self) -> None:
        mode = self._authorized()
        if mode is None:
            return
        name, _ = self._target()
        if mode != FULL and not name.startswith("locks/"):
            self._error(HTTPStatus.FORBIDDEN, f"{name}: the repository server is append-only "
                        "for this client")
            return
        self._guard(lambda: self._remove(name))

    def _remove(self, name: str) -> None:
        self.server.backend.remove(name)
        self._reply(HTTPStatus.NO_CONTENT)

    def do_POST(self) -> None:
        if self._authorized() is None:
            return
        _name, query = self._target()
        self._drain()
        if "create" not in query:
            self._error(HTTPStatus.BAD_REQUEST, "unknown request")
            return
        self._guard(self._create)

    def _create(self) -> None:
        self.server.backend.create()
        self._reply(HTTPStatus.CREATED)


def serve(server: RepositoryServer, stop: threading.Event) -> None:
    """Serve until `stop` is set."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.server_close()
