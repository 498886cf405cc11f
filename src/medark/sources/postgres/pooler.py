"""Controlling a pgbouncer in front of PostgreSQL: the client switch of a DR switch-over.

Clients keep one address (the pooler's); a switch moves the pooler's server side, so
they see a delay, not an error. A planned switch is:

    PAUSE db  ->  (caller fences the old primary, promotes the standby)
              ->  repoint: rewrite the [databases] entry, RELOAD, RECONNECT
              ->  RESUME db

PAUSE returns once every in-flight transaction has finished and pgbouncer has closed
its server connections; new client queries wait in pgbouncer meanwhile instead of
failing. That only holds in `pool_mode = transaction` (or statement): in session mode
PAUSE waits for every client to disconnect.

The admin console (the `pgbouncer` virtual database, as a user in `admin_users`) speaks
the simple query protocol only, so every command goes through a `ClientCursor` on an
autocommit connection with `prepare_threshold=None` (psycopg's default cursor sends
the extended protocol, which the console rejects).

pgbouncer settings that decide how fast a switch is (tests/pgbouncer_server.py sets
them):
- `server_login_retry` (default 15 s): after a failed login to the server, pgbouncer
  waits this long before trying again. On a failover the old primary is gone, so this
  wait dominates the switch time; the test pooler sets 0.1 s.
- `query_wait_timeout` (default 120 s): how long a client may wait for a server
  connection, including while paused, before it gets an error. It must exceed the
  longest switch; the test pooler keeps 120 s.
- `server_connect_timeout` (default 15 s): a connect to a dead host hangs this long;
  the test pooler sets 2 s.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import ClientCursor

from medark.errors import DatabaseUnavailable, UsageError
from medark.util.files import atomic_write

CONNECT_TIMEOUT = 10
_NAME = re.compile(r"^[A-Za-z0-9_.\-*]+$")
_PARAM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


@dataclass(frozen=True)
class PoolerDatabase:
    """One row of SHOW DATABASES: where pgbouncer sends a database's clients."""

    name: str
    host: str | None
    port: int
    database: str
    pool_mode: str | None
    current_connections: int
    paused: bool
    disabled: bool


@dataclass(frozen=True)
class PoolerPool:
    """One row of SHOW POOLS: clients waiting and server connections, per database/user."""

    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    sv_login: int
    maxwait_seconds: float
    pool_mode: str | None


@dataclass(frozen=True)
class PoolerState:
    """What `dr status` shows of the pooler."""

    databases: list[PoolerDatabase]
    pools: list[PoolerPool]

    def database(self, name: str) -> PoolerDatabase | None:
        return next((d for d in self.databases if d.name == name), None)

    def pools_of(self, name: str) -> list[PoolerPool]:
        return [p for p in self.pools if p.database == name]


def _int(row: dict[str, object], key: str) -> int:
    value = row.get(key)
    return int(value) if value not in (None, "") else 0  # type: ignore[call-overload]


def _str(row: dict[str, object], key: str) -> str | None:
    value = row.get(key)
    return None if value is None else str(value)


def _db_name(db: str) -> str:
    """A database name goes into console commands unquoted; refuse anything else."""
    if not _NAME.match(db) or db == "*":
        raise UsageError(f"invalid pgbouncer database name {db!r}")
    return db


class PoolerConsole:
    """One connection to pgbouncer's admin console, kept open for the whole switch so no
    step waits on a new login."""

    def __init__(self, dsn: str, connect_timeout: int = CONNECT_TIMEOUT) -> None:
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None,
                                         cursor_factory=ClientCursor,
                                         connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(
                f"cannot reach the pgbouncer admin console: {_first_line(exc)}") from None

    def __enter__(self) -> PoolerConsole:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def command(self, sql: str) -> list[dict[str, object]]:
        """Run one console command; the rows it returns as dicts (none for most)."""
        try:
            with ClientCursor(self._conn) as cur:
                cur.execute(sql)
                if cur.description is None:
                    return []
                names = [c.name for c in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise DatabaseUnavailable(
                f"pgbouncer refused {sql.split()[0]}: {_first_line(exc)}") from None

    def pause(self, db: str) -> None:
        """Return once `db`'s in-flight transactions are done; new queries then wait."""
        self.command(f"PAUSE {_db_name(db)}")

    def resume(self, db: str) -> None:
        self.command(f"RESUME {_db_name(db)}")

    def reload(self) -> None:
        self.command("RELOAD")

    def reconnect(self, db: str) -> None:
        """Close `db`'s server connections as each is released: the next ones go to
        wherever the ini now points, and no client sees an error."""
        self.command(f"RECONNECT {_db_name(db)}")

    def kill(self, db: str) -> None:
        """Drop `db`'s clients and server connections at once (clients get errors): for a
        pool stuck on a dead server."""
        self.command(f"KILL {_db_name(db)}")

    def state(self) -> PoolerState:
        return pooler_state(self)


def pooler_state(console: PoolerConsole) -> PoolerState:
    """SHOW DATABASES and SHOW POOLS, typed (columns missing in another version read as 0)."""
    databases = [
        PoolerDatabase(
            name=str(r["name"]), host=_str(r, "host"), port=_int(r, "port"),
            database=str(r.get("database") or ""), pool_mode=_str(r, "pool_mode"),
            current_connections=_int(r, "current_connections"),
            paused=bool(_int(r, "paused")), disabled=bool(_int(r, "disabled")))
        for r in console.command("SHOW DATABASES")]
    pools = [
        PoolerPool(
            database=str(r["database"]), user=str(r["user"]), cl_active=_int(r, "cl_active"),
            cl_waiting=_int(r, "cl_waiting"), sv_active=_int(r, "sv_active"),
            sv_idle=_int(r, "sv_idle"), sv_used=_int(r, "sv_used"),
            sv_login=_int(r, "sv_login"),
            maxwait_seconds=_int(r, "maxwait") + _int(r, "maxwait_us") / 1e6,
            pool_mode=_str(r, "pool_mode"))
        for r in console.command("SHOW POOLS")]
    return PoolerState(databases, pools)


def repoint_ini(text: str, db: str, host: str, port: int) -> str:
    """`text` with the [databases] entry of `db` sent to host:port; every other line,
    comment and parameter of the entry (dbname, user, pool_size...) kept as it was."""
    _db_name(db)
    if not re.match(r"^[A-Za-z0-9_.:/\-]+$", host):
        raise UsageError(f"invalid pooler target host {host!r}")
    lines = text.splitlines(keepends=True)
    section = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip().lower()
            continue
        if section != "databases" or "=" not in stripped or stripped[0] in ";#":
            continue
        key, _, value = stripped.partition("=")
        if key.strip() != db:
            continue
        ending = line[len(line.rstrip("\r\n")):]
        lines[i] = f"{key.strip()} = {_set_params(value.strip(), host, port)}{ending}"
        return "".join(lines)
    raise UsageError(f"the pgbouncer ini has no [databases] entry for {db!r}")


def _set_params(value: str, host: str, port: int) -> str:
    params = [(m.group(1), m.group(2)) for m in _PARAM.finditer(value)]
    wanted = {"host": host, "port": str(port)}
    out = [(k, wanted.pop(k) if k in wanted else v) for k, v in params]
    out.extend(wanted.items())
    return " ".join(f"{k}={v}" for k, v in out)


def repoint(console: PoolerConsole, ini_path: Path, db: str, host: str, port: int) -> None:
    """Send `db`'s clients to host:port: rewrite the ini atomically (keeping its owner and
    mode, so pgbouncer can still read it), RELOAD, then RECONNECT so no server connection
    to the old host is reused. Inside a PAUSE the pool is already empty and RECONNECT is
    a no-op; outside one (a failover) it retires the old connections as they free up."""
    try:
        st = ini_path.stat()
        text = ini_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read pgbouncer ini {ini_path}: {exc.strerror}") from None
    new = repoint_ini(text, db, host, port)
    try:
        atomic_write(ini_path, new.encode("utf-8"), mode=st.st_mode & 0o7777,
                     owner=(st.st_uid, st.st_gid) if os.geteuid() == 0 else None)
    except OSError as exc:
        raise UsageError(f"cannot rewrite pgbouncer ini {ini_path}: {exc.strerror}") from None
    console.reload()
    console.reconnect(db)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
