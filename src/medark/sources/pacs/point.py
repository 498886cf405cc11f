"""A PACS's database point on PostgreSQL: the WAL position and time, and the index's
file references in a snapshot that holds exactly the commits before that position
(docs/pacs.md, "The order of a group backup"). Nothing here touches the repository.

PostgreSQL makes a commit visible after its WAL record is written (after the flush, and
after a synchronous standby's answer), so a plain snapshot and a WAL position read next to
it can disagree by the commits in flight. A SHARE lock on the index's table settles that:
it waits for every transaction writing the table to end, and no other can write it while
it is held, so a snapshot taken under it and the insert position read then agree. The
lock is held for a few milliseconds: the snapshot is exported, imported by a second
connection, and the lock released before the references are read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from medark.errors import DatabasePermission, DatabaseUnavailable, SourceError
from medark.sources.pacs.index import Reference, read_references
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import parse_lsn

LOCKED_TABLES = {"orthanc": "attachedfiles", "dcm4chee": "location"}
"""The table each known kind's references come from (unquoted, as both create it)."""
LOCK_TIMEOUT = 2.0
"""Seconds one try waits for the lock: writers queue behind a waiting SHARE request,
so the PACS may pause this long, never more."""
LOCK_TRIES = 3


@dataclass
class DatabasePoint:
    lsn: int
    """pg_current_wal_insert_lsn() when the point was taken: the restore's recovery target."""
    time: datetime
    """The server's clock at that moment."""
    references: list[Reference]
    past: int
    """A WAL position past the point that the archive must hold: recovery stops at the
    first record at or after the point, so that record must be readable."""
    switched: bool
    """pg_switch_wal() closed the segment holding the point (so archive_command sends it
    now, not when the segment fills)."""
    switch_error: str = ""
    exact: bool = True
    """The references are exactly the index at `lsn` (taken under the lock)."""
    inexact_reason: str = ""
    """Why not, when the lock could not be taken (empty for the generic kind, whose
    table is not known)."""


@dataclass
class _Snapshot:
    lsn: int
    time: datetime


def take_point(dsn: Dsn, kind: str, root: str, query: str | None,
               lock_timeout: float = LOCK_TIMEOUT, tries: int = LOCK_TRIES) -> DatabasePoint:
    """The point and the references the database holds at it, then a WAL switch."""
    table = LOCKED_TABLES.get(kind)
    with _classified(dsn, kind), dsn.connect() as reader:
        reader.autocommit = False
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        locked = "" if table is None else _import_locked_snapshot(
            dsn, reader, table, lock_timeout, tries)
        # Without the lock, the snapshot is taken as this statement starts and the
        # position read after: every commit it sees ends before the position, and a
        # commit in flight may fall between them (docs/pacs.md).
        snap = locked if isinstance(locked, _Snapshot) else _position(reader)
        # a server-side cursor: the rows arrive in batches, not all at once
        with reader.cursor(name="medark_pacs_references") as cur:
            references = read_references(cur, kind, root, query)
        reader.rollback()
        reader.autocommit = True
        past, switched, error = _close_segment(reader, snap.lsn)
    reason = locked if isinstance(locked, str) else ""
    return DatabasePoint(snap.lsn, snap.time, references, past, switched, error,
                         exact=isinstance(locked, _Snapshot), inexact_reason=reason)


def _import_locked_snapshot(dsn: Dsn, reader: psycopg.Connection[tuple[object, ...]],
                            table: str, lock_timeout: float, tries: int) -> _Snapshot | str:
    """The reader's transaction gets the snapshot taken under `table`'s SHARE lock, and
    the position read there; or the reason it could not (no right to the lock, or writers
    holding the table past every try), nothing imported."""
    reason = ""
    for _ in range(max(1, tries)):
        with dsn.connect() as holder:
            holder.autocommit = False
            try:
                holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                holder.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{int(lock_timeout * 1000)}ms")))
                holder.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                    sql.Identifier(table)))
            except psycopg.errors.LockNotAvailable:
                reason = (f"writers held {table} through {tries} tries of "
                          f"{lock_timeout:g} s for its lock")
                continue
            except (psycopg.errors.InsufficientPrivilege,
                    psycopg.errors.ReadOnlySqlTransaction) as exc:
                return f"{table} cannot be locked in SHARE mode ({str(exc).splitlines()[0]})"
            # the holder's snapshot is taken by its first query, under the lock
            row = holder.execute("SELECT pg_export_snapshot(), "
                                 "pg_current_wal_insert_lsn()::text, now()").fetchone()
            assert row is not None and isinstance(row[2], datetime)
            reader.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                sql.Literal(str(row[0]))))
            holder.rollback()  # the lock is released; the imported snapshot stays
            return _Snapshot(parse_lsn(str(row[1])), row[2])
    return reason


def _position(reader: psycopg.Connection[tuple[object, ...]]) -> _Snapshot:
    row = reader.execute("SELECT pg_current_wal_insert_lsn()::text, now()").fetchone()
    assert row is not None and isinstance(row[1], datetime)
    return _Snapshot(parse_lsn(str(row[0])), row[1])


def _close_segment(conn: psycopg.Connection[tuple[object, ...]], lsn: int
                   ) -> tuple[int, bool, str]:
    """Recovery to an LSN stops at the first record starting at or after it, so one must
    follow the point in the archive: a logical message (harmless to every reader), then
    a switch so archive_command sends its segment now."""
    try:
        row = conn.execute("SELECT pg_logical_emit_message(false, 'medark', "
                           "'consistency group point')::text").fetchone()
        past = parse_lsn(str(row[0])) if row else lsn + 1
        conn.execute("SELECT pg_switch_wal()")
    except psycopg.Error as exc:
        return lsn + 1, False, str(exc).splitlines()[0]
    return past, True, ""


@contextmanager
def _classified(dsn: Dsn, kind: str) -> Iterator[None]:
    """The database's errors as medark's, each one line naming the server."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabasePermission(f"{dsn.safe()}: cannot read the PACS index: "
                                 f"{str(exc).splitlines()[0]}") from None
    except psycopg.errors.UndefinedTable as exc:
        raise SourceError(f"{dsn.safe()}: not a {kind} index ({str(exc).splitlines()[0]})"
                          "; check the DSN's dbname and pacs =") from None
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"{dsn.safe()}: {str(exc).splitlines()[0]}") from None
    except psycopg.Error as exc:
        raise SourceError(f"{dsn.safe()}: reading the PACS index failed: "
                          f"{str(exc).splitlines()[0]}") from None
