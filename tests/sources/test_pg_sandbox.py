"""The DR drill's sandbox: a writable copy of a real streaming standby (tests/pg_pair.py)
on its own port, made and destroyed while the primary takes writes the whole time;
production's replication must not notice."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_pair import PgPair, pg_pair
from pg_server import can_run_servers, chown_pg, make_base, wait_for

from medark.errors import StandbyNotReady
from medark.sources.postgres.sandbox import Sandbox, clone_standby, destroy
from medark.sources.postgres.wal import parse_lsn

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))

STANDBY_SLOT = "drill_probe_slot"


@pytest.fixture(scope="module")
def pair() -> Iterator[PgPair]:
    with pg_pair() as built:
        yield built


@pytest.fixture
def workdir() -> Iterator[Path]:
    base = make_base()  # reachable by the postgres user (pytest's tmp_path is not)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


class PrimaryWriter:
    """Single-row transactions on the primary, back to back, until stopped."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.acked = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                try:
                    conn.execute("INSERT INTO drill_load DEFAULT VALUES")
                    self.acked += 1
                except psycopg.Error as exc:
                    self.failures.append(str(exc))

    def __enter__(self) -> PrimaryWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class ReplicationSampler:
    """pg_stat_replication on the primary, polled back to back: (walsender pid, state)."""

    def __init__(self, dsn: str) -> None:
        self.samples: list[list[tuple[int, str]]] = []
        self._dsn = dsn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute("SELECT pid, state FROM pg_stat_replication").fetchall()
                self.samples.append([(int(r[0]), str(r[1])) for r in rows])
                time.sleep(0.01)

    def wait_more(self, n: int) -> None:
        target = len(self.samples) + n
        wait_for(lambda: len(self.samples) >= target, what=f"{n} more samples")

    def __enter__(self) -> ReplicationSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def replay_lsn(pair: PgPair) -> int:
    return parse_lsn(pair.standby.sql("SELECT pg_last_wal_replay_lsn()"))


def test_sandbox_is_writable_and_production_replication_is_untouched(
        pair: PgPair, workdir: Path) -> None:
    p, s = pair.primary, pair.standby
    p.sql("CREATE TABLE drill_load (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
    wait_for(lambda: s.sql("SELECT to_regclass('drill_load') IS NOT NULL") == "t",
             what="the table on the standby")
    # A slot on the standby itself: pg_basebackup must not carry it into the copy.
    s.sql(f"SELECT pg_create_physical_replication_slot('{STANDBY_SLOT}', true)")
    sandbox: Sandbox | None = None
    try:
        with PrimaryWriter(p.dsn) as writer, ReplicationSampler(p.dsn) as sampler:
            wait_for(lambda: writer.acked > 20, what="the write load to start")
            sampler.wait_more(3)
            before_lsn = replay_lsn(pair)
            sampling_from = len(sampler.samples)
            sandbox = clone_standby(s.dsn, s.data, workdir)
            during_clone = sampler.samples[sampling_from:]
            acked_at_clone = writer.acked
            print(f"sandbox ready in {sandbox.ready_seconds:.3f} s, "
                  f"{len(during_clone)} replication samples during the clone")
            assert sandbox.ready_seconds > 0
            assert sandbox.port not in (p.port, s.port)
            assert sandbox.datadir.is_relative_to(workdir)
            assert not (sandbox.datadir / "standby.signal").exists()

            with psycopg.connect(sandbox.dsn, autocommit=True) as conn:
                def one(query: str) -> object:
                    row = conn.execute(query).fetchone()
                    assert row is not None
                    return row[0]
                assert one("SELECT pg_is_in_recovery()") is False
                assert one("SELECT count(*) FROM pg_replication_slots") == 0
                assert one("SELECT count(*) FROM pg_stat_wal_receiver") == 0
                assert one("SHOW archive_mode") == "off"
                assert one("SHOW primary_conninfo") == ""
                copied = one("SELECT count(*) FROM drill_load")
                assert isinstance(copied, int) and copied > 0  # the standby's rows are there
                conn.execute("CREATE TABLE sandbox_only (note text)")
                conn.execute("INSERT INTO sandbox_only VALUES ('drill')")
                conn.execute("INSERT INTO drill_load (id) VALUES (-1)")
                assert one("SELECT count(*) FROM sandbox_only") == 1
                assert one("SELECT count(*) FROM drill_load WHERE id = -1") == 1
            # While the sandbox runs: the same walsender streams, the standby replays on.
            during_sandbox = p.sql("SELECT pid || ' ' || state FROM pg_stat_replication")
            wait_for(lambda: replay_lsn(pair) > before_lsn, what="the standby to replay")
            after_clone_lsn = replay_lsn(pair)

            destroy(sandbox)
            assert not sandbox.datadir.exists() and not sandbox.base.exists()
            destroy(sandbox)  # a second destroy is harmless
            assert os.listdir(workdir) == []
            sampler.wait_more(3)
            wait_for(lambda: writer.acked > acked_at_clone + 20,
                     what="the primary's writes to go on after the drill")
            wait_for(lambda: replay_lsn(pair) > after_clone_lsn, what="replay after the drill")

        assert writer.failures == []
        first = sampler.samples[0]
        assert len(first) == 1 and first[0][1] == "streaming", first
        walsender = first[0][0]
        # One walsender, streaming, the same connection in every sample: never broken.
        assert all(sample == [(walsender, "streaming")] for sample in sampler.samples), \
            [x for x in sampler.samples if x != [(walsender, "streaming")]][:3]
        assert during_sandbox == f"{walsender} streaming"
        # Everything the primary acknowledged reached the standby; nothing of the sandbox.
        total = p.sql("SELECT count(*) FROM drill_load")
        assert int(total) == writer.acked
        wait_for(lambda: s.sql("SELECT count(*) FROM drill_load") == total,
                 what="the standby to catch up")
        for server in (p, s):
            assert server.sql("SELECT to_regclass('sandbox_only') IS NULL") == "t"
            assert server.sql("SELECT count(*) FROM drill_load WHERE id = -1") == "0"
        assert s.sql("SELECT pg_is_in_recovery()") == "t"
    finally:
        if sandbox is not None:
            destroy(sandbox)
        s.sql(f"SELECT pg_drop_replication_slot('{STANDBY_SLOT}')")


def test_a_primary_is_refused_and_nothing_is_left(pair: PgPair, workdir: Path) -> None:
    with pytest.raises(StandbyNotReady, match="is not in recovery: not a standby"):
        clone_standby(pair.primary.dsn, None, workdir)
    assert os.listdir(workdir) == []


def test_standby_configured_outside_its_data_directory(workdir: Path) -> None:
    """Debian's layout: postgresql.conf, pg_hba.conf and pg_ident.conf in /etc, naming the
    data directory and an external pid file. The copy gets the standby's settings and
    access rules but none of its paths: the standby's pid file stays its own."""
    with pg_pair() as fresh:
        s = fresh.standby
        s.stop()
        etc = s.base / "etc"
        etc.mkdir()
        for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
            shutil.move(s.data / name, etc / name)
        pid_file = s.base / "standby.pid"
        with open(etc / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(f"data_directory = '{s.data}'\nhba_file = '{etc}/pg_hba.conf'\n"
                    f"ident_file = '{etc}/pg_ident.conf'\nexternal_pid_file = '{pid_file}'\n"
                    "work_mem = '7MB'\n")
        chown_pg(etc)
        s.data = etc  # PgServer.start runs pg_ctl -D on the configuration directory
        s.start()
        s.data = Path(s.sql("SHOW data_directory"))
        standby_pid = pid_file.read_text()
        sandbox = clone_standby(s.dsn, s.data, workdir)
        try:
            assert sandbox.dsn
            with psycopg.connect(sandbox.dsn, autocommit=True) as conn:
                settings = conn.execute(
                    "SELECT current_setting('work_mem'), current_setting('data_directory'),"
                    " current_setting('hba_file'), pg_is_in_recovery()").fetchone()
            assert settings == ("7MB", str(sandbox.datadir),
                                str(sandbox.datadir / "pg_hba.conf"), False)
            assert pid_file.read_text() == standby_pid
        finally:
            destroy(sandbox)
        assert fresh.primary.sql("SELECT state FROM pg_stat_replication") == "streaming"


def test_a_password_in_the_dsn_reaches_the_copy_but_not_argv(
        pair: PgPair, workdir: Path) -> None:
    """A role that must give its password (scram) on the standby and so in the copy,
    whose access rules are the standby's own: pg_basebackup gets it by PGPASSWORD."""
    p, s = pair.primary, pair.standby
    p.sql("CREATE ROLE drill LOGIN REPLICATION PASSWORD 'drill-secret'")
    wait_for(lambda: s.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'drill'") == "1",
             what="the role on the standby")
    hba = s.data / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("host all drill 127.0.0.1/32 scram-sha-256\n"
                   "host replication drill 127.0.0.1/32 scram-sha-256\n" + original)
    s.sql("SELECT pg_reload_conf()")
    try:
        dsn = f"host=127.0.0.1 port={s.port} user=drill dbname=postgres"
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(dsn).close()  # the rule is in force
        sandbox = clone_standby(f"{dsn} password=drill-secret", s.data, workdir)
        try:
            assert "drill-secret" not in repr(sandbox)
            with psycopg.connect(sandbox.dsn, autocommit=True) as conn:
                row = conn.execute("SELECT current_user, pg_is_in_recovery()").fetchone()
            assert row == ("drill", False)
        finally:
            destroy(sandbox)
    finally:
        hba.write_text(original)
        s.sql("SELECT pg_reload_conf()")
        p.sql("DROP ROLE drill")
