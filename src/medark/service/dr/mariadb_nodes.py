"""The two MariaDB servers of a DR system as they are now (nodes.py's counterpart, whose
Member carries a PostgreSQL state), their health checks, and stopping one as its fence.

Roles are found, not read from the file: the node with a replication connection is the
standby, a writable node without one the primary, a read-only one without one fenced
(sources/mysql/replication.py). Passwords come from each node's password_file and go to
the mysql primitives apart from the DSN, to the client's environment only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medark.config.dr import DrConf, Health, Node
from medark.errors import (
    DatabaseUnavailable,
    FencingFailed,
    MedarkError,
    StandbyNotReady,
    UsageError,
)
from medark.service.dr import apps
from medark.service.dr.health import HealthResult, check_name, retry_checks, run_check
from medark.service.dr.nodes import Member, one_line
from medark.sources.mysql.client import Conn
from medark.sources.mysql.replication import (
    PRIMARY,
    STANDBY,
    MariaNodeState,
    connect,
    read_state,
    run,
    table,
)
from medark.util import clock

STOP_WAIT = 60.0
_TRUE = {"true", "t", "on", "yes", "1"}
_FALSE = {"false", "f", "off", "no", "0"}


def node_password(node: Node) -> str | None:
    """The first line of the node's password_file; None: the DSN's user logs in without
    one (unix_socket) or by the option files."""
    if node.password_file is None:
        return None
    try:
        lines = Path(node.password_file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read password_file {node.password_file}: "
                         f"{exc.strerror or exc}") from None
    return lines[0] if lines else ""


@dataclass(frozen=True)
class Maria:
    """A configured MariaDB node with its live state (None: unreachable, `error` why)."""

    configured: str
    node: Node
    password: str | None
    state: MariaNodeState | None
    error: str | None = None

    @property
    def role(self) -> str | None:
        return None if self.state is None else self.state.role

    @property
    def st(self) -> MariaNodeState:
        assert self.state is not None, f"{self.address} was not reached"
        return self.state

    @property
    def conn(self) -> Conn:
        return connect(self.node.dsn, self.password)

    @property
    def address(self) -> str:
        return Conn.parse(self.node.dsn).safe()

    @property
    def host_port(self) -> tuple[str, int]:
        return self.node.address() or ("localhost", 3306)

    def member(self) -> Member:
        """As the kind-neutral client switch sees a node: its address and table."""
        return Member(self.configured, self.node, self.node.dsn, self.address, None)

    def describe(self) -> str:
        return (f"{self.configured} {self.address} "
                + (f"unreachable ({self.error})" if self.error else f"is {self.role}"))


def members(conf: DrConf) -> tuple[Maria, Maria]:
    """Both configured nodes as found now, the file's primary first."""
    found = []
    for configured, node in (("primary", conf.primary), ("standby", conf.standby)):
        password = node_password(node)
        try:
            found.append(Maria(configured, node, password,
                               read_state(connect(node.dsn, password))))
        except MedarkError as exc:
            found.append(Maria(configured, node, password, None, one_line(exc)))
    return found[0], found[1]


def env(system: str, m: Maria) -> dict[str, str]:
    return apps.hook_env(system, "NEW_PRIMARY", *m.host_port)


def _sql_check(check: Health, m: Maria, limit: float) -> HealthResult:
    """An sql check on the MariaDB primary: the first value against `expect` (a boolean
    `expect` matches MariaDB's 1/0)."""
    timeout = max(0.5, min(check.timeout.total_seconds(), limit))
    try:
        lines = run(m.conn, str(check.query), timeout=timeout)
    except MedarkError as exc:
        return HealthResult(check_name(check), "sql", False, one_line(exc))
    got = lines[0].split("\t")[0] if lines else None
    if check.expect is not None:
        want = check.expect.lower()
        ok = got == check.expect or (got in ("0", "1") and (
            (want in _TRUE and got == "1") or (want in _FALSE and got == "0")))
        detail = f"got {got!r}" + ("" if ok else f", wanted {check.expect!r}")
    else:
        ok, detail = got not in (None, "", "0", "NULL"), f"got {got!r}"
    return HealthResult(check_name(check), "sql", ok, detail)


def run_health(health: Health, m: Maria, limit: float) -> HealthResult:
    """One health check (sql ones on `m`), waiting at most `limit` seconds."""
    return _sql_check(health, m, limit) if health.type == "sql" else run_check(health, None,
                                                                               limit)


def wait_healthy(checks: Sequence[Health], m: Maria) -> list[HealthResult]:
    """health.wait_healthy with sql checks run on MariaDB: each until it passes or its
    timeout is up."""
    return retry_checks(checks, lambda check, left: run_health(check, m, left))


def follows(standby: Maria, primary: Maria) -> bool:
    """The standby's replication connection points at this primary: by address, else by
    the Master_Server_Id it saw."""
    s = standby.st
    if (s.master_host, s.master_port) == primary.host_port:
        return True
    rows = table(run(standby.conn, "SHOW SLAVE STATUS", names=True))
    return bool(rows) and rows[0].get("Master_Server_Id") == str(primary.st.server_id)


def find_pair(system: str, conf: DrConf) -> tuple[Maria, Maria]:
    """(primary, standby) as found; the refusal in one line otherwise."""
    a, b = members(conf)
    roles, found = {a.role, b.role}, f"{a.describe()}, {b.describe()}"
    if roles == {PRIMARY}:
        raise StandbyNotReady(f"{system}: no standby, two primaries ({found}): a switch "
                              "would leave both writable; resolve the split by hand")
    if roles == {PRIMARY, STANDBY}:
        return (a, b) if a.role == PRIMARY else (b, a)
    if PRIMARY in roles:
        raise StandbyNotReady(f"{system}: no standby to switch to: {found}")
    raise DatabaseUnavailable(f"{system}: no reachable writable primary: {found} (when the "
                              f"primary site is down: medark dr failover {system})")


def stop(m: Maria) -> str:
    """Stop the server through its control; a `datadir` node by SHUTDOWN, waited for."""
    from medark.service.dr.servers import stop_server

    if m.node.control.datadir is None:
        return stop_server(m.member())
    try:
        run(m.conn, "SHUTDOWN")
    except MedarkError as exc:
        raise FencingFailed(f"cannot stop {m.address}: {one_line(exc)}") from None
    deadline = clock.monotonic() + STOP_WAIT
    while clock.monotonic() < deadline:
        try:
            run(m.conn, "SELECT 1", timeout=5)
        except MedarkError:
            return f"SHUTDOWN {m.address}"
        clock.sleep(0.2)
    raise FencingFailed(f"{m.address} still answers {STOP_WAIT:g} s after SHUTDOWN")

