"""The MariaDB DR drill's sandbox: a writable copy of a real GTID replica
(tests/mariadb_pair.py) on its own port, made by mariadb-backup from the replica and
destroyed; the copy replicates from nobody, logs no binlog, has a server_id of its own,
and the replica's replication threads keep running."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mariadb_pair import MariaPair, mariadb_pair, wait_for
from mysql_server import BACKUP_PASSWORD, can_run_servers, have_mariadb_backup, make_base

from medark.errors import StandbyNotReady
from medark.sources.mysql.replication import connect, node_state, run
from medark.sources.mysql.sandbox import clone_standby, destroy

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(not have_mariadb_backup(), reason="mariadb-backup is not installed"),
]


@pytest.fixture(scope="module")
def pair() -> Iterator[MariaPair]:
    with mariadb_pair() as built:
        built.primary.root_sql("INSERT INTO his.visits (note) VALUES ('before')")
        wait_for(built.caught_up, 60, "the replica to catch up")
        yield built


@pytest.fixture
def workdir() -> Iterator[Path]:
    base = make_base()  # reachable by the mysql OS user (pytest's tmp_path is not)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_copy_is_writable_detached_and_destroyed(pair: MariaPair, workdir: Path) -> None:
    sandbox = clone_standby(pair.replica.admin_dsn, BACKUP_PASSWORD, workdir)
    try:
        assert sandbox.port not in (pair.primary.port, pair.replica.port)
        assert sandbox.ready_seconds > 0 and sandbox.pid is not None
        assert "password" not in sandbox.dsn.lower() and BACKUP_PASSWORD not in sandbox.dsn
        conn = connect(sandbox.dsn, BACKUP_PASSWORD)
        assert run(conn, "SHOW ALL SLAVES STATUS") == []
        lines = run(conn, "INSERT INTO his.visits (note) VALUES ('sandbox'); "
                          "SELECT @@read_only, @@log_bin, @@server_id; "
                          "SELECT note FROM his.visits ORDER BY id")
        read_only, log_bin, server_id = lines[0].split("\t")
        assert (read_only, log_bin) == ("0", "0")
        assert int(server_id) not in (1, 2)
        assert lines[1:] == ["before", "sandbox"]
        state = node_state(pair.replica.admin_dsn, BACKUP_PASSWORD)
        assert state.streaming and state.read_only
    finally:
        destroy(sandbox)
    assert sandbox.pid is None and not sandbox.base.exists()
    destroy(sandbox)  # idempotent
    wait_for(pair.caught_up, 60, "the replica to catch up")
    assert pair.replica.root_sql("SELECT COUNT(*) FROM his.visits WHERE note = 'sandbox'") \
        == "0"


def test_a_primary_is_not_copied(pair: MariaPair, workdir: Path) -> None:
    with pytest.raises(StandbyNotReady, match="no replication connection"):
        clone_standby(pair.primary.admin_dsn, BACKUP_PASSWORD, workdir)
    assert list(workdir.iterdir()) == []
