"""The client switch through pgbouncer: PAUSE -> repoint -> RESUME moves a writing
application from one PostgreSQL to another with no failed request, against real
servers (two throwaway PostgreSQL, a throwaway pgbouncer, the test HIS app as a
subprocess and a client writing the whole time)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from his_app import ORDERS_DDL
from pg_server import PgServer, can_run_servers, free_port, make_base, pg_bin, wait_for
from pgbouncer_server import PgbouncerServer, pgbouncer_bin
from write_load import HisApp, WriteLoad

from medark.errors import UsageError
from medark.sources.postgres.pooler import PoolerConsole, pooler_state, repoint, repoint_ini

needs_servers = pytest.mark.skipif(
    can_run_servers() is not None or pgbouncer_bin() is None,
    reason=can_run_servers() or "pgbouncer is not installed (make debs)")


def _server() -> PgServer:
    bin_dir = pg_bin()
    assert bin_dir is not None
    server = PgServer(make_base(), free_port(), bin_dir)
    server.init()
    server.start()
    server.sql(ORDERS_DDL)
    return server


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PgServer, PgServer]]:
    a = _server()
    try:
        b = _server()
    except BaseException:
        a.stop()
        shutil.rmtree(a.base, ignore_errors=True)
        raise
    try:
        yield a, b
    finally:
        for server in (a, b):
            server.stop()
            shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture()
def pooler(servers: tuple[PgServer, PgServer]) -> Iterator[PgbouncerServer]:
    bouncer = PgbouncerServer(servers[0].port)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()


@needs_servers
def test_pooler_state_shows_the_database_and_its_pool(
        servers: tuple[PgServer, PgServer], pooler: PgbouncerServer) -> None:
    app = HisApp(pooler.client_dsn).start()  # /health opened a server connection
    try:
        with PoolerConsole(pooler.admin_dsn) as console:
            state = pooler_state(console)
    finally:
        app.stop()
    his = state.database("his")
    assert his is not None
    assert (his.host, his.port, his.database) == ("127.0.0.1", servers[0].port, "postgres")
    assert not his.paused
    pools = state.pools_of("his")
    assert [p.user for p in pools] == ["postgres"]
    assert pools[0].sv_idle + pools[0].sv_used + pools[0].sv_active >= 1


@needs_servers
def test_switch_under_load_fails_no_request_and_moves_writes(
        servers: tuple[PgServer, PgServer], pooler: PgbouncerServer) -> None:
    a, b = servers
    app = HisApp(pooler.client_dsn).start()
    load = WriteLoad(app.port, clients=4).start()
    try:
        wait_for(lambda: load.acked() >= 50, timeout=30, what="writes through the pooler")
        with PoolerConsole(pooler.admin_dsn) as console:
            paused_at = time.monotonic()
            console.pause("his")
            assert pooler_state(console).database("his").paused  # type: ignore[union-attr]
            repoint(console, pooler.ini, "his", "127.0.0.1", b.port)
            console.resume("his")
        at_resume = load.acked()
        wait_for(lambda: load.acked() >= at_resume + 50, timeout=30,
                 what="writes after the switch")
    finally:
        record = load.stop()
        app.stop()

    assert record.failures == []
    first_on_b = record.first_ack_on(b.port, after=paused_at)
    assert first_on_b is not None
    print(f"\nswitch: PAUSE to first acknowledged write on B {first_on_b.acked - paused_at:.3f} s;"
          f" max latency {max(record.latencies):.3f} s over {len(record.acks)} writes"
          " from 4 clients")
    # Every write sent after the switch completed went to B, and each acknowledged
    # order is on the server that acknowledged it.
    assert all(ack.server_port == b.port for ack in record.acks if ack.sent > first_on_b.acked)
    on = {port: set(server.sql("SELECT ref FROM orders").split())
          for port, server in ((a.port, a), (b.port, b))}
    for ack in record.acks:
        assert ack.ref in on[ack.server_port]
    assert not any(ack.server_port == a.port and ack.sent > first_on_b.acked
                   for ack in record.acks)
    assert {ack.server_port for ack in record.acks} == {a.port, b.port}


@needs_servers
def test_pause_waits_for_the_transaction_in_flight(pooler: PgbouncerServer) -> None:
    """PAUSE must not return while a transaction is open: a fence after it would cut
    that transaction off (an acknowledged write lost or a client error)."""
    returned = threading.Event()
    with psycopg.connect(pooler.client_dsn, prepare_threshold=None) as client, \
            PoolerConsole(pooler.admin_dsn) as console:
        client.execute("SELECT 1")  # a transaction is now open on a server connection

        def pause() -> None:
            console.pause("his")
            returned.set()

        pausing = threading.Thread(target=pause)
        pausing.start()
        wait_for(lambda: _paused_flag(pooler), timeout=10, what="PAUSE to be issued")
        assert not returned.wait(0.5)
        client.commit()
        assert returned.wait(10)
        pausing.join()
        console.resume("his")


def _paused_flag(pooler: PgbouncerServer) -> bool:
    with PoolerConsole(pooler.admin_dsn) as console:
        his = pooler_state(console).database("his")
    return his is not None and his.paused


@needs_servers
def test_failover_repoint_without_pause_reaches_the_new_server(
        servers: tuple[PgServer, PgServer]) -> None:
    """The old primary is killed under load; repoint alone (no PAUSE: nothing to wait
    for) must send the next writes to the new server, with no failure after that."""
    doomed = _server()
    bouncer = PgbouncerServer(doomed.port)
    app: HisApp | None = None
    load: WriteLoad | None = None
    try:
        bouncer.start()
        app = HisApp(bouncer.client_dsn).start()
        load = WriteLoad(app.port, prefix="f", clients=4).start()
        wait_for(lambda: load.acked() >= 20, timeout=30, what="writes through the pooler")
        doomed.stop()  # immediate: as good as kill -9 for the clients
        with PoolerConsole(bouncer.admin_dsn) as console:
            switch_at = time.monotonic()
            repoint(console, bouncer.ini, "his", "127.0.0.1", servers[1].port)
        at_switch = load.acked()
        wait_for(lambda: load.acked() >= at_switch + 50, timeout=30,
                 what="writes after the failover")
    finally:
        record = load.stop() if load is not None else None
        if app is not None:
            app.stop()
        bouncer.stop()
        doomed.stop()
        shutil.rmtree(doomed.base, ignore_errors=True)
    assert record is not None
    first_on_b = record.first_ack_on(servers[1].port, after=switch_at)
    assert first_on_b is not None
    print(f"\nfailover: repoint to first acknowledged write on B"
          f" {first_on_b.acked - switch_at:.3f} s; {len(record.failures)} failed requests"
          + (f", e.g. {record.failures[0].error[:160]}" if record.failures else ""))
    assert [f for f in record.failures if f.sent > first_on_b.acked] == []
    on_b = set(servers[1].sql("SELECT ref FROM orders WHERE ref LIKE 'f%'").split())
    assert {a.ref for a in record.acks if a.server_port == servers[1].port} <= on_b


@needs_servers
def test_repoint_keeps_the_rest_of_the_ini(pooler: PgbouncerServer,
                                           servers: tuple[PgServer, PgServer]) -> None:
    before = pooler.ini.read_text()
    mode, uid = pooler.ini.stat().st_mode, pooler.ini.stat().st_uid
    with PoolerConsole(pooler.admin_dsn) as console:
        repoint(console, pooler.ini, "his", "127.0.0.1", servers[1].port)
        his = pooler_state(console).database("his")
    after = pooler.ini.read_text()
    changed = [(x, y) for x, y in zip(before.splitlines(), after.splitlines(), strict=True)
               if x != y]
    assert changed == [(
        f"his = host=127.0.0.1 port={servers[0].port} dbname=postgres user=postgres",
        f"his = host=127.0.0.1 port={servers[1].port} dbname=postgres user=postgres")]
    assert (pooler.ini.stat().st_mode, pooler.ini.stat().st_uid) == (mode, uid)
    assert his is not None and his.port == servers[1].port  # the RELOAD took it


def test_repoint_ini_touches_only_that_entry() -> None:
    text = ("; comment his = host=x\n[databases]\nemr = host=db1 port=5432 dbname=emr\n"
            "his=host=db1 port=5432 dbname=his pool_size=20\r\n"
            "his_ro = host=db2 dbname=his\n[pgbouncer]\nhis = 1\n")
    out = repoint_ini(text, "his", "10.0.0.9", 6543)
    assert out == text.replace("his=host=db1 port=5432 dbname=his pool_size=20",
                               "his = host=10.0.0.9 port=6543 dbname=his pool_size=20")
    added = repoint_ini("[databases]\nhis = dbname=his\n", "his", "db3", 5433)
    assert added == "[databases]\nhis = dbname=his host=db3 port=5433\n"


def test_repoint_ini_refuses_a_missing_entry_or_bad_names(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no \\[databases\\] entry for 'lis'"):
        repoint_ini("[databases]\nhis = host=a\n[pgbouncer]\nlis = 1\n", "lis", "b", 1)
    with pytest.raises(UsageError, match="invalid pgbouncer database name"):
        repoint_ini("[databases]\nhis = host=a\n", "his; KILL", "b", 1)
    with pytest.raises(UsageError, match="invalid pooler target host"):
        repoint_ini("[databases]\nhis = host=a\n", "his", "b c", 1)
