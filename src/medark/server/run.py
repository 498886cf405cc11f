"""Run the management server: check the listen address and TLS, bind, serve until
SIGTERM or Ctrl-C (uvicorn stops gracefully on both).

Listening beyond loopback needs TLS, as for `medark serve`: session cookies and
passwords must not cross a network in clear text. X-Forwarded-For is honoured only from
the --trusted-proxy addresses (uvicorn's proxy-headers middleware, off otherwise): from
anyone else it is a forgery that would dodge the login rate limit and the audit's source.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medark.catalog.store import Catalog
from medark.errors import UsageError
from medark.server.app import ServerSettings, create_app
from medark.server.auth import AuthPolicy
from medark.service.serve import is_loopback, parse_listen, tls_context


@dataclass(frozen=True)
class ServerOptions:
    catalog_url: str
    listen: str
    tls_cert: Path | None
    tls_key: Path | None
    policy: AuthPolicy
    login_rate: int
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks of reverse proxies whose X-Forwarded-For is believed."""
    job_stale_after: float = 600.0
    """--job-stale-after: seconds a running job's agent may stay silent."""
    agent_offline_after: float | None = None
    """--agent-offline-after: seconds without a heartbeat before an agent is offline."""
    single_security_admin: bool = False
    """--single-security-admin: no four-eyes approval of administrator changes."""
    keep_alive: float = 15.0
    """--keep-alive: seconds of silence before a live stream sends a comment."""


def serve(options: ServerOptions, announce: Callable[[str, bool], None]) -> None:
    """Bind, call `announce(url, loopback_only)`, then serve until stopped."""
    host, port = parse_listen(options.listen)
    loopback = is_loopback(host)
    tls = options.tls_cert is not None or options.tls_key is not None
    if not loopback and not tls:
        raise UsageError(f"--listen {options.listen} is beyond loopback: that needs TLS "
                         "(--tls-cert FILE --tls-key FILE)")
    tls_context(options.tls_cert, options.tls_key)  # a clear error for a bad pair
    catalog = Catalog(options.catalog_url)
    try:
        from medark.server.accounts import Accounts

        if not Accounts(catalog).initialised():
            raise UsageError("the server is not initialised: run `medark server init` "
                             "first")
        from medark.server import totpkey

        box = totpkey.load(catalog)
        app = create_app(ServerSettings(catalog, options.policy, tls, box,
                                        options.login_rate,
                                        job_stale_after=options.job_stale_after,
                                        agent_offline_after=options.agent_offline_after,
                                        single_security_admin=options.single_security_admin,
                                        keep_alive=options.keep_alive))
        sock = _bind(host, port, options.listen)
        import uvicorn

        config = uvicorn.Config(
            app, log_level="warning", access_log=False, server_header=False,
            ssl_certfile=str(options.tls_cert) if options.tls_cert else None,
            ssl_keyfile=str(options.tls_key) if options.tls_key else None,
            timeout_graceful_shutdown=10,
            # uvicorn's default trusts 127.0.0.1 (or $FORWARDED_ALLOW_IPS): only ours
            proxy_headers=bool(options.trusted_proxies),
            forwarded_allow_ips=list(options.trusted_proxies) or [])
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        announce(f"{'https' if tls else 'http'}://{shown}:{bound_port}/api", loopback)
        # uvicorn stops gracefully on SIGTERM, then raises the signal again for the
        # handler it found: ours ignores it, so a stop by SIGTERM exits 0 as `serve`'s
        previous = signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        catalog.close()


def _bind(host: str, port: int, listen: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # inherited by each accepted connection: a response written as headers then
        # body would otherwise wait for the client's delayed ACK (40 ms a request)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {listen}: {exc.strerror}") from None
    return sock
