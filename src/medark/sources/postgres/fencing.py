"""Keeping an old primary from taking writes during a switch, and finding the position
that holds every commit it acknowledged.

`fence_readonly` keeps the server up (its standby keeps receiving WAL and the switch can
roll back in a second): it makes read-only the default for every session and ends the
client sessions that started before. It is a soft fence: a superuser session that runs
`SET default_transaction_read_only = off` can still write, so the clients' entry point
(the pooler) must point away from the server as well. `fence_stop` is the hard one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from medark.errors import DatabaseUnavailable, FencingFailed
from medark.sources.postgres import control
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import parse_lsn

WRITE_PROBE = "CREATE TEMP TABLE medark_write_probe (i int)"
"""A write that leaves nothing behind (a temporary table, rolled back); a read-only
transaction refuses it with SQLSTATE 25006. (pg_current_xact_id() is allowed there.)"""

PAGE_HEADER_SHORT = 24
PAGE_HEADER_LONG = 40
"""MAXALIGNed XLogPageHeaderData / XLogLongPageHeaderData (the long one starts a segment)."""


def _writable(dsn: Dsn) -> bool:
    """Whether a new session may write (a new one: it reads the reloaded configuration)."""
    with dsn.connect() as conn:
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(WRITE_PROBE)
        except psycopg.errors.ReadOnlySqlTransaction:
            return False
    return True


def _wait_writable(dsn: Dsn, want: bool, timeout: float) -> bool:
    """pg_reload_conf only signals the postmaster; wait until new sessions see it."""
    deadline = time.monotonic() + timeout
    while _writable(dsn) != want:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def fence_readonly(dsn: str, timeout: float = 10.0) -> int:
    """Make the primary refuse writes and end every other client session; returns how
    many were ended. Walsenders are kept: the standby must receive the last WAL.

    The sessions are ended only after new sessions are seen read-only, and each
    termination is waited for, so no session that could still commit survives."""
    target = Dsn.parse(dsn)
    try:
        with target.connect() as conn:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.execute("SELECT pg_reload_conf()")
            if not _wait_writable(target, False, timeout):
                raise FencingFailed(
                    f"{target.safe()}: new sessions can still write {timeout:g} s after "
                    "default_transaction_read_only = on and a reload")
            rows = conn.execute(
                "SELECT pid, pg_terminate_backend(pid, %s) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                (int(timeout * 1000),)).fetchall()
            # False also means the session ended by itself before the call reached it.
            missed = [int(str(pid)) for pid, ended in rows if not ended]
            alive = [str(r[0]) for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (missed,)).fetchall()]
    except psycopg.Error as exc:
        raise FencingFailed(f"{target.safe()}: fencing read-only failed: "
                            f"{str(exc).strip().splitlines()[0]}") from None
    except DatabaseUnavailable as exc:
        raise FencingFailed(f"cannot fence read-only: {exc}") from None
    if alive:
        raise FencingFailed(f"{target.safe()}: sessions {', '.join(alive)} did not end "
                            f"within {timeout:g} s")
    if _writable(target):
        raise FencingFailed(f"{target.safe()}: a write still succeeds after fencing")
    return len(rows)


def unfence(dsn: str, timeout: float = 10.0) -> None:
    """Undo `fence_readonly` (a switch that rolls back) and wait until writes work."""
    target = Dsn.parse(dsn)
    with target.connect() as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")
    if not _wait_writable(target, True, timeout):
        raise FencingFailed(f"{target.safe()}: still read-only {timeout:g} s after the "
                            "fence was removed")


def fence_stop(datadir: Path, timeout: float = 60.0, bin_dir: str | None = None) -> None:
    """pg_ctl stop -m fast. The walsenders send all WAL, the shutdown checkpoint
    included, before the server exits, so a connected standby ends up with all of it."""
    control.check_datadir(datadir)
    if not control.is_running(datadir, bin_dir):
        return
    done = control.stop(datadir, "fast", timeout, bin_dir)
    if done.returncode != 0 or control.is_running(datadir, bin_dir):
        raise FencingFailed(f"pg_ctl stop -m fast {datadir} failed: "
                            f"{control.last_line(done)}")


def record_end(insert_lsn: int, segment_size: int, block_size: int) -> int:
    """pg_current_wal_insert_lsn just past a page header is where the next record goes;
    the last record ended at the page boundary (that is the flush position then)."""
    if insert_lsn % segment_size == PAGE_HEADER_LONG:
        return insert_lsn - PAGE_HEADER_LONG
    if insert_lsn % block_size == PAGE_HEADER_SHORT:
        return insert_lsn - PAGE_HEADER_SHORT
    return insert_lsn


def final_flush_lsn(dsn: str, timeout: float = 10.0) -> int:
    """After fencing: the flush position once it covers everything inserted.

    A commit is acknowledged after its record is flushed (synchronous_commit on), so the
    flush position bounds them all once no session can commit. With synchronous_commit
    off a commit is acknowledged before the flush; the WAL writer flushes it within
    3 x wal_writer_delay, which is why this waits until flush reaches the insert
    position instead of reading flush once."""
    target = Dsn.parse(dsn)
    deadline = time.monotonic() + timeout
    with target.connect() as conn:
        # pg_settings gives wal_segment_size in bytes (since PG 11), wal_block_size too.
        row = _fetch(conn, "SELECT pg_current_wal_insert_lsn()::text, "
                     "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "
                     "(SELECT setting FROM pg_settings WHERE name = 'wal_block_size')")
        inserted = record_end(parse_lsn(str(row[0])), int(row[1]), int(row[2]))
        while True:
            flushed = parse_lsn(str(_fetch(conn, "SELECT pg_current_wal_flush_lsn()::text")[0]))
            if flushed >= inserted:
                return flushed
            if time.monotonic() >= deadline:
                raise FencingFailed(f"{target.safe()}: WAL flush stayed {inserted - flushed} "
                                    f"bytes short of the inserted WAL for {timeout:g} s")
            time.sleep(0.01)


def _fetch(conn: psycopg.Connection[Any], query: str) -> tuple[Any, ...]:
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def stopped_final_lsn(datadir: Path, bin_dir: str | None = None) -> int:
    """For a primary stopped by `fence_stop`: a position the standby has passed exactly
    when it replayed the shutdown checkpoint, the last record the primary wrote (one byte
    into it: records are replayed whole). A directory not cleanly shut down (a crash)
    has no such point, and is refused."""
    fields = control.controldata(datadir, bin_dir)
    state = fields.get("Database cluster state", "")
    if state != "shut down":
        raise FencingFailed(f"{datadir} is {state or 'in an unknown state'}, not cleanly "
                            "shut down: its last written position is not known")
    return parse_lsn(fields["Latest checkpoint location"]) + 1
