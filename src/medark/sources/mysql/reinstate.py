"""Turning an old MariaDB primary into a GTID replica of the server that replaced it, so
the reverse switch is ready; refused when the old primary has transactions the new one
lacks (errant GTIDs), which replication would otherwise skip or trip over later.

MariaDB's documented way to demote a primary (the GTID and CHANGE MASTER pages): replicate
with MASTER_USE_GTID=slave_pos, having merged the node's own binlog position into
gtid_slave_pos first: SET GLOBAL gtid_slave_pos does that merge, MASTER_DEMOTE_TO_SLAVE=1
(10.10+) is given as well. DEMOTE alone merges only the domains the node wrote last
itself (gtid_current_pos's rule), not the GTIDs a repository-fed standby logged by
replaying other servers' binlogs. current_pos is deprecated for this (MDEV-20122): it
would also count later local writes as replicated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from medark.errors import DatabaseUnavailable, StandbyNotReady, SwitchRefused, UsageError
from medark.sources.mysql.client import Conn
from medark.sources.mysql.replication import (
    STANDBY,
    Gtid,
    MariaNodeState,
    by_domain,
    connect,
    describe_threads,
    merged,
    parse_gtids,
    read_state,
    run,
    table,
    wait_replayed,
)


@dataclass(frozen=True)
class ReplicationSource:
    """The new primary as the reinstated replica reaches it (CHANGE MASTER's host, port
    and replication account). `check_dsn` is how Medark itself reads the new primary's
    GTID state for the errant check (default: this account at host:port; reading
    @@gtid_binlog_state needs no privilege)."""

    host: str
    port: int
    user: str
    password: str | None = None
    check_dsn: str | None = None
    check_password: str | None = None

    def check_conn(self) -> Conn:
        if self.check_dsn:
            return connect(self.check_dsn, self.check_password)
        return Conn(host=self.host, port=self.port, user=self.user, password=self.password)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def errant_gtids(old: MariaNodeState, new_binlog_state: str, new_position: str) -> list[str]:
    """The old primary's transactions the new primary lacks, as 'first..last' per
    domain and server ('0-1-11..0-1-15', or '0-1-11' for one).

    Per (domain, server) the old node's newest GTID (its gtid_binlog_state) must be at or
    below the new primary's for that pair; a pair the new primary never logged counts as
    had when its position in the domain is past it (history from before its binlog)."""
    theirs = {(g.domain, g.server_id): g.seq for g in parse_gtids(new_binlog_state)}
    reached = by_domain(parse_gtids(new_position))
    out = []
    for g in sorted(parse_gtids(old.gtid_binlog_state)):
        have = theirs.get((g.domain, g.server_id))
        if have is None:
            if g.domain in reached and reached[g.domain].seq >= g.seq:
                continue
            have = 0
        if g.seq > have:
            first = Gtid(g.domain, g.server_id, have + 1)
            out.append(str(g) if first == g else f"{first}..{g}")
    return out


def reinstate_as_standby(old_primary_dsn: str, source: ReplicationSource,
                         password: str | None = None, timeout: float = 60.0,
                         connect_retry: int = 5) -> MariaNodeState:
    """Make the old primary read-only and a GTID replica of `source`, start it and wait
    until both threads run and it has applied what the new primary had logged when this
    began. Refused before anything changes when the old primary has errant GTIDs."""
    if not source.host or not 0 < source.port < 65536:
        raise UsageError(f"invalid new primary address {source.host}:{source.port}")
    conn = connect(old_primary_dsn, password)
    old = read_state(conn)
    if not old.log_bin:
        raise StandbyNotReady(f"{conn.safe()}: binary logging is off; it cannot replicate "
                              "by GTID as a future primary would need")
    check = source.check_conn()
    try:
        rows = table(run(check, "SELECT @@gtid_binlog_state AS state, "
                                "@@gtid_binlog_pos AS pos, @@log_slave_updates AS lsu, "
                                "@@server_id AS id", names=True, secrets=[source.password or ""]))
    except DatabaseUnavailable as exc:
        raise StandbyNotReady(f"cannot read the new primary's GTID state: {exc} (give "
                              "ReplicationSource.check_dsn)") from None
    new = rows[0]
    if int(new["id"]) == old.server_id:
        raise UsageError(f"{conn.safe()} and {check.safe()} have the same server_id "
                         f"{old.server_id}: replication between them would skip every event")
    extra = errant_gtids(old, new["state"], new["pos"])
    if extra:
        raise SwitchRefused(
            f"{conn.safe()} has transactions {check.safe()} lacks (errant GTIDs "
            f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}): not reinstated; "
            "rebuild it from the new primary or a backup")
    _point(conn, old, source, connect_retry)
    hint = "" if new["lsu"] in ("1", "ON") else (
        "; the new primary runs without log_slave_updates, so its binlog lacks what it "
        "replicated")
    return _wait_running(conn, new["pos"], timeout, password, old_primary_dsn, hint)


def _point(conn: Conn, old: MariaNodeState, source: ReplicationSource,
           connect_retry: int) -> None:
    """read_only, then CHANGE MASTER with the node's own binlog merged into gtid_slave_pos,
    then START SLAVE. A previous replication connection (default name) is replaced."""
    version = tuple(int(x) for x in old.version.split("-")[0].split(".")[:2])
    demote = version >= (10, 10)
    statements = ["SET GLOBAL read_only = 1"]
    if old.replicating:
        statements.append("STOP SLAVE")
    # MASTER_DEMOTE_TO_SLAVE merges only the domains whose last GTID is the node's own
    # (gtid_current_pos's rule): a standby fed from a repository logged other servers'
    # GTIDs by replaying them, which it must not ask for again. The merge by hand covers
    # both.
    position = merged(old.gtid_binlog_pos, old.gtid_slave_pos)
    if position != merged(old.gtid_slave_pos):
        statements.append(f"SET GLOBAL gtid_slave_pos = '{position}'")
    options = [f"MASTER_HOST = {_quote(source.host)}", f"MASTER_PORT = {source.port}",
               f"MASTER_USER = {_quote(source.user)}",
               f"MASTER_PASSWORD = {_quote(source.password or '')}",
               "MASTER_USE_GTID = slave_pos", f"MASTER_CONNECT_RETRY = {connect_retry}",
               *(["MASTER_DEMOTE_TO_SLAVE = 1"] if demote else [])]
    statements += [f"CHANGE MASTER TO {', '.join(options)}", "START SLAVE"]
    run(conn, ";\n".join(statements), secrets=[source.password or ""])


def _wait_running(conn: Conn, target: str, timeout: float, password: str | None,
                  dsn: str, hint: str) -> MariaNodeState:
    """Both threads 'Yes', then the new primary's position (read before CHANGE MASTER)
    applied: a replica whose IO thread says Yes for a moment before the primary refuses
    its position is not taken for a working one."""
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(conn)
        stopped = state.slave_io_running == "No" or state.slave_sql_running == "No"
        failed = stopped and bool(state.last_io_error or state.last_sql_error)
        if state.streaming or failed:
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if not state.streaming:  # an error ends the wait at once: no time to speak of
        waited = "" if failed else f" after {timeout:g} s"
        raise StandbyNotReady(f"{conn.safe()} is not replicating{waited}: "
                              f"threads {describe_threads(state)}{hint}")
    left = max(1.0, deadline - time.monotonic())
    state = wait_replayed(dsn, target, left, password)
    if state.role != STANDBY or not state.read_only:
        raise StandbyNotReady(f"{conn.safe()} after reinstatement: {state.role}, "
                              f"read_only={int(state.read_only)}")
    return state
