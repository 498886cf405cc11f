"""The client of `medark serve` (storage/rest_server.py): `rest:https://host:port/`
(or `rest:http://` on loopback).

Credentials come from MEDARK_REST_USER and MEDARK_REST_PASSWORD or
MEDARK_REST_PASSWORD_FILE (never from the
location, which shows up in argv and logs). Over https the server's certificate is
verified, against the system's CAs or, for a private CA or a self-signed certificate,
the PEM file in MEDARK_CACERT (the global `--cacert FILE`, restic's spelling); a
certificate that does not verify is a plain error, not retried. One keep-alive
connection per thread.
Connection failures and 5xx answers are transient (the retry wrapper retries them); a
refused delete of an append-only server is ObjectLocked, so forget and prune skip the
object and say so.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import threading
import weakref
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from medark.errors import AlreadyExists, BackendError, ObjectLocked, ObjectNotFound, UsageError
from medark.storage.base import BackendProperties, ObjectInfo
from medark.storage.local import check_name, check_prefix

TIMEOUT = 120
UPLOAD_BLOCK = 1024 * 1024


CACERT = "MEDARK_CACERT"


class RestBackend:
    def __init__(self, url: str, credentials: tuple[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"invalid repository server location 'rest:{url}': expected "
                             "rest:http://host:port/ or rest:https://host:port/")
        if parts.username or parts.password:
            raise UsageError("put the repository server's credentials in MEDARK_REST_USER "
                             "and MEDARK_REST_PASSWORD, not in the location")
        self.url = url.rstrip("/") + "/"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/") + "/"
        self._tls = _client_tls() if self._https else None
        user, password = credentials or (os.environ.get("MEDARK_REST_USER"), _rest_password())
        self._auth = None
        if user:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []  # closed by close()
        self._all_lock = threading.Lock()
        # a backend dropped without close() still closes its sockets
        self._finalizer = weakref.finalize(self, _close_all, self._all)

    def properties(self) -> BackendProperties:
        return BackendProperties(location=f"rest:{self.url}", connections=4)

    # ---- transport -----------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._tls is not None:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=TIMEOUT,
                                                   context=self._tls)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _exchange(self, method: str, target: str, body: object, headers: dict[str, str],
                  what: str) -> tuple[http.client.HTTPResponse, bytes]:
        all_headers = dict(headers)
        if self._auth:
            all_headers["Authorization"] = self._auth
        conn = self._connection()
        try:
            conn.request(method, self._base + target, body=body,  # type: ignore[arg-type]
                         headers=all_headers)
            response = conn.getresponse()
            data = response.read()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            self._local.conn = None
            raise BackendError(f"{what}: the certificate of repository server {self.url} "
                               f"does not verify: {exc.verify_message}; trust a private CA "
                               f"with --cacert FILE or {CACERT}") from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._local.conn = None
            raise BackendError(f"{what}: repository server {self.url} unreachable: {exc}",
                               transient=True) from exc
        if response.status == 401:
            raise BackendError(f"{what}: the repository server refused the credentials "
                               "(MEDARK_REST_USER / MEDARK_REST_PASSWORD)")
        return response, data

    def _request(self, method: str, target: str, body: object = None,
                 headers: dict[str, str] | None = None, what: str = "") -> tuple[int, bytes]:
        response, data = self._exchange(method, target, body, headers or {}, what)
        if response.status >= 500:
            raise BackendError(f"{what}: server error {response.status}: "
                               f"{data[:200].decode(errors='replace')}", transient=True)
        return response.status, data

    def _head(self, target: str, what: str) -> tuple[int, http.client.HTTPMessage]:
        response, _ = self._exchange("HEAD", target, None, {}, what)
        return response.status, response.headers

    @staticmethod
    def _name(name: str) -> str:
        return quote(check_name(name))

    # ---- the Protocol --------------------------------------------------------------

    def save(self, name: str, data: bytes | bytearray) -> None:
        status, text = self._request("PUT", self._name(name), bytes(data),
                                     {"Content-Length": str(len(data))}, f"saving {name}")
        self._saved(name, status, text)

    def save_file(self, name: str, path: str) -> None:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            status, text = self._request("PUT", self._name(name), f,
                                         {"Content-Length": str(size)}, f"saving {name}")
        self._saved(name, status, text)

    @staticmethod
    def _saved(name: str, status: int, text: bytes) -> None:
        if status == 409:
            raise AlreadyExists(f"{name} already exists")
        if status != 201:
            raise BackendError(f"saving {name}: {status} {text[:200].decode(errors='replace')}")

    def spool_dir(self) -> str | None:
        return None

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise BackendError(f"reading {name}: invalid range offset={offset} length={length}")
        headers = {}
        if offset or length is not None:
            if length == 0:
                size = self.stat(name).size
                if offset > size:
                    raise BackendError(f"reading {name}: offset {offset} is past the end")
                return b""
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        status, data = self._request("GET", self._name(name), headers=headers,
                                     what=f"reading {name}")
        if status == 404:
            raise ObjectNotFound(f"{name} not found in the repository")
        if status == 416:
            raise BackendError(f"reading {name}: offset {offset} is past the end")
        if status not in (200, 206):
            raise BackendError(f"reading {name}: {status}")
        if length is not None and len(data) != length:
            raise BackendError(f"reading {name}: short read ({len(data)} of {length} bytes)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        status, headers = self._head(self._name(name), f"stat {name}")
        if status == 404:
            raise ObjectNotFound(f"{name} not found in the repository")
        if status != 200:
            raise BackendError(f"stat {name}: {status}", transient=status >= 500)
        return ObjectInfo(name, int(headers.get("Content-Length") or 0))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        status, data = self._request("GET", "?list=" + quote(prefix, safe=""),
                                     what=f"listing {prefix or '/'}")
        if status != 200:
            raise BackendError(f"listing {prefix or '/'}: {status}")
        for name, size in json.loads(data):
            yield ObjectInfo(str(name), int(size))

    def remove(self, name: str) -> None:
        status, text = self._request("DELETE", self._name(name), what=f"removing {name}")
        if status in (204, 404):
            return
        if status == 403:
            raise ObjectLocked(f"{name}: {text[:200].decode(errors='replace')}",
                               reason="kept by the append-only repository server")
        raise BackendError(f"removing {name}: {status}")

    def exists(self) -> bool:
        status, _ = self._request("GET", "?exists", what="checking the repository")
        return status == 200

    def create(self) -> None:
        status, text = self._request("POST", "?create", b"", {"Content-Length": "0"},
                                     "creating the repository")
        if status != 201:
            raise BackendError(f"creating the repository: {status} {text[:200]!r}")

    def close(self) -> None:
        with self._all_lock:
            _close_all(self._all)


def _close_all(connections: list[http.client.HTTPConnection]) -> None:
    for conn in connections:
        conn.close()
    connections.clear()


def _rest_password() -> str | None:
    """MEDARK_REST_PASSWORD, or the first line of MEDARK_REST_PASSWORD_FILE."""
    path = os.environ.get("MEDARK_REST_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read MEDARK_REST_PASSWORD_FILE {path}: "
                             f"{exc.strerror}") from None
    return os.environ.get("MEDARK_REST_PASSWORD")


def _client_tls() -> ssl.SSLContext:
    """Verifying TLS: the system's CAs, or only the CA file MEDARK_CACERT names."""
    cafile = os.environ.get(CACERT) or None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"cannot load the CA certificate {cafile} ({CACERT} / --cacert): "
                         f"{reason}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
