"""What a MariaDB primary/replica pair is doing under GTID replication, and the two steps
of a switch that happen on the replica: waiting until it has applied a GTID position, and
promoting it.

Every figure comes from the servers' own variables (@@gtid_*_pos, @@read_only) and
SHOW ALL SLAVES STATUS. Like client.py this talks through the `mariadb` client program;
statements travel on its standard input, so a replication password in CHANGE MASTER is
never on an argv. Fencing the old primary is in fencing.py, turning it into a replica of
the new one in reinstate.py.

GTIDs are domain-server-sequence. With gtid_strict_mode (which a DR pair should run) the
sequence numbers of one domain only grow, so a position is behind another in a domain by
the difference of their sequence numbers.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from medark.errors import DatabaseUnavailable, MedarkError, StandbyNotReady, UsageError
from medark.sources.mysql.client import CONNECT_TIMEOUT, Conn, classify, find_program

PRIMARY = "primary"
STANDBY = "standby"
FENCED = "fenced"
"""Not replicating and read-only: a fenced old primary, or a server between roles."""

_UNESCAPE = {"n": "\n", "t": "\t", "\\": "\\", "0": "\0"}


def connect(dsn: str, password: str | None = None) -> Conn:
    """A `mysql://user@host:port/` DSN, with the password given apart (or in the DSN)."""
    conn = Conn.parse(dsn)
    return conn if password is None else replace(conn, password=password)


def run(conn: Conn, sql: str, *, timeout: float = 120.0, names: bool = False,
        secrets: Iterable[str] = ()) -> list[str]:
    """Run `sql` (one or more statements) on stdin; the batch output's lines. Errors are
    one line (client.classify), with the password and every one of `secrets` masked."""
    argv = [find_program("mariadb", "mysql"), *conn.args(),
            f"--connect-timeout={CONNECT_TIMEOUT}", "--batch",
            *([] if names else ["--skip-column-names"])]
    try:
        done = subprocess.run(argv, input=sql, capture_output=True, text=True,
                              env=conn.environment(), timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DatabaseUnavailable(f"{conn.safe()} did not answer within {timeout:g} s") from None
    if done.returncode != 0:
        stderr = done.stderr
        for secret in secrets:
            if secret:
                stderr = stderr.replace(secret, "***")
        raise classify(stderr, conn, "query")
    return done.stdout.splitlines()


def _cell(text: str) -> str:
    """Undo the batch mode's escaping of tabs, newlines, backslashes and NULs."""
    out, chars = [], iter(text)
    for ch in chars:
        out.append(_UNESCAPE.get(next(chars, ""), "") if ch == "\\" else ch)
    return "".join(out)


def table(lines: list[str]) -> list[dict[str, str]]:
    """A result set printed with column names, as one dict per row."""
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, map(_cell, line.split("\t")), strict=False))
            for line in lines[1:]]


def value(conn: Conn, expr: str) -> str:
    lines = run(conn, f"SELECT {expr}")
    return _cell(lines[0]) if lines else ""


PROBE_USER = "medark_probe"


def write_probe(conn: Conn) -> str:
    """'refused' when a new session of an ordinary account has a write refused as
    read-only, else 'accepted'.

    The account running the switch holds READ ONLY ADMIN (setting read_only needs it), and
    read_only does not apply to that privilege (nor, before 10.11, to SUPER), so its own
    sessions prove nothing. The probe is a throwaway account with no privileges at all,
    made and dropped with sql_log_bin=0 (no GTID, nothing replicated), for the host the
    server sees us from; its INSERT into a table that does not exist meets the read-only
    check before any other (error 1290), else fails on privileges: nothing is written
    either way."""
    host = value(conn, "SUBSTRING_INDEX(USER(), '@', -1)").replace("'", "")
    secret = secrets.token_urlsafe(24) + "-Aa9"
    account = f"'{PROBE_USER}'@'{host}'"
    run(conn, f"SET SESSION sql_log_bin = 0; CREATE OR REPLACE USER {account} "
        f"IDENTIFIED BY '{secret}'", secrets=[secret])
    try:
        run(replace(conn, user=PROBE_USER, password=secret),
            "INSERT INTO medark_probe.probe VALUES (1)", secrets=[secret])
    except MedarkError as exc:
        if "ERROR 1290" in str(exc) or "--read-only" in str(exc):
            return "refused"
        if "ERROR 1142" not in str(exc) and "ERROR 1146" not in str(exc):
            raise
    finally:
        run(conn, f"SET SESSION sql_log_bin = 0; DROP USER IF EXISTS {account}")
    return "accepted"


# --- GTIDs -------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Gtid:
    domain: int
    server_id: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seq}"


def parse_gtids(text: str) -> list[Gtid]:
    """'0-1-100,1-2-5' (any of the @@gtid_* variables; '' is none)."""
    out = []
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise UsageError(f"invalid GTID {item!r}: expected domain-server-sequence")
        out.append(Gtid(int(parts[0]), int(parts[1]), int(parts[2])))
    return out


def by_domain(gtids: Iterable[Gtid]) -> dict[int, Gtid]:
    """The newest GTID of each domain (a position has one per domain)."""
    out: dict[int, Gtid] = {}
    for g in gtids:
        if g.domain not in out or g.seq > out[g.domain].seq:
            out[g.domain] = g
    return out


def behind(target: str, applied: str) -> dict[int, int]:
    """Per domain of `target`, how many sequence numbers `applied` lacks (0 when it has
    reached them)."""
    have = by_domain(parse_gtids(applied))
    return {d: max(0, g.seq - (have[d].seq if d in have else 0))
            for d, g in sorted(by_domain(parse_gtids(target)).items())}


def merged(*positions: str) -> str:
    """The newest GTID of each domain over several positions (as gtid_current_pos does)."""
    newest = by_domain(g for pos in positions for g in parse_gtids(pos))
    return ",".join(str(newest[d]) for d in sorted(newest))


# --- state -------------------------------------------------------------------------------

@dataclass(frozen=True)
class MariaNodeState:
    """One server. `replicating` is True when a replication connection is configured
    (running or not); the slave fields describe the default (or first) connection."""

    role: str
    read_only: bool
    server_id: int
    version: str
    gtid_current_pos: str
    gtid_binlog_pos: str
    gtid_slave_pos: str
    gtid_binlog_state: str
    gtid_strict_mode: bool
    log_bin: bool
    log_slave_updates: bool
    replicating: bool = False
    connections: tuple[str, ...] = ()
    slave_io_running: str | None = None
    """'Yes', 'No' or 'Preparing'/'Connecting' while it tries."""
    slave_sql_running: str | None = None
    seconds_behind_master: int | None = None
    last_io_error: str = ""
    last_sql_error: str = ""
    master_host: str | None = None
    master_port: int | None = None
    using_gtid: str | None = None
    gtid_io_pos: str = ""

    @property
    def streaming(self) -> bool:
        return self.slave_io_running == "Yes" and self.slave_sql_running == "Yes"

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


_STATE_SQL = ("SELECT @@server_id AS server_id, @@read_only AS read_only, "
              "@@version AS version, @@gtid_current_pos AS cur, @@gtid_binlog_pos AS bin, "
              "@@gtid_slave_pos AS slave, @@gtid_binlog_state AS state, "
              "@@gtid_strict_mode AS strict, @@log_bin AS log_bin, "
              "@@log_slave_updates AS lsu; SHOW ALL SLAVES STATUS")


def read_state(conn: Conn) -> MariaNodeState:
    """`node_state` on a parsed connection."""
    lines = run(conn, _STATE_SQL, names=True)
    if len(lines) < 2:
        raise DatabaseUnavailable(f"{conn.safe()}: unexpected answer to the state query")
    v = table(lines[:2])[0]
    slaves = table(lines[2:])
    read_only = v["read_only"] not in ("0", "OFF")
    role = STANDBY if slaves else FENCED if read_only else PRIMARY
    base = MariaNodeState(
        role, read_only, int(v["server_id"]), v["version"], v["cur"], v["bin"], v["slave"],
        v["state"], v["strict"] in ("1", "ON"), v["log_bin"] in ("1", "ON"),
        v["lsu"] in ("1", "ON"))
    if not slaves:
        return base
    main = next((s for s in slaves if s.get("Connection_name", "") == ""), slaves[0])
    sbm = main.get("Seconds_Behind_Master", "NULL")
    port = main.get("Master_Port", "")
    return replace(
        base, replicating=True,
        connections=tuple(s.get("Connection_name", "") for s in slaves),
        slave_io_running=main.get("Slave_IO_Running"),
        slave_sql_running=main.get("Slave_SQL_Running"),
        seconds_behind_master=int(sbm) if sbm.isdigit() else None,
        last_io_error=main.get("Last_IO_Error", ""),
        last_sql_error=main.get("Last_SQL_Error", ""),
        master_host=main.get("Master_Host") or None,
        master_port=int(port) if port.isdigit() else None,
        using_gtid=main.get("Using_Gtid"), gtid_io_pos=main.get("Gtid_IO_Pos", ""))


def node_state(dsn: str, password: str | None = None) -> MariaNodeState:
    """Role, read-only flag, GTID positions and replication threads of the server."""
    return read_state(connect(dsn, password))


def describe_threads(state: MariaNodeState) -> str:
    """'IO Yes, SQL No: <error>' for messages."""
    error = state.last_sql_error or state.last_io_error
    return (f"IO {state.slave_io_running or 'not configured'}, SQL "
            f"{state.slave_sql_running or 'not configured'}"
            + (f": {error.splitlines()[0][:200]}" if error else ""))


@dataclass(frozen=True)
class MariaLag:
    """How far the replica's applied position (gtid_slave_pos) is behind the primary's
    binlog. `transactions` sums the per-domain sequence gaps (`domains`).

    `seconds` is 0 only when `transactions` is 0. While behind it is the replica's
    Seconds_Behind_Master when that is above 0; None otherwise (threads stopped, or the
    SQL thread has applied all it received while the IO thread is behind, where MariaDB
    reads 0): never 0 while behind. `basis` says which."""

    transactions: int
    seconds: float | None
    basis: str
    primary_gtid: str
    standby_gtid: str
    domains: dict[int, int]

    def as_dict(self) -> dict[str, object]:
        return {"transactions": self.transactions, "seconds": self.seconds,
                "basis": self.basis, "primary_gtid": self.primary_gtid,
                "standby_gtid": self.standby_gtid,
                "domains": {str(d): n for d, n in self.domains.items()}}


def replication_lag(primary_dsn: str, standby_dsn: str, primary_password: str | None = None,
                    standby_password: str | None = None) -> MariaLag:
    standby_conn = connect(standby_dsn, standby_password)
    standby = read_state(standby_conn)
    if not standby.replicating:
        raise StandbyNotReady(f"{standby_conn.safe()} has no replication configured: "
                              "not a standby")
    primary = read_state(connect(primary_dsn, primary_password))
    gaps = behind(primary.gtid_binlog_pos, standby.gtid_slave_pos)
    total = sum(gaps.values())
    if total == 0:
        return MariaLag(0, 0.0, "caught up", primary.gtid_binlog_pos,
                        standby.gtid_slave_pos, gaps)
    sbm = standby.seconds_behind_master
    if sbm:
        seconds, basis = float(sbm), "Seconds_Behind_Master"
    elif sbm is None:
        seconds, basis = None, f"unknown: replication threads {describe_threads(standby)}"
    else:
        seconds, basis = None, "unknown: Seconds_Behind_Master reads 0 while behind"
    return MariaLag(total, seconds, basis, primary.gtid_binlog_pos, standby.gtid_slave_pos,
                    gaps)


def missing(target: str, applied: str) -> str:
    """'domain 0: 5 transactions short of 0-1-15' for every domain not yet reached."""
    wanted = by_domain(parse_gtids(target))
    return "; ".join(f"domain {d}: {n} transaction{'s' if n != 1 else ''} short of "
                     f"{wanted[d]}" for d, n in behind(target, applied).items() if n)


def wait_replayed(standby_dsn: str, gtid: str, timeout: float,
                  password: str | None = None) -> MariaNodeState:
    """Until the replica has applied `gtid` (the fenced primary's final_gtid) in every
    domain: MASTER_GTID_WAIT in slices of a second, the threads checked between slices so
    a broken replica fails at once. A timeout names what is still missing."""
    parse_gtids(gtid)  # a bad position is a usage error, not a timeout
    conn = connect(standby_dsn, password)
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(conn)
        if not state.replicating:
            raise StandbyNotReady(f"{conn.safe()} has no replication configured: not a "
                                  "standby")
        short = missing(gtid, state.gtid_slave_pos)
        if not short:
            return state
        left = deadline - time.monotonic()
        if left <= 0:
            raise StandbyNotReady(
                f"{conn.safe()} applied {state.gtid_slave_pos or 'nothing'} after "
                f"{timeout:g} s, {short} (threads: {describe_threads(state)})")
        if state.slave_sql_running == "No" and state.last_sql_error:
            raise StandbyNotReady(f"{conn.safe()} stopped applying, {short}: "
                                  f"{describe_threads(state)}")
        wait = min(1.0, left)
        run(conn, f"SELECT MASTER_GTID_WAIT('{gtid}', {wait:.3f})", timeout=wait + 30)


def promote(standby_dsn: str, password: str | None = None, timeout: float = 30.0,
            allow_unapplied: bool = False) -> MariaNodeState:
    """Make the replica a writable primary: stop receiving, let the SQL thread apply what
    was received (a failover loses no relay log), STOP SLAVE, RESET SLAVE ALL, read_only
    off; then prove a fresh connection of an ordinary account gets past the read-only
    check (write_probe).

    A replica whose SQL thread is stopped with transactions received but not applied is
    refused (RESET SLAVE ALL would drop them) unless `allow_unapplied` (failover --force)."""
    conn = connect(standby_dsn, password)
    before = read_state(conn)
    if not before.replicating:
        raise StandbyNotReady(f"{conn.safe()} has no replication configured: nothing to "
                              "promote")
    unapplied = missing(before.gtid_io_pos, before.gtid_slave_pos)
    if before.slave_sql_running != "Yes" and unapplied and not allow_unapplied:
        raise StandbyNotReady(f"{conn.safe()} not promoted: received but not applied, "
                              f"{unapplied} (threads: {describe_threads(before)})")
    if before.slave_sql_running == "Yes":
        run(conn, "STOP ALL SLAVES IO_THREAD")
        stopped = read_state(conn)
        received = stopped.gtid_io_pos
        if received and missing(received, stopped.gtid_slave_pos):
            try:
                wait_replayed(standby_dsn, received, timeout, password)
            except StandbyNotReady as exc:
                run(conn, "START ALL SLAVES")  # as it was: nothing changed
                raise StandbyNotReady(f"not promoted: {exc}") from None
    resets = "".join(f"RESET SLAVE '{name}' ALL; " for name in before.connections)
    run(conn, f"STOP ALL SLAVES; {resets}SET GLOBAL read_only = 0")
    after = read_state(conn)
    if after.role != PRIMARY:
        raise MedarkError(f"{conn.safe()} after promotion: {after.role} "
                          f"(read_only={int(after.read_only)}); expected a primary")
    if write_probe(conn) != "accepted":
        raise MedarkError(f"{conn.safe()} after promotion: a new session's write is still "
                          "refused as read-only")
    return after
