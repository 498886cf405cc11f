"""Talking to a PostgreSQL server: connection strings, identity, permissions, slots.

A DSN may carry a password; it never reaches argv, logs or error messages: `split_dsn`
moves it into the environment of the client tools (PGPASSWORD), and errors show
`safe_dsn`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import psycopg
from psycopg import conninfo as pg_conninfo

from medark.errors import DatabasePermission, DatabaseUnavailable, SlotMissing, UsageError
from medark.sources.postgres.wal import parse_lsn

CONNECT_TIMEOUT = 10
_PERMISSION_HINTS = (
    "must be superuser or replication role",
    "permission denied to start WAL sender",
    "no pg_hba.conf entry for replication",
    "must be superuser or have privileges",
)


@dataclass(frozen=True)
class Dsn:
    params: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Dsn:
        try:
            params = pg_conninfo.conninfo_to_dict(text)
        except psycopg.ProgrammingError as exc:
            raise UsageError(f"invalid --dsn: {_first_line(exc)}") from None
        return cls({k: str(v) for k, v in params.items() if v is not None})

    def without_password(self) -> str:
        return pg_conninfo.make_conninfo(
            **{k: v for k, v in self.params.items() if k != "password"})

    def environment(self) -> dict[str, str]:
        """For client tools: the password (if any) by environment, never by argv."""
        env = dict(os.environ)
        if "password" in self.params:
            env["PGPASSWORD"] = self.params["password"]
        return env

    def safe(self) -> str:
        host = self.params.get("host", "local socket")
        port = self.params.get("port", "5432")
        user = self.params.get("user", "")
        return f"{user + '@' if user else ''}{host}:{port}"

    def connect(self, replication: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        params = dict(self.params)
        params.setdefault("connect_timeout", str(CONNECT_TIMEOUT))
        params.setdefault("application_name", "medark")
        if replication:
            params["replication"] = "true"
        try:
            return psycopg.connect(pg_conninfo.make_conninfo(**params), autocommit=True)
        except psycopg.OperationalError as exc:
            message = _first_line(exc)
            if any(h in message for h in _PERMISSION_HINTS):
                raise DatabasePermission(
                    f"{self.safe()}: {message} (grant REPLICATION to the role and allow "
                    "replication connections in pg_hba.conf)") from None
            raise DatabaseUnavailable(f"cannot connect to {self.safe()}: {message}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = re.sub(r"password=\S+", "password=***", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # libpq prefixes "connection to server at ... failed:"; the reason is what follows.
    return " ".join(lines[:2]) if lines else type(exc).__name__


@dataclass(frozen=True)
class ServerIdentity:
    system_id: str
    timeline: int
    current_lsn: int
    version_num: int
    version: str
    segment_size: int
    in_recovery: bool


def identify(dsn: Dsn) -> ServerIdentity:
    """IDENTIFY_SYSTEM over a replication connection (which also proves the role may
    stream WAL and take base backups), then the settings a restore needs."""
    with dsn.connect(replication=True) as repl:
        result = repl.pgconn.exec_(b"IDENTIFY_SYSTEM")
        if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            raise DatabasePermission(
                f"{dsn.safe()}: IDENTIFY_SYSTEM failed: "
                f"{(result.error_message or b'').decode(errors='replace').strip()}")
        system_id = (result.get_value(0, 0) or b"").decode()
        timeline = int((result.get_value(0, 1) or b"0").decode())
        lsn = parse_lsn((result.get_value(0, 2) or b"0/0").decode())
    with dsn.connect() as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'),"
            " current_setting('wal_segment_size'), pg_is_in_recovery()").fetchone()
    assert row is not None
    return ServerIdentity(system_id, timeline, lsn, int(str(row[0])), str(row[1]),
                          _size_setting(str(row[2])), bool(row[3]))


def _size_setting(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([kMG]?B)?", text.strip())
    if not match:
        raise UsageError(f"unexpected wal_segment_size {text!r}")
    unit = {"kB": 1024, "MB": 1024**2, "GB": 1024**3, None: 1, "B": 1}[match.group(2)]
    return int(match.group(1)) * unit


def require_slot(dsn: Dsn, slot: str) -> None:
    with dsn.connect() as conn:
        row = conn.execute(
            "SELECT slot_type FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
    if row is None:
        raise SlotMissing(
            f"replication slot {slot!r} does not exist on {dsn.safe()} (create it with "
            f"`SELECT pg_create_physical_replication_slot('{slot}')` or pass --create-slot)")
    if row[0] != "physical":
        raise UsageError(f"replication slot {slot!r} is a {row[0]} slot, not a physical one")


def slot_lag(dsn: Dsn) -> list[dict[str, object]]:
    """Each physical slot: whether a receiver is attached and how many bytes of WAL the
    server holds for it (what the stream has not yet confirmed)."""
    with dsn.connect() as conn:
        rows = conn.execute(
            "SELECT slot_name, active, restart_lsn::text, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name"
        ).fetchall()
    return [{"slot": r[0], "active": bool(r[1]), "restart_lsn": r[2],
             "lag_bytes": None if r[3] is None else int(str(r[3]))} for r in rows]
