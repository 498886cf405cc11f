"""Keeping an old MariaDB primary from taking writes during a switch, and reading the GTID
position that holds every transaction it committed.

`fence_readonly` keeps the server up (its binlog dump threads keep serving the replica the
last transactions, and the switch can roll back at once): SET GLOBAL read_only=1, then
every other client connection is killed (replication threads are kept) and waited for.

read_only is a soft fence. Since MariaDB 10.11 it does not apply to accounts holding
READ ONLY ADMIN (which ALL PRIVILEGES includes, and which setting read_only requires);
before 10.11 it did not apply to SUPER. Such an account can reconnect and write, so the
application accounts must not hold it, and the clients' entry point (proxy, VIP, DNS)
must point away from the server too. `readonly_bypass_accounts` lists who can. Replication
threads are never blocked by read_only.

The DR account needs READ ONLY ADMIN (read_only), PROCESS and CONNECTION ADMIN (to see and
kill every session; without PROCESS other accounts' sessions are invisible and survive),
CREATE USER and BINLOG ADMIN (the write probe's throwaway account, unlogged).
"""

from __future__ import annotations

import time

from medark.errors import DatabaseUnavailable, FencingFailed, MedarkError
from medark.sources.mysql.client import Conn
from medark.sources.mysql.replication import connect, run, table, value, write_probe

KEPT_COMMANDS = ("Binlog Dump", "Binlog Dump GTID", "Daemon", "Slave_IO", "Slave_SQL",
                 "Slave_worker")
"""Threads a fence leaves alone: the dump threads feeding replicas, the event scheduler,
and the server's own replication threads."""

_CLIENTS = ("SELECT ID, USER, HOST, COMMAND FROM information_schema.PROCESSLIST "
            "WHERE ID <> CONNECTION_ID() AND USER <> 'system user' AND COMMAND NOT IN ("
            + ", ".join(f"'{c}'" for c in KEPT_COMMANDS) + ")")


def _clients(conn: Conn) -> dict[int, str]:
    """Other client connections: id -> 'user@host (command)'."""
    return {int(r["ID"]): f"{r['USER']}@{r['HOST']} ({r['COMMAND']})"
            for r in table(run(conn, _CLIENTS, names=True))}


def _kill(conn: Conn, ids: list[int]) -> None:
    """KILL CONNECTION each one; an id that ended meanwhile (1094) is no failure."""
    for start in range(0, len(ids), 200):
        script = "".join(f"KILL CONNECTION {i};\n" for i in ids[start:start + 200])
        try:
            run(conn, script)
        except MedarkError as exc:
            if "1094" not in str(exc):
                raise
            for i in ids[start:start + 200]:  # one was gone: the rest one by one
                try:
                    run(conn, f"KILL CONNECTION {i}")
                except MedarkError as again:
                    if "1094" not in str(again):
                        raise


def _set_read_only(conn: Conn, timeout: float) -> dict[int, str]:
    """SET GLOBAL read_only=1 waits for the global read lock, which a long write statement
    or a LOCK TABLES holds off: wait at most half of `timeout`, then kill the clients and
    retry."""
    wait = max(1, int(timeout / 2))
    statement = f"SET SESSION lock_wait_timeout = {wait}; SET GLOBAL read_only = 1"
    try:
        run(conn, statement, timeout=wait + 30)
    except MedarkError as exc:
        if "1205" not in str(exc) and "Lock wait timeout" not in str(exc):
            raise
        blocking = _clients(conn)
        _kill(conn, sorted(blocking))
        run(conn, statement, timeout=wait + 30)
        return blocking
    return {}


def fence_readonly(dsn: str, password: str | None = None, timeout: float = 10.0) -> int:
    """Make the primary refuse writes and end every other client connection; returns how
    many were killed. Killed transactions roll back; a transaction open before the fence
    cannot commit after it (read_only is checked at commit).

    Connections are killed until a scan finds none (a client may connect meanwhile), each
    waited for until gone; then a new session of an ordinary account must have its write
    refused (replication.write_probe)."""
    conn = connect(dsn, password)
    deadline = time.monotonic() + timeout
    try:
        killed = _set_read_only(conn, timeout)
        while True:
            alive = _clients(conn)
            pending = {i: w for i, w in alive.items() if i not in killed}
            if not alive:
                break
            if time.monotonic() >= deadline:
                names = ", ".join(f"{i} {w}" for i, w in sorted(alive.items())[:5])
                raise FencingFailed(f"{conn.safe()}: connections still open {timeout:g} s "
                                    f"after they were killed: {names}")
            if pending:
                _kill(conn, sorted(pending))
                killed.update(pending)
            else:
                time.sleep(0.05)  # rolling back
        outcome = write_probe(conn)
    except FencingFailed:
        raise
    except DatabaseUnavailable as exc:
        raise FencingFailed(f"cannot fence read-only: {exc}") from None
    except MedarkError as exc:
        raise FencingFailed(f"{conn.safe()}: fencing read-only failed: {exc}") from None
    if outcome != "refused":
        raise FencingFailed(f"{conn.safe()}: a new session can still write after "
                            "SET GLOBAL read_only = 1")
    return len(killed)


def unfence(dsn: str, password: str | None = None) -> None:
    """Undo `fence_readonly` (a switch that rolls back) and prove writes work again."""
    conn = connect(dsn, password)
    run(conn, "SET GLOBAL read_only = 0")
    if write_probe(conn) != "accepted":
        raise FencingFailed(f"{conn.safe()}: a new session's write is still refused after "
                            "SET GLOBAL read_only = 0")


def final_gtid(dsn: str, password: str | None = None) -> str:
    """After fencing: @@gtid_binlog_pos, the last GTID of each domain the primary wrote to
    its binlog. A transaction is acknowledged only after its binlog write, so every
    acknowledged commit is at or before it; the replica has them all once it has applied
    this position (replication.wait_replayed). Refused when the server is not read-only,
    where the position could still move."""
    conn = connect(dsn, password)
    rows = table(run(conn, "SELECT @@read_only AS ro, @@gtid_binlog_pos AS pos, "
                           "@@log_bin AS log_bin", names=True))
    if not rows or rows[0]["log_bin"] in ("0", "OFF"):
        raise FencingFailed(f"{conn.safe()}: binary logging is off, no GTID position to "
                            "wait for")
    if rows[0]["ro"] in ("0", "OFF"):
        raise FencingFailed(f"{conn.safe()} is not fenced (read_only is off): its final "
                            "GTID position could still move")
    return rows[0]["pos"]


def readonly_bypass_accounts(dsn: str, password: str | None = None) -> list[str]:
    """Accounts that read_only does not stop on this server (READ ONLY ADMIN; SUPER before
    10.11), so `dr status` can warn when an application account is among them."""
    conn = connect(dsn, password)
    version = value(conn, "@@version")
    major_minor = tuple(int(x) for x in version.split("-")[0].split(".")[:2])
    privileges = ["READ_ONLY ADMIN", "READ ONLY ADMIN"]
    if major_minor < (10, 11):
        privileges.append("SUPER")
    rows = table(run(conn, "SELECT DISTINCT GRANTEE FROM information_schema.USER_PRIVILEGES "
                           "WHERE PRIVILEGE_TYPE IN ("
                           + ", ".join(f"'{p}'" for p in privileges) + ") ORDER BY GRANTEE",
                     names=True))
    return [r["GRANTEE"] for r in rows]
