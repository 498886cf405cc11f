"""The PostgreSQL operations a DR switch is built from, against a real throwaway primary
and streaming standby (tests/pg_pair.py): state and lag, the read-only fence, a planned
switch by hand that loses no acknowledged commit, and the old primary rewound into a
standby of the new one."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import psycopg
import pytest
from pg_pair import PgPair, pg_pair
from pg_server import can_run_servers, wait_for

from medark.errors import FencingFailed, StandbyNotReady
from medark.sources.postgres.fencing import (
    fence_readonly,
    fence_stop,
    final_flush_lsn,
    record_end,
    stopped_final_lsn,
    unfence,
)
from medark.sources.postgres.reinstate import reinstate_as_standby
from medark.sources.postgres.replication import (
    PRIMARY,
    STANDBY,
    node_state,
    promote,
    replication_lag,
    wait_replayed,
)
from medark.sources.postgres.wal import parse_lsn
from medark.util.pids import pid_alive

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


@pytest.fixture(scope="module")
def pair() -> Iterator[PgPair]:
    """Shared by the tests that leave the roles as they found them."""
    with pg_pair() as built:
        yield built


@pytest.fixture
def fresh_pair() -> Iterator[PgPair]:
    with pg_pair() as built:
        yield built


def test_lag_in_bytes_and_seconds_reaches_zero_after_catch_up(pair: PgPair) -> None:
    p, s = pair.primary, pair.standby
    p.sql("CREATE TABLE lag_rows (id int, pad text)")
    wait_for(lambda: replication_lag(p.dsn, s.dsn).bytes == 0, what="the standby to catch up")
    s.sql("SELECT pg_wal_replay_pause()")
    try:
        wait_for(lambda: node_state(s.dsn).replay_paused, what="replay to pause")
        before = p.sql("SELECT pg_current_wal_flush_lsn()")
        p.sql("INSERT INTO lag_rows SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g")
        written = int(p.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '{before}')"))
        lag = replication_lag(p.dsn, s.dsn)
        assert lag.bytes >= written > 0
        # Behind in bytes is never 0 seconds (nor an unknown shown as 0).
        assert lag.seconds is not None and lag.seconds > 0, lag
        standby = node_state(s.dsn)
        assert standby.role == STANDBY and standby.timeline == 1
        assert standby.replay_lsn is not None and standby.replay_lsn < lag.primary_flush_lsn
    finally:
        s.sql("SELECT pg_wal_replay_resume()")
    wait_for(lambda: replication_lag(p.dsn, s.dsn).bytes == 0, what="the standby to catch up")
    caught_up = replication_lag(p.dsn, s.dsn)
    assert caught_up.seconds == 0.0 and caught_up.basis == "caught up"
    assert s.sql("SELECT count(*) FROM lag_rows") == "2000"
    primary = node_state(p.dsn)
    assert primary.role == PRIMARY and primary.timeline == 1
    assert primary.flush_lsn is not None and primary.flush_lsn >= caught_up.standby_replay_lsn


def test_fence_readonly_refuses_writes_and_unfence_restores(pair: PgPair) -> None:
    p = pair.primary
    p.sql("CREATE TABLE fence_rows (id int)")
    with psycopg.connect(p.dsn, autocommit=True) as idle:
        idle.execute("SELECT 1")
        try:
            ended = fence_readonly(p.dsn)
            assert ended >= 1
            # fencing again is harmless (it may end a session a loaded server was still
            # closing, so only its state is checked)
            assert fence_readonly(p.dsn) >= 0
            assert p.sql("SHOW default_transaction_read_only") == "on"
            with pytest.raises(psycopg.OperationalError):  # its session was ended
                idle.execute("INSERT INTO fence_rows VALUES (1)")
            with psycopg.connect(p.dsn, autocommit=True) as fresh, \
                    pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                fresh.execute("INSERT INTO fence_rows VALUES (2)")
            # The standby's walsender was kept.
            assert p.sql("SELECT count(*) FROM pg_stat_replication "
                         "WHERE state = 'streaming'") == "1"
        finally:
            unfence(p.dsn)
            unfence(p.dsn)
    p.sql("INSERT INTO fence_rows VALUES (3)")
    assert p.sql("SELECT array_agg(id) FROM fence_rows") == "{3}"


def test_wait_replayed_names_the_missing_bytes(pair: PgPair) -> None:
    p, s = pair.primary, pair.standby
    s.sql("SELECT pg_wal_replay_pause()")
    try:
        wait_for(lambda: node_state(s.dsn).replay_paused, what="replay to pause")
        p.sql("CREATE TABLE paused_rows AS SELECT g FROM generate_series(1, 1000) g")
        target = parse_lsn(p.sql("SELECT pg_current_wal_flush_lsn()"))
        with pytest.raises(StandbyNotReady, match=r"\d+ bytes short of .*replay is paused"):
            wait_replayed(s.dsn, target, timeout=0.5)
    finally:
        s.sql("SELECT pg_wal_replay_resume()")
    assert (wait_replayed(s.dsn, target, timeout=30).replay_lsn or 0) >= target


@pytest.mark.parametrize(("insert", "end"), [
    (0x3000000 + 40, 0x3000000),          # just past a segment's long page header
    (0x3002000 + 24, 0x3002000),          # just past a page's short header
    (0x3002000 + 0x1F0, 0x3002000 + 0x1F0),  # inside a page: the record ends there
])
def test_lastrecord_end_from_the_insert_position(insert: int, end: int) -> None:
    assert record_end(insert, 16 * 1024 * 1024, 8192) == end


def _write_until_stopped(dsn: str, acked: list[int], lsns: list[int]) -> None:
    """One row per autocommit transaction; an id is recorded once its commit returned,
    with the WAL position just before its commit record."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(1, 1_000_000):
                row = conn.execute("INSERT INTO orders VALUES (%s) "
                                   "RETURNING pg_current_wal_insert_lsn()::text", (i,)).fetchone()
                assert row is not None
                acked.append(i)
                lsns.append(parse_lsn(str(row[0])))
    except psycopg.Error:
        pass  # the fence ended the session


def test_planned_switch_loses_nothing_and_old_primary_rejoins(fresh_pair: PgPair) -> None:
    old, new = fresh_pair.primary, fresh_pair.standby
    old.sql("CREATE TABLE orders (id int PRIMARY KEY)")
    acked: list[int] = []
    lsns: list[int] = []
    writer = threading.Thread(target=_write_until_stopped, args=(old.dsn, acked, lsns))
    writer.start()
    wait_for(lambda: len(acked) >= 500 or not writer.is_alive(), what="500 writes")
    fence_readonly(old.dsn)
    writer.join(timeout=30)
    assert not writer.is_alive() and len(acked) >= 500

    final = final_flush_lsn(old.dsn)
    assert final > max(lsns)  # past the last acknowledged commit record
    replayed = wait_replayed(new.dsn, final, timeout=30)
    assert (replayed.replay_lsn or 0) >= final
    promoted = promote(new.dsn, timeout=30)
    assert promoted.role == PRIMARY and promoted.timeline == 2

    on_new = {int(x) for x in new.sql("SELECT id FROM orders").split()}
    assert set(acked) <= on_new, f"lost {len(set(acked) - on_new)} acknowledged rows"
    assert new.sql("SELECT pg_is_in_recovery()") == "f"

    # Split brain on purpose: the old primary takes one write after the fork, which the
    # rewind must undo.
    with psycopg.connect(old.dsn, autocommit=True) as rogue:
        rogue.execute("SET default_transaction_read_only = off")
        rogue.execute("INSERT INTO orders VALUES (-1)")
    result = reinstate_as_standby(old.data, new.dsn, "medark_old_primary", timeout=60,
                                  log_file=old.base / "server.log")
    assert result.rewound and result.timeline == 2

    rejoined = node_state(old.dsn)
    assert rejoined.role == STANDBY and rejoined.slot_name == "medark_old_primary"
    assert rejoined.timeline == 2
    new.sql("INSERT INTO orders VALUES (1000000)")
    wait_for(lambda: old.sql("SELECT count(*) FROM orders WHERE id = 1000000") == "1",
             what="a row written on the new primary to reach the old one", detail=old.log)
    assert old.sql("SELECT count(*) FROM orders WHERE id = -1") == "0"
    # Its read-only fence is gone: promoted again, it would take writes.
    assert old.sql("SHOW default_transaction_read_only") == "off"


def test_switch_by_stopping_needs_no_rewind(fresh_pair: PgPair) -> None:
    old, new = fresh_pair.primary, fresh_pair.standby
    old.sql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 500) g")
    fence_stop(old.data)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(old.dsn, connect_timeout=5).close()
    fence_stop(old.data)  # already stopped: nothing to do
    # The walsender sent the shutdown checkpoint before the server exited.
    wait_replayed(new.dsn, stopped_final_lsn(old.data), timeout=30)
    promote(new.dsn, timeout=30)
    assert new.sql("SELECT count(*) FROM orders") == "500"

    result = reinstate_as_standby(old.data, new.dsn, "medark_old_primary", timeout=60,
                                  log_file=old.base / "server.log")
    assert not result.rewound and result.timeline == 2
    new.sql("INSERT INTO orders VALUES (501)")
    wait_for(lambda: old.sql("SELECT count(*) FROM orders") == "501",
             what="the reinstated standby to replay", detail=old.log)


def test_crashed_primary_rejoins_after_failover(fresh_pair: PgPair) -> None:
    old, new = fresh_pair.primary, fresh_pair.standby
    old.sql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 100) g")
    pid = int((old.data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the primary to die")
    with pytest.raises(FencingFailed, match="not cleanly shut down"):
        stopped_final_lsn(old.data)
    promote(new.dsn, timeout=30)
    new.sql("INSERT INTO orders VALUES (101)")
    # pg_rewind recovers the crashed directory (single-user mode) before it rewinds.
    reinstate_as_standby(old.data, new.dsn, "medark_old_primary", timeout=60,
                         log_file=old.base / "server.log")
    wait_for(lambda: old.sql("SELECT count(*) FROM orders WHERE id = 101") == "1",
             what="the reinstated standby to replay", detail=old.log)

