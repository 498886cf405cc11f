"""The MariaDB operations a DR switch is built from, against a real throwaway primary and
GTID replica (tests/mariadb_pair.py): state and lag, the read-only fence, a planned switch
by hand that loses no committed transaction, the old primary reinstated as a replica of
the new one, and an old primary with errant transactions refused."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from mariadb_pair import APP_PASSWORD, APP_USER, MariaPair, ReplServer, mariadb_pair, wait_for
from mysql_server import BACKUP_PASSWORD, can_run_servers

from medark.errors import (
    DatabaseUnavailable,
    FencingFailed,
    StandbyNotReady,
    SwitchRefused,
)
from medark.sources.mysql.fencing import (
    fence_readonly,
    final_gtid,
    readonly_bypass_accounts,
    unfence,
)
from medark.sources.mysql.reinstate import ReplicationSource, reinstate_as_standby
from medark.sources.mysql.replication import (
    FENCED,
    PRIMARY,
    STANDBY,
    node_state,
    promote,
    replication_lag,
    wait_replayed,
)

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))
PW = BACKUP_PASSWORD


@pytest.fixture(scope="module")
def pair() -> Iterator[MariaPair]:
    """Shared by the tests that leave the roles as they found them."""
    with mariadb_pair() as built:
        yield built


@pytest.fixture
def fresh_pair() -> Iterator[MariaPair]:
    with mariadb_pair() as built:
        yield built


def _visits(server: ReplServer) -> int:
    return int(server.value("COUNT(*) FROM his.visits"))


def _write(server: ReplServer, n: int, note: str = "visit") -> None:
    server.app_sql("; ".join(f"INSERT INTO his.visits (note) VALUES ('{note} {i}')"
                             for i in range(n)))


def test_node_state_of_primary_and_replica(pair: MariaPair) -> None:
    p, r = pair.primary, pair.replica
    primary = node_state(p.admin_dsn, PW)
    assert primary.role == PRIMARY and not primary.read_only and not primary.replicating
    assert primary.server_id == 1 and primary.gtid_strict_mode and primary.log_bin
    assert primary.gtid_binlog_pos.startswith("0-1-")
    replica = node_state(r.admin_dsn, PW)
    assert replica.role == STANDBY and replica.read_only and replica.streaming
    assert replica.server_id == 2 and replica.log_slave_updates
    assert (replica.master_host, replica.master_port) == ("127.0.0.1", p.port)
    assert replica.using_gtid == "Slave_Pos"
    assert replica.gtid_slave_pos == primary.gtid_binlog_pos
    assert replica.seconds_behind_master == 0
    assert replica.last_io_error == replica.last_sql_error == ""
    assert set(replica.as_dict()) >= {"role", "gtid_slave_pos", "slave_io_running"}


def test_lag_counts_transactions_and_is_never_zero_seconds_while_behind(
        pair: MariaPair) -> None:
    p, r = pair.primary, pair.replica
    wait_for(lambda: replication_lag(p.dsn, r.dsn).transactions == 0, 30, "catch-up")
    caught_up = replication_lag(p.admin_dsn, r.admin_dsn, PW, PW)
    assert caught_up.seconds == 0.0 and caught_up.basis == "caught up"
    r.root_sql("STOP SLAVE SQL_THREAD")
    try:
        _write(p, 5)  # five autocommit transactions
        lag = replication_lag(p.admin_dsn, r.admin_dsn, PW, PW)
        assert lag.transactions == 5 and lag.domains == {0: 5}, lag
        assert lag.seconds is None and "SQL No" in lag.basis, lag
        assert lag.primary_gtid == p.value("@@gtid_binlog_pos")
        with pytest.raises(StandbyNotReady, match="short of"):
            wait_replayed(r.admin_dsn, lag.primary_gtid, 0.5, PW)
    finally:
        r.root_sql("START SLAVE SQL_THREAD")
    state = wait_replayed(r.admin_dsn, p.value("@@gtid_binlog_pos"), 30, PW)
    assert state.gtid_slave_pos == p.value("@@gtid_binlog_pos")
    assert replication_lag(p.dsn, r.dsn).transactions == 0
    with pytest.raises(StandbyNotReady, match="not a standby"):
        replication_lag(r.dsn, p.dsn)


def test_promote_refuses_received_but_unapplied_transactions(pair: MariaPair) -> None:
    p, r = pair.primary, pair.replica
    r.root_sql("STOP SLAVE SQL_THREAD")
    try:
        _write(p, 2)
        target = p.value("@@gtid_binlog_pos")
        wait_for(lambda: node_state(r.admin_dsn, PW).gtid_io_pos == target, 30, "receipt")
        with pytest.raises(StandbyNotReady, match="received but not applied, domain 0: 2 "):
            promote(r.admin_dsn, PW)
        assert node_state(r.admin_dsn, PW).role == STANDBY  # untouched
    finally:
        r.root_sql("START SLAVE SQL_THREAD")
    wait_replayed(r.admin_dsn, target, 30, PW)


def test_errors_are_one_line_without_the_password(pair: MariaPair) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        node_state(pair.primary.admin_dsn, "Wrong-secret-pw")
    assert "Wrong-secret-pw" not in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(StandbyNotReady, match="nothing to promote"):
        promote(pair.primary.admin_dsn, PW)


def test_fence_and_unfence_keep_replication_and_block_new_writes(pair: MariaPair) -> None:
    p, r = pair.primary, pair.replica
    assert f"'{APP_USER}'@'%'" not in readonly_bypass_accounts(p.admin_dsn, PW)
    with pytest.raises(FencingFailed, match="not fenced"):
        final_gtid(p.admin_dsn, PW)
    assert fence_readonly(p.admin_dsn, PW) >= 0
    try:
        assert node_state(p.admin_dsn, PW).role == FENCED
        with pytest.raises(RuntimeError, match="read-only"):
            _write(p, 1)
        # The binlog dump thread was kept: the replica is still connected.
        assert node_state(r.admin_dsn, PW).streaming
        assert "Binlog Dump" in p.root_sql("SELECT COMMAND FROM "
                                           "information_schema.PROCESSLIST")
        assert final_gtid(p.admin_dsn, PW) == p.value("@@gtid_binlog_pos")
    finally:
        unfence(p.admin_dsn, PW)
    _write(p, 1, "after unfence")
    assert node_state(p.admin_dsn, PW).role == PRIMARY


def test_fence_gets_past_a_long_running_write(pair: MariaPair) -> None:
    """A statement that holds off SET GLOBAL read_only is killed, then the fence is set."""
    p = pair.primary
    before = _visits(p)
    session = _app_session(p, "INSERT INTO his.visits (note) SELECT SLEEP(120);\n")
    try:
        wait_for(lambda: "SLEEP(120)" in p.root_sql(
            "SELECT IFNULL(INFO, '') FROM information_schema.PROCESSLIST"), 30, "the write")
        assert fence_readonly(p.admin_dsn, PW, timeout=4) >= 1
        assert node_state(p.admin_dsn, PW).read_only
    finally:
        _close(session)
        unfence(p.admin_dsn, PW)
    assert _visits(p) == before


def _app_session(server: ReplServer, script: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["mariadb", "--no-defaults", "--protocol=TCP", "--host=127.0.0.1",
         f"--port={server.port}", f"--user={APP_USER}", "--batch"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, MYSQL_PWD=APP_PASSWORD))
    assert proc.stdin is not None
    proc.stdin.write(script.encode())
    proc.stdin.flush()
    return proc


def _close(session: subprocess.Popen[bytes]) -> None:
    assert session.stdin is not None
    session.stdin.close()
    session.wait(timeout=30)


def _open_transaction(server: ReplServer) -> subprocess.Popen[bytes]:
    """An application session inside an uncommitted write, left open."""
    proc = _app_session(server, "BEGIN; INSERT INTO his.visits (note) VALUES ('open');\n")
    wait_for(lambda: APP_USER in server.root_sql(
        "SELECT USER FROM information_schema.PROCESSLIST"), 30, "the app session")
    return proc


def test_planned_switch_and_reinstatement_lose_nothing(fresh_pair: MariaPair) -> None:
    old, new = fresh_pair.primary, fresh_pair.replica
    _write(old, 20)
    session = _open_transaction(old)
    try:
        assert fence_readonly(old.admin_dsn, PW, timeout=20) >= 1
        assert APP_USER not in old.root_sql("SELECT USER FROM information_schema.PROCESSLIST")
    finally:
        _close(session)
    with pytest.raises(RuntimeError, match="read-only"):
        _write(old, 1)
    gtid = final_gtid(old.admin_dsn, PW)
    wait_replayed(new.admin_dsn, gtid, 30, PW)
    promoted = promote(new.admin_dsn, PW)
    assert promoted.role == PRIMARY and not promoted.read_only and not promoted.replicating
    assert _visits(new) == 20  # every committed row, not the uncommitted one
    _write(new, 7, "on the new primary")
    source = ReplicationSource("127.0.0.1", new.port, "repl", "Repl-Hosp1tal-pw")
    state = reinstate_as_standby(old.admin_dsn, source, PW, timeout=60)
    assert state.role == STANDBY and state.read_only and state.streaming
    assert (state.master_host, state.master_port) == ("127.0.0.1", new.port)
    assert _visits(old) == 27
    _write(new, 3, "replicated back")
    wait_replayed(old.admin_dsn, new.value("@@gtid_binlog_pos"), 30, PW)
    assert _visits(old) == 30
    lag = replication_lag(new.admin_dsn, old.admin_dsn, PW, PW)
    assert lag.transactions == 0 and lag.seconds == 0.0
    with pytest.raises(RuntimeError, match="read-only"):
        _write(old, 1)
    # The reverse switch is ready: the same primitives bring the roles back.
    fence_readonly(new.admin_dsn, PW)
    wait_replayed(old.admin_dsn, final_gtid(new.admin_dsn, PW), 30, PW)
    assert promote(old.admin_dsn, PW).role == PRIMARY
    _write(old, 1, "home again")
    assert _visits(old) == 31


def test_failover_then_reinstate_refuses_the_old_primary_with_errant_transactions(
        fresh_pair: MariaPair) -> None:
    """The link fails, the old primary commits on, its site is lost; the replica is
    promoted with all it received. Back again, the old primary holds transactions the
    new one never had, and is refused."""
    old, new = fresh_pair.primary, fresh_pair.replica
    _write(old, 3)
    wait_replayed(new.admin_dsn, old.value("@@gtid_binlog_pos"), 30, PW)
    new.root_sql("STOP SLAVE IO_THREAD")
    _write(old, 2, "lost")
    old.stop()
    new.root_sql("START SLAVE IO_THREAD")  # retrying a primary that is gone
    promoted = promote(new.admin_dsn, PW)
    assert promoted.role == PRIMARY and _visits(new) == 3
    _write(new, 2, "new")
    old.start()
    errant = old.value("@@gtid_binlog_pos")
    assert errant.startswith("0-1-")
    source = ReplicationSource("127.0.0.1", new.port, "repl", "Repl-Hosp1tal-pw")
    with pytest.raises(SwitchRefused) as caught:
        reinstate_as_standby(old.admin_dsn, source, PW, timeout=30)
    message = str(caught.value)
    assert f"0-1-{int(new.value('@@gtid_binlog_state').split('0-1-')[1].split(',')[0]) + 1}"\
        f"..{errant}" in message, message
    assert "errant" in message and "\n" not in message and "Repl-Hosp1tal-pw" not in message
    # Refused before anything changed: the old primary is not replicating.
    assert not node_state(old.admin_dsn, PW).replicating
    # "Rebuilt" wrongly: its binlog emptied, but its position still names the lost
    # transactions. The new primary refuses it at once, and the error says so, not a wait.
    old.root_sql(f"RESET MASTER; SET GLOBAL gtid_slave_pos = '{errant}'")
    started = time.monotonic()
    with pytest.raises(StandbyNotReady) as caught_late:
        reinstate_as_standby(old.admin_dsn, source, PW, timeout=120)
    message = str(caught_late.value)
    assert time.monotonic() - started < 60, message
    assert "is not replicating: threads IO No" in message and "1236" in message, message
    assert "after 120 s" not in message and "Repl-Hosp1tal-pw" not in message, message
