"""A PACS's database point on PostgreSQL: in one REPEATABLE READ transaction, the WAL
position and time, then the index's file references in that transaction's snapshot
(docs/pacs.md, "The order of a group backup"). Nothing here touches the repository."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from medark.errors import DatabasePermission, DatabaseUnavailable, SourceError
from medark.sources.pacs.index import Reference, read_references
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import parse_lsn


@dataclass
class DatabasePoint:
    lsn: int
    """pg_current_wal_lsn() when the point was taken: the restore's recovery target."""
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


def take_point(dsn: Dsn, kind: str, root: str, query: str | None) -> DatabasePoint:
    """The point and the references the database holds at it, then a WAL switch."""
    with dsn.connect() as conn:
        try:
            conn.autocommit = False
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # The snapshot is taken as this statement starts, the position read after:
            # every commit the snapshot sees ends before it (the insert position, not the
            # write position, so an asynchronous commit is counted too).
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text, now()").fetchone()
            assert row is not None
            lsn, when = parse_lsn(str(row[0])), row[1]
            assert isinstance(when, datetime)
            # a server-side cursor: the rows arrive in batches, not all at once
            with conn.cursor(name="medark_pacs_references") as cur:
                references = read_references(cur, kind, root, query)
            conn.rollback()
            conn.autocommit = True
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
        # Recovery to an LSN stops at the first record starting at or after it, so one
        # must follow the point in the archive: a logical message (harmless to every
        # reader), then a switch so archive_command sends its segment now.
        past, switched, error = lsn + 1, True, ""
        try:
            row = conn.execute("SELECT pg_logical_emit_message(false, 'medark', "
                               "'consistency group point')::text").fetchone()
            past = parse_lsn(str(row[0])) if row else past
            conn.execute("SELECT pg_switch_wal()")
        except psycopg.Error as exc:
            switched, error = False, str(exc).splitlines()[0]
    return DatabasePoint(lsn, when, references, past, switched, error)
