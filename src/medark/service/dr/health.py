"""A DR system's health checks (HTTP, TCP, SQL): one pass for `dr status`, or retried
until each passes or its `timeout` is up, after a switch and in a drill.

Status reports what it sees now, so each check runs once; a switch waits for the
application to come up. A failure is a result with the one-line reason, never an
exception.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medark.config.dr import Health
from medark.errors import MedarkError
from medark.util import clock

MAX_SECONDS = 5.0
"""A status check waits at most this long, whatever the check's own (switch) timeout."""
RETRY_PAUSE = 0.2
_BOOL_TEXT = {"true": "t", "t": "t", "on": "t", "yes": "t", "1": "t",
              "false": "f", "f": "f", "off": "f", "no": "f", "0": "f"}
"""A boolean result is PostgreSQL's text `t`/`f`; `expect` may spell it any way SQL does."""


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


def run_check(check: Health, primary_dsn: str | None,
              limit: float = MAX_SECONDS) -> HealthResult:
    """Run `check` once, waiting at most `limit` seconds; an sql check runs on
    `primary_dsn` (None: no primary found)."""
    timeout = max(0.1, min(check.timeout.total_seconds(), limit))
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


def wait_healthy(checks: Sequence[Health], primary_dsn: str | None) -> list[HealthResult]:
    """Run every check until it passes or its own `timeout` (counted from now) is up; the
    last result of each, in the order given."""
    return retry_checks(checks, lambda check, left: run_check(check, primary_dsn, left))


def retry_checks(checks: Sequence[Health], run_one: Callable[[Health, float], HealthResult]
                 ) -> list[HealthResult]:
    """wait_healthy with the runner of one check (given the seconds it has left) as a
    parameter: a MariaDB system runs its sql checks on MariaDB."""
    start = clock.monotonic()
    results: dict[int, HealthResult] = {}
    pending = list(range(len(checks)))
    while pending:
        for i in list(pending):
            left = start + checks[i].timeout.total_seconds() - clock.monotonic()
            results[i] = run_one(checks[i], max(left, 0.1))
            if results[i].ok or left <= 0:
                pending.remove(i)
        if pending:
            clock.sleep(RETRY_PAUSE)
    return [results[i] for i in range(len(checks))]


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
    first = None if row is None else row[0]
    value = None if first is None else ("t" if first else "f") if isinstance(first, bool) \
        else str(first)
    if check.expect is not None:
        wanted = _BOOL_TEXT.get(check.expect.lower(), check.expect) if isinstance(
            first, bool) else check.expect
        ok = value == wanted
        return ok, f"got {value!r}" + ("" if ok else f", wanted {check.expect!r}")
    ok = value not in (None, "", "0", "false", "f")
    return ok, f"got {value!r}"
