"""The WAL a primary killed with -9 wrote after a position (sources/postgres/waldump.py),
read from its data directory with pg_waldump: a failover's data-loss window. Checked
against what the server itself said before it died (commit timestamps, WAL positions) and
against where PostgreSQL's own crash recovery ends the WAL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pg_pair import pg_pair
from pg_server import (
    PgServer,
    as_pg,
    can_run_servers,
    chown_pg,
    free_port,
    make_base,
    pg_bin,
    wait_for,
)

from medark.errors import SourceError
from medark.sources.postgres.fencing import record_end
from medark.sources.postgres.replication import promote, wait_replayed
from medark.sources.postgres.wal import format_lsn, parse_lsn
from medark.sources.postgres.waldump import commit_time, wal_tail
from medark.sources.postgres.waldump import record_end as wal_record_end
from medark.util.pids import pid_alive

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))

AFTER_CUT = 5
"""Commits after the cut: four plain ones and one COMMIT PREPARED."""


@dataclass
class Crashed:
    server: PgServer
    cut: int
    before_last_commit: int
    commit_times: list[datetime]


def _micros(conn: psycopg.Connection[tuple[object, ...]], xid: str) -> datetime:
    row = conn.execute("SELECT (extract(epoch FROM pg_xact_commit_timestamp(%s::xid)) "
                       "* 1000000)::bigint", (xid,)).fetchone()
    assert row is not None and row[0] is not None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(str(row[0])))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def crashed() -> Iterator[Crashed]:
    bin_dir = pg_bin()
    assert bin_dir is not None
    server = PgServer(make_base(), free_port(), bin_dir, settings={
        "track_commit_timestamp": "on", "max_prepared_transactions": "2"})
    try:
        server.init()
        server.start()
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int, note text)")
            for i in range(3):
                conn.execute("INSERT INTO orders VALUES (%s, 'before')", (i,))
            at_cut = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            assert at_cut is not None
            cut = parse_lsn(str(at_cut[0]))
            xids: list[str] = []
            for i in range(10, 14):
                if i == 12:  # rolled back: never counted
                    conn.execute("BEGIN")
                    conn.execute("INSERT INTO orders VALUES (99, 'rolled back')")
                    conn.execute("ROLLBACK")
                row = conn.execute("INSERT INTO orders VALUES (%s, repeat('x', 3000)) "
                                   "RETURNING pg_current_xact_id()::text", (i,)).fetchone()
                assert row is not None
                xids.append(str(row[0]))
            conn.execute("BEGIN")
            row = conn.execute("INSERT INTO orders VALUES (20, 'prepared') RETURNING "
                               "pg_current_xact_id()::text, "
                               "pg_current_wal_insert_lsn()::text").fetchone()
            assert row is not None
            xids.append(str(row[0]))
            conn.execute("PREPARE TRANSACTION 'medark_waldump'")
            conn.execute("COMMIT PREPARED 'medark_waldump'")
            times = [_micros(conn, xid) for xid in xids]
        _kill9(server)
        yield Crashed(server, cut, parse_lsn(str(row[1])), times)
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


def test_counts_the_commits_after_the_cut_with_their_times(crashed: Crashed) -> None:
    tail = wal_tail(crashed.server.data, crashed.cut)
    assert tail.commits == AFTER_CUT
    assert tail.timeline == 1
    # The last commit record starts after the prepared transaction's insert.
    assert tail.end_lsn > crashed.before_last_commit
    assert tail.first_commit_at == crashed.commit_times[0]
    assert tail.last_commit_at == crashed.commit_times[-1]
    assert tail.first_commit_at is not None and tail.last_commit_at is not None
    assert tail.first_commit_at <= tail.last_commit_at
    assert tail.first_commit_at.tzinfo is not None
    # Not vacuous: the rollback's ABORT and the PREPARE reached the disk, and are not counted.
    done = as_pg([crashed.server.tool("pg_waldump"), "-p", str(crashed.server.data / "pg_wal"),
                  "-r", "Transaction", "-s", format_lsn(crashed.cut)])
    kinds = [line.split("desc: ")[1].split()[0] for line in done.stdout.splitlines()]
    assert kinds == ["COMMIT", "COMMIT", "ABORT", "COMMIT", "COMMIT", "PREPARE",
                     "COMMIT_PREPARED"]


def test_nothing_after_the_end(crashed: Crashed) -> None:
    end = wal_tail(crashed.server.data, crashed.cut).end_lsn
    tail = wal_tail(crashed.server.data, end)
    assert (tail.commits, tail.end_lsn, tail.first_commit_at, tail.last_commit_at) == \
        (0, end, None, None)


def test_the_end_is_where_crash_recovery_ends_the_wal(crashed: Crashed) -> None:
    """A copy of the crashed directory, started: PostgreSQL replays to the end of valid WAL
    and writes its end-of-recovery checkpoint right there."""
    end = wal_tail(crashed.server.data, crashed.cut).end_lsn
    copy = PgServer(make_base(), free_port(), crashed.server.bin_dir)
    try:
        shutil.copytree(crashed.server.data, copy.data, symlinks=True,
                        ignore=shutil.ignore_patterns("postmaster.pid"))
        chown_pg(copy.data)
        with open(copy.data / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            f.write(f"port = {copy.port}\nunix_socket_directories = '{copy.base}'\n")
        copy.start()
        copy.stop()  # immediate: no shutdown checkpoint after the end-of-recovery one
        done = subprocess.run([copy.tool("pg_controldata"), "-D", str(copy.data)],
                              capture_output=True, text=True, check=True,
                              env={**os.environ, "LC_ALL": "C"})
    finally:
        copy.stop()
        shutil.rmtree(copy.base, ignore_errors=True)
    fields = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    checkpoint = parse_lsn(fields["Latest checkpoint location"])
    assert record_end(checkpoint, 16 * 1024 * 1024, 8192) == end


def test_wal_already_removed_is_one_line(crashed: Crashed) -> None:
    with pytest.raises(SourceError, match="has no segment 000000010000000000000000 "
                                          r"\(nor of a later timeline\), which holds 0/100: "):
        wal_tail(crashed.server.data, 0x100)


def _kill9(server: PgServer) -> None:
    """kill -9 of the postmaster, then wait until its children noticed and exited."""
    pid = int((server.data / "postmaster.pid").read_text().split()[0])
    family = [pid, *_children(pid)]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(pid_alive(p) for p in family), timeout=60,
             what="the killed server's processes to exit")


@pytest.mark.parametrize("archiving", ["on", "off"])
def test_follows_the_timeline_switch_of_a_promoted_standby(archiving: str) -> None:
    """A standby promoted to timeline 2 and killed: from a position on timeline 1, two
    segments back, the WAL runs on timeline 1 to the switch point (archiving on: the old
    timeline's copy of the switch segment is renamed .partial, so to that segment's start),
    then on timeline 2."""
    with pg_pair(settings={"archive_mode": archiving,
                           "archive_command": "'/bin/true'"}) as pair:
        p, s = pair.primary, pair.standby
        p.sql("CREATE TABLE orders (id int)")
        cut = parse_lsn(p.sql("SELECT pg_current_wal_insert_lsn()"))
        for i in range(2):
            p.sql(f"INSERT INTO orders VALUES ({i})")
        p.sql("SELECT pg_switch_wal()")
        p.sql("INSERT INTO orders VALUES (2)")
        p.sql("SELECT pg_switch_wal()")
        p.sql("INSERT INTO orders VALUES (3)")
        flushed = parse_lsn(p.sql("SELECT pg_current_wal_flush_lsn()"))
        wait_replayed(s.dsn, flushed, timeout=60)
        promote(s.dsn, timeout=60)
        for i in range(4, 6):
            s.sql(f"INSERT INTO orders VALUES ({i})")
        _kill9(s)
        names = os.listdir(s.data / "pg_wal")
        assert any(n.endswith(".partial") for n in names) == (archiving == "on"), names
        tail = wal_tail(s.data, cut)
        assert (tail.commits, tail.timeline) == (6, 2)
        assert tail.end_lsn > flushed


@pytest.mark.parametrize(("start", "total", "end"), [
    (0x1531BE8, 34, 0x1531C10),                    # inside a page
    (0x1531FE0, 100, 0x1532000 + 24 + 72),         # across a page: its short header
    (0x1FFFFE0, 100, 0x2000000 + 40 + 72),         # across a segment: the long header
    (0x1531FD8, 40, 0x1532000),                    # ends on the page boundary
])
def test_record_end_skips_page_headers(start: int, total: int, end: int) -> None:
    assert wal_record_end(start, total, 16 * 1024 * 1024, 8192) == end


def test_commit_time_parses_pg_waldump_descriptions() -> None:
    assert commit_time("2026-12-05 22:00:00.123456 UTC") == \
        datetime(2026, 12, 5, 22, 0, 0, 123456, tzinfo=UTC)
    assert commit_time("4711: 2026-12-05 22:00:01.5 UTC; inval msgs: catcache 7") == \
        datetime(2026, 12, 5, 22, 0, 1, 500000, tzinfo=UTC)
    assert commit_time("no time here") is None
