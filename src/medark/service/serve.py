"""`medark serve`: decide what the server may do, then run it until stopped.

Safe by default (issue 13, "fail closed"): without an auth file the server listens on
loopback only and every client is append-only; full access needs `--full-access` and an
auth file; listening beyond loopback needs both TLS and an auth file, since anything
less hands the backups, or their passwords, to whoever shares the network.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medark.errors import UsageError
from medark.storage.rest_auth import Authenticator, load_users
from medark.storage.rest_server import RepositoryServer, serve


@dataclass(frozen=True)
class ServeOptions:
    root: Path
    listen: str
    auth_file: Path | None
    full_access: bool
    tls_cert: Path | None
    tls_key: Path | None


@dataclass(frozen=True)
class Serving:
    server: RepositoryServer
    url: str
    loopback_only: bool
    mode: str
    """`append-only` (every client), or `per user` (the auth file's modes)."""
    capped: list[str]
    """Users the auth file gives `full` but who are served append-only (no --full-access)."""


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or :PORT (every address)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"--listen: cannot resolve {host}: {exc}") from None
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback
                               for info in infos)


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("TLS needs both --tls-cert FILE and --tls-key FILE")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"cannot load the TLS certificate {cert} and key {key}: "
                         f"{reason}") from None
    return context


def open_server(options: ServeOptions, log: Callable[[str], None],
                warn: Callable[[str], None]) -> Serving:
    """The server, bound and ready; `log` gets verbose lines, `warn` problems."""
    host, port = parse_listen(options.listen)
    if options.full_access and options.auth_file is None:
        raise UsageError("--full-access needs --auth-file: full access lets a client delete "
                         "backups, so it is given only to the auth file's `full` users")
    loopback = is_loopback(host)
    if not loopback:
        missing = [what for what, present in
                   (("TLS (--tls-cert and --tls-key)", options.tls_cert or options.tls_key),
                    ("an auth file (--auth-file)", options.auth_file)) if not present]
        if missing:
            raise UsageError(f"--listen {options.listen} is beyond loopback: that needs TLS "
                             f"and an auth file; missing {' and '.join(missing)}")
    tls = tls_context(options.tls_cert, options.tls_key)
    users = load_users(options.auth_file) if options.auth_file is not None else None
    auth = Authenticator(users, options.full_access)
    try:
        server = RepositoryServer((host, port), options.root, auth, log, tls, warn)
    except OSError as exc:
        raise UsageError(f"cannot listen on {options.listen}: {exc.strerror}") from None
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if tls else "http"
    return Serving(server, f"rest:{scheme}://{shown}:{bound_port}/", loopback,
                   "per user" if users is not None else "append-only", auth.capped())


def run_until(server: RepositoryServer, stop: threading.Event) -> None:
    serve(server, stop)
