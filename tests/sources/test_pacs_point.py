"""A PACS's database point on PostgreSQL (sources/pacs/point.py): the references read
at the point must be exactly the index a recovery to its LSN holds. Judged by the server
itself: logical decoding (test_decoding) of the WAL up to the point replays the index's
inserts and deletes, committed before the LSN, into the set the references must equal,
while writers commit all the time. A commit held in flight (a synchronous standby that
never answers) shows why the lock is needed, and that a point taken without it says so."""

from __future__ import annotations

import itertools
import re
import shutil
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from pg_server import PgServer, can_run_servers, free_port, make_base, pg_bin, wait_for

from medark.sources.pacs.point import DatabasePoint, take_point
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import format_lsn

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))

SLOT = "points"
CHANGE = re.compile(r"^table public\.attachedfiles: (INSERT|DELETE): uuid\[text\]:'([^']*)'")


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    base = make_base()
    bin_dir = pg_bin()
    assert bin_dir is not None
    pg = PgServer(base, free_port(), bin_dir,
                  settings={"archive_mode": "off", "wal_level": "logical"})
    try:
        pg.init()
        pg.start()
        pg.sql("CREATE TABLE attachedfiles (uuid text PRIMARY KEY, compressedsize bigint)")
        pg.sql(f"SELECT pg_create_logical_replication_slot('{SLOT}', 'test_decoding')")
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def index_at(pg: PgServer, lsn: int) -> set[str]:
    """The attachments committed before `lsn`, replayed from the WAL by the server."""
    live: set[str] = set()
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for (line,) in conn.execute(
                "SELECT data FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, NULL)",
                (SLOT, format_lsn(lsn))):
            found = CHANGE.match(str(line))
            if found and found[1] == "INSERT":
                live.add(found[2])
            elif found:
                live.discard(found[2])
    return live


def uuids(point: DatabasePoint) -> set[str]:
    return {ref.path.rsplit("/", 1)[-1] for ref in point.references}


def point_of(pg: PgServer, lock_timeout: float = 2.0, tries: int = 3) -> DatabasePoint:
    return take_point(Dsn.parse(pg.dsn), "orthanc", "/pacs", None, lock_timeout, tries)


def test_points_taken_among_busy_writers_hold_exactly_the_index_at_their_lsn(
        server: PgServer) -> None:
    stop = threading.Event()
    counter = itertools.count()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with psycopg.connect(server.dsn, autocommit=True) as conn:
                mine: list[str] = []
                while not stop.is_set():
                    with conn.transaction():
                        for _ in range(1 + next(counter) % 3):
                            uuid = f"w{n}-{next(counter):07d}"
                            conn.execute("INSERT INTO attachedfiles VALUES (%s, 1)", (uuid,))
                            mine.append(uuid)
                        if len(mine) > 5 and next(counter) % 4 == 0:
                            conn.execute("DELETE FROM attachedfiles WHERE uuid = %s",
                                         (mine.pop(0),))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    try:
        points = []
        for _ in range(12):
            time.sleep(0.05)
            points.append(point_of(server))
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert not errors, errors
    assert len({p.lsn for p in points}) == len(points), "the writers moved the WAL on"
    for point in points:
        assert point.exact and not point.inexact_reason
        assert point.switched, point.switch_error
        assert point.lsn < point.past
        held = index_at(server, point.lsn)
        assert held, "writers had committed before the point"
        assert uuids(point) == held, (
            f"at {format_lsn(point.lsn)}: only in the references "
            f"{sorted(uuids(point) - held)[:5]}, only in the WAL {sorted(held - uuids(point))[:5]}")


def test_a_commit_in_flight_makes_the_lock_wait_and_a_point_without_it_says_so(
        server: PgServer) -> None:
    # a synchronous standby that never answers: the commit's record is in the WAL, and the
    # transaction stays invisible (and holds its locks) until the setting is withdrawn
    server.sql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    server.sql("SELECT pg_reload_conf()")
    stuck = threading.Thread(target=server.sql,
                             args=("INSERT INTO attachedfiles VALUES ('in-flight', 1)",))
    try:
        stuck.start()
        wait_for(lambda: server.sql("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE wait_event = 'SyncRep'") == "1",
                 what="the insert's commit waiting for the standby")
        started = time.monotonic()
        point = point_of(server, lock_timeout=0.3, tries=2)
        assert time.monotonic() - started >= 0.6, "both tries waited for the lock"
        assert not point.exact
        assert point.inexact_reason == ("writers held attachedfiles through 2 tries of "
                                        "0.3 s for its lock")
        # what the warning is about: a recovery to the point would hold the commit
        assert "in-flight" in index_at(server, point.lsn)
        assert "in-flight" not in uuids(point)
    finally:
        server.sql("ALTER SYSTEM RESET synchronous_standby_names")
        server.sql("SELECT pg_reload_conf()")
        stuck.join(timeout=60)
    assert not stuck.is_alive()
    after = point_of(server)
    assert after.exact
    assert "in-flight" in uuids(after)
    assert uuids(after) == index_at(server, after.lsn)


def test_a_role_that_may_only_read_gets_a_point_marked_inexact(server: PgServer) -> None:
    server.sql("CREATE ROLE pacs_reader LOGIN")
    server.sql("GRANT SELECT ON attachedfiles TO pacs_reader")
    server.sql("INSERT INTO attachedfiles VALUES ('read-only-role', 1)")
    dsn = Dsn.parse(server.dsn.replace("user=postgres", "user=pacs_reader"))
    point = take_point(dsn, "orthanc", "/pacs", None)
    assert not point.exact
    assert point.inexact_reason.startswith(
        "attachedfiles cannot be locked in SHARE mode (permission denied")
    assert "read-only-role" in uuids(point)
    # nor may it call pg_switch_wal(): the backup then waits for the segment instead
    assert not point.switched and "permission denied" in point.switch_error


def test_the_generic_kind_has_no_table_to_lock(server: PgServer) -> None:
    server.sql("INSERT INTO attachedfiles VALUES ('generic', 1)")
    query = "SELECT '/pacs/' || uuid FROM attachedfiles"
    point = take_point(Dsn.parse(server.dsn), "sql", "/pacs", query)
    assert not point.exact and point.inexact_reason == ""
    assert "generic" in uuids(point)
