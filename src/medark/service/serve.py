"""`medark serve`: run the repository server until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from medark.errors import UsageError
from medark.storage.rest_server import MODES, RepositoryServer, load_users, serve


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    return host or "0.0.0.0", int(port)


def open_server(root: Path, listen: str, append_only: bool, auth_file: Path | None,
                log: Callable[[str], None]) -> RepositoryServer:
    users = load_users(auth_file) if auth_file is not None else None
    mode = MODES[0] if append_only else MODES[1]
    try:
        return RepositoryServer(parse_listen(listen), root, mode, users, log)
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}: {exc.strerror}") from None


def run_until(server: RepositoryServer, stop: threading.Event) -> None:
    serve(server, stop)
