"""One pass of a DR system's health checks (HTTP, TCP, SQL) for `dr status`.

Status reports what it sees now, so each check runs once within its timeout; the retry
until a check passes belongs to the switch and the drill. A failure is a result with the
one-line reason, never an exception.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

from medark.config.dr import Health
from medark.errors import MedarkError

MAX_SECONDS = 5.0
"""A status check waits at most this long, whatever the check's own (switch) timeout."""


@dataclass(frozen=True)
class HealthResult:
    name: str
    type: str
    ok: bool
    detail: str

    def public(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "ok": self.ok, "detail": self.detail}


def check_name(check: Health) -> str:
    return check.name or f"{check.type} {check.url or check.address or check.query}"


def run_check(check: Health, primary_dsn: str | None) -> HealthResult:
    """Run `check` once; an sql check runs on `primary_dsn` (None: no primary found)."""
    timeout = min(check.timeout.total_seconds(), MAX_SECONDS)
    try:
        if check.type == "tcp":
            ok, detail = _tcp(str(check.address), timeout)
        elif check.type == "http":
            ok, detail = _http(check, timeout)
        else:
            ok, detail = _sql(check, primary_dsn, timeout)
    except (OSError, MedarkError) as exc:
        ok, detail = False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return HealthResult(check_name(check), check.type, ok, detail)


def _tcp(address: str, timeout: float) -> tuple[bool, str]:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        return True, f"{address} accepts connections"


def _http(check: Health, timeout: float) -> tuple[bool, str]:
    want = check.expect_status or 200
    try:
        with urllib.request.urlopen(str(check.url), timeout=timeout) as response:
            status, body = response.status, response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, b""
    if status != want:
        return False, f"HTTP {status}, wanted {want}"
    if check.expect_body and check.expect_body not in body.decode("utf-8", "replace"):
        return False, f"HTTP {status} without {check.expect_body!r} in the body"
    return True, f"HTTP {status}"


def _sql(check: Health, primary_dsn: str | None, timeout: float) -> tuple[bool, str]:
    import psycopg

    from medark.sources.postgres.server import Dsn

    if primary_dsn is None:
        return False, "no primary to run the query on"
    dsn = Dsn.parse(primary_dsn)
    dsn.params.setdefault("connect_timeout", str(max(1, int(timeout))))
    with dsn.connect() as conn:
        try:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            row = conn.execute(str(check.query)).fetchone()
        except psycopg.Error as exc:
            return False, str(exc).strip().splitlines()[0]
    value = None if row is None or row[0] is None else str(row[0])
    if check.expect is not None:
        ok = value == check.expect
        return ok, f"got {value!r}" + ("" if ok else f", wanted {check.expect!r}")
    ok = value not in (None, "", "0", "False", "false", "f")
    return ok, f"got {value!r}"
