"""PostgreSQL end to end: a throwaway server archiving through `medark pg wal-push`, base
backups over the replication protocol, point-in-time restores started and queried."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, TEST_KDF, Result
from pg_server import (
    RepoSite,
    as_pg,
    can_run_servers,
    chown_pg,
    free_port,
    repo_site,
    wait_for,
)

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


@dataclass
class Cluster(RepoSite):
    last_status: str = ""

    def medark_as_pg(self, *args: str, check: bool = True) -> Result:
        """medark as the postgres OS user (which owns the repository, as in production)."""
        done = as_pg(self.as_postgres_argv(*args), env=self.env, timeout=600)
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"medark {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr}\nserver log:\n{self.server.log()}")
        return result

    def medark_as_root(self, *args: str, check: bool = True) -> Result:
        env = dict(self.env, MEDARK_PASSWORD=PASSWORD)
        done = subprocess.run([MEDARK, "--repo", str(self.repo), *args], env=env,
                              capture_output=True, text=True, check=False, timeout=900)
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"medark {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr}")
        return result

    def start_stream(self, *extra: str) -> subprocess.Popen[str]:
        """`pg wal-stream` in the background as postgres. Not through runuser, which
        answers SIGTERM by killing its child: the stream must get the signal itself and
        stop cleanly."""
        argv = self.as_postgres_argv("pg", "wal-stream", "--dsn", self.server.dsn, "--slot",
                                     "medark", "--create-slot", *extra)
        stream = subprocess.Popen(argv, env=dict(self.env, HOME=str(self.cache)),
                                  user="postgres", group="postgres", extra_groups=[],
                                  cwd=str(self.cache), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        # Connected before the test writes: a stream that starts late (a loaded machine)
        # begins at the server's current segment and never sees the ones before it.
        wait_for(lambda: stream.poll() is not None or self.server.sql(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'medark' "
            "AND active") == "1", 60, "the WAL stream to connect")
        return stream

    def archived_after(self, moment: datetime) -> bool:
        """Whether `pg status` reports WAL archived at or after `moment` (the last answer
        is kept in `last_status`, for the message of a wait that times out)."""
        status = self.medark_as_root("pg", "status", "--json", check=False)
        self.last_status = f"exit {status.returncode}: {status.stdout[-600:]} {status.stderr}"
        if status.returncode != 0:
            return False
        archived = status.json()["newest_wal_archived"]
        return archived is not None and datetime.fromisoformat(
            archived.replace("Z", "+00:00")) >= moment

    def switch_and_wait(self) -> str:
        """Close the current segment and wait until archive_command has stored it."""
        segment = self.server.sql("SELECT pg_walfile_name(pg_switch_wal())")
        wait_for(lambda: self.server.sql(
            "SELECT last_archived_wal FROM pg_stat_archiver") >= segment, 60,
            f"{segment} to be archived")
        return segment


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield from _cluster(archive=True)


@pytest.fixture
def streamed_cluster() -> Iterator[Cluster]:
    yield from _cluster(archive=False)


def _cluster(archive: bool) -> Iterator[Cluster]:
    with repo_site(PASSWORD, TEST_KDF, archive=archive) as site:
        yield Cluster(**site.parts())


def _start_restored(cluster: Cluster, target: Path, *goal: str) -> tuple[int, dict[str, object]]:
    port = free_port()
    result = cluster.medark_as_root(
        "pg", "restore", "--target-dir", str(target), *goal, "--start", "--port", str(port),
        "--archive-mode-off", "--medark-command", cluster.medark, "--password-file",
        str(cluster.password_file), "--json", "--timeout", "300")
    return port, result.json()


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _stop(cluster: Cluster, target: Path) -> None:
    cluster.server.stop(target)


def test_point_in_time_restore_to_a_marker_and_to_the_window_end(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    sql = cluster.server.sql
    sql("CREATE TABLE orders (id serial PRIMARY KEY, note text, at timestamptz DEFAULT now())")
    sql("INSERT INTO orders (note) SELECT 'before backup ' || g FROM generate_series(1, 5000) g")
    backup = cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn, "--json").json()
    assert backup["source"]["kind"] == "postgres"
    assert backup["source"]["start_lsn"] and backup["source"]["stop_lsn"]
    sql("INSERT INTO orders (note) VALUES ('marker')")
    time.sleep(1.1)
    marker_time = datetime.now(UTC)
    time.sleep(1.1)
    sql("INSERT INTO orders (note) VALUES ('after marker')")
    sql("DELETE FROM orders WHERE note LIKE 'before backup 1%'")  # "the wrong orders"
    cluster.switch_and_wait()
    expected_latest = sql("SELECT count(*), max(id) FROM orders")

    status = cluster.medark_as_root("pg", "status", "--json").json()
    assert status["backups"] == 1 and status["gaps"] == []
    assert status["rpo_seconds"] is not None and status["rpo_seconds"] < 120

    to_marker = Path(str(cluster.server.base) + "-pitr")
    port, info = _start_restored(cluster, to_marker, "--time", marker_time.isoformat())
    try:
        assert info["started"] is True
        assert info["target"]["reached_by"] == "commit_after", info["target"]
        assert sql("SELECT count(*) FROM orders WHERE note = 'marker'", port=port) == "1"
        assert sql("SELECT count(*) FROM orders WHERE note = 'after marker'", port=port) == "0"
        assert sql("SELECT count(*) FROM orders WHERE note LIKE 'before backup 1%'",
                   port=port) == "1111"  # the deleted orders are back
    finally:
        _stop(cluster, to_marker)

    # The window's last second, after the last commit: PostgreSQL finds no commit after
    # it and would refuse to finish recovery; the restore recovers to the end of the
    # archive instead (--latest itself: the other tests here). MariaDB needs no such step:
    # mariadb-binlog --stop-datetime past the last event replays to the end of the files
    # (checked by hand with test_mysql_cli.py's logical restore at its window's end).
    window_end = str(status["newest_wal_archived"])
    latest = Path(str(cluster.server.base) + "-latest")
    port, info = _start_restored(cluster, latest, "--time", window_end)
    try:
        assert info["target"]["reached_by"] == "end_of_archive", info["target"]
        assert info["target"]["time"] == window_end
        last_commit = _utc(info["target"]["last_commit_at"])
        assert marker_time < last_commit <= _utc(window_end)  # the DELETE's commit
        assert sql("SELECT count(*), max(id) FROM orders", port=port) == expected_latest
        amcheck = subprocess.run(
            [cluster.server.tool("pg_amcheck"), "-h", "127.0.0.1", "-p", str(port), "-U",
             "postgres", "--install-missing", "-d", "postgres"],
            capture_output=True, text=True, check=False)
        assert amcheck.returncode == 0, amcheck.stdout + amcheck.stderr
    finally:
        _stop(cluster, latest)

    # Without a pg_waldump to read the last commit, the target is kept and a note says
    # what to do if recovery stops short (never a guess at the end of the archive).
    blind = cluster.medark_as_root(
        "pg", "restore", "--target-dir", str(tmp_path / "blind"), "--time", window_end,
        "--pg-bin", str(tmp_path), "--password-file", str(cluster.password_file))
    assert "recovery target: " + window_end in blind.stdout, blind.stdout
    assert "could not read the archive's last commit time" in blind.stdout
    assert "--latest" in blind.stdout
    conf = (tmp_path / "blind" / "postgresql.auto.conf").read_text()
    assert "recovery_target_time = " in conf


def test_primary_lost_after_backup_is_served_from_the_restore(cluster: Cluster) -> None:
    sql = cluster.server.sql
    sql("CREATE TABLE patients AS SELECT g AS id, md5(g::text) AS name "
        "FROM generate_series(1, 20000) g")
    cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn)
    sql("INSERT INTO patients VALUES (20001, 'admitted after the backup')")
    cluster.switch_and_wait()
    expected = sql("SELECT count(*), sum(id) FROM patients")
    cluster.server.stop()
    shutil.rmtree(cluster.server.data)  # the primary's disk is gone
    target = Path(str(cluster.server.base) + "-dr")
    port, _info = _start_restored(cluster, target, "--latest")
    try:
        assert sql("SELECT count(*), sum(id) FROM patients", port=port) == expected
    finally:
        _stop(cluster, target)


def test_the_site_is_lost_and_the_offsite_copy_restores_to_the_latest_commit(
        cluster: Cluster) -> None:
    """Base backup and WAL copied to an SM4 repository (other key, other cipher suite);
    the primary and its repository are gone; the copy restores to the last commit."""
    sql = cluster.server.sql
    sql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS drug "
        "FROM generate_series(1, 20000) g")
    cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn)
    sql("INSERT INTO orders VALUES (20001, 'ordered after the backup')")
    cluster.switch_and_wait()
    expected = sql("SELECT count(*), sum(id) FROM orders")
    offsite = cluster.repo.parent / "offsite"
    cluster.medark_as_root("--repo", str(offsite), "init", "--cipher", "sm4-gcm")
    copied = cluster.medark_as_root("--repo", str(offsite), "copy", "--from-repo",
                                    str(cluster.repo), "--json").stdout.splitlines()
    summary = json.loads(copied[-1])
    assert summary["snapshots_copied"] == 1 and summary["records_copied"] >= 2
    cluster.server.stop()
    shutil.rmtree(cluster.server.data)
    shutil.rmtree(cluster.repo)  # the site's repository is gone too
    chown_pg(offsite)
    dr = dataclasses.replace(cluster, repo=offsite)
    assert dr.medark_as_root("pg", "status", "--json").json()["gaps"] == []
    target = Path(str(cluster.server.base) + "-offsite")
    port, _info = _start_restored(dr, target, "--latest")
    try:
        assert sql("SELECT count(*), sum(id) FROM orders", port=port) == expected
    finally:
        _stop(dr, target)


def test_second_base_backup_of_an_unchanged_database_adds_little(cluster: Cluster) -> None:
    # ~200 MB: the fixed churn of a base backup (pg_control, the label, the manifest, a
    # few catalog pages, each invalidating one ~1 MiB chunk) is a few MB at any size.
    cluster.server.sql("CREATE TABLE big AS SELECT g, repeat(md5(g::text), 8) AS pad "
                       "FROM generate_series(1, 600000) g")
    # settled first: autovacuum would otherwise set the new pages' hint and visibility
    # bits between the two backups (one CI run: 10.3 MB added, 5.01 % of the first)
    cluster.server.sql("VACUUM (FREEZE, ANALYZE)")
    cluster.server.sql("CHECKPOINT")
    first = cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn, "--json").json()
    second = cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn, "--json").json()
    assert second["data_added"] < 0.05 * first["total_bytes_processed"], (first, second)


def test_bad_inputs_get_one_line_and_distinct_exit_codes(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    wrong = cluster.medark_as_pg("pg", "backup", "--dsn",
                                 f"host=127.0.0.1 port={free_port()} user=postgres",
                                 check=False)
    assert wrong.returncode == 20, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    cluster.server.sql("CREATE ROLE clerk LOGIN")  # no REPLICATION
    no_repl = cluster.medark_as_pg(
        "pg", "backup", "--dsn", f"host=127.0.0.1 port={cluster.server.port} user=clerk "
        "dbname=postgres", check=False)
    assert no_repl.returncode == 21, no_repl.stderr
    assert "REPLICATION" in no_repl.stderr or "replication" in no_repl.stderr

    none_yet = cluster.medark_as_root("pg", "restore", "--target-dir", str(tmp_path / "x"),
                                      "--latest", check=False)
    assert none_yet.returncode == 1 and "no PostgreSQL base backup" in none_yet.stderr

    cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn)
    too_early = cluster.medark_as_root("pg", "restore", "--target-dir", str(tmp_path / "y"),
                                       "--time", "2001-01-01T00:00:00Z", check=False)
    assert too_early.returncode == 24, too_early.stderr
    assert "before the oldest base backup" in too_early.stderr
    assert not (tmp_path / "y").exists()  # nothing written for a refused target
    assert cluster.medark_as_root("check").returncode == 0


def test_wal_stream_gives_an_rpo_of_seconds_without_archive_command(
        streamed_cluster: Cluster) -> None:
    c = streamed_cluster
    stream = c.start_stream("--json")
    try:
        c.server.sql("CREATE TABLE vitals AS SELECT g AS id, g * 1.5 AS pulse "
                     "FROM generate_series(1, 10000) g")
        c.medark_as_pg("pg", "backup", "--dsn", c.server.dsn)
        # The clock is read before the commit: read after it, the stream may already have
        # archived the marker, and with no later writes nothing newer would ever come.
        committed = datetime.now(UTC)
        c.server.sql("INSERT INTO vitals VALUES (-1, 0)")  # the marker, never switched out
        wait_for(lambda: c.archived_after(committed), 60,
                 f"the marker's WAL (committed after {committed}) to be streamed",
                 lambda: f"last pg status {c.last_status}")
        rpo = (datetime.now(UTC) - committed).total_seconds()
        assert rpo < 60
        expected = c.server.sql("SELECT count(*), sum(id) FROM vitals")
    finally:
        stream.send_signal(15)
        out, err = stream.communicate(timeout=60)
    assert stream.returncode == 0, err
    assert any(line.startswith("{") for line in out.splitlines()), (out, err)
    summary = [line for line in out.splitlines() if line.startswith("{")][-1]
    assert '"partial_versions"' in summary
    c.server.stop()
    target = Path(str(c.server.base) + "-streamed")
    port, _info = _start_restored(c, target, "--latest")
    try:
        assert c.server.sql("SELECT count(*), sum(id) FROM vitals", port=port) == expected
    finally:
        _stop(c, target)


def test_wal_stream_with_a_missing_slot_exits_22(streamed_cluster: Cluster) -> None:
    result = streamed_cluster.medark_as_pg("pg", "wal-stream", "--dsn",
                                           streamed_cluster.server.dsn, "--slot", "nope",
                                           check=False)
    assert result.returncode == 22, result.stderr
    assert "does not exist" in result.stderr


def _amcheck(cluster: Cluster, port: int) -> None:
    done = subprocess.run(
        [cluster.server.tool("pg_amcheck"), "-h", "127.0.0.1", "-p", str(port), "-U",
         "postgres", "--install-missing", "--all"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_under_pgbench_load_pitr_and_latest_are_exact(streamed_cluster: Cluster) -> None:
    c = streamed_cluster
    sql = c.server.sql
    stream = c.start_stream()
    pgbench = [c.server.tool("pgbench"), "-h", "127.0.0.1", "-p", str(c.server.port), "-U",
               "postgres"]
    subprocess.run([*pgbench, "-i", "-s", "2", "-q", "postgres"], check=True,
                   capture_output=True)
    # The load runs until stopped (SIGKILL: pgbench may take SIGINT as a query cancel and
    # run on) after the target, not for a fixed time that must outlast a loaded machine's
    # backup: it is still running at the target.
    load = subprocess.Popen([*pgbench, "-c", "2", "-T", "600", "postgres"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: load.poll() is not None or int(
            sql("SELECT count(*) FROM pgbench_history")) > 0, 60, "the load to commit")
        c.medark_as_pg("pg", "backup", "--dsn", c.server.dsn)  # under load, while streaming
        sql("CREATE TABLE marker (at timestamptz)")
        sql("INSERT INTO marker VALUES (now())")
        time.sleep(1.1)
        target = datetime.now(UTC)
        time.sleep(1.1)
        assert load.poll() is None, load.communicate()[1]  # the load ran past the target
        load.kill()
        _, load_err = load.communicate(timeout=120)
        assert load.returncode == -signal.SIGKILL, load_err
        assert "abort" not in load_err and "error" not in load_err.lower(), load_err
        # a commit the client sent before it stopped ends with its session
        wait_for(lambda: sql("SELECT count(*) FROM pg_stat_activity "
                             "WHERE application_name = 'pgbench'") == "0", 60,
                 "pgbench's sessions to end")
        after_target = f"SELECT count(*) FROM pgbench_history WHERE mtime > '{target.isoformat()}'"
        assert int(sql(after_target)) > 0  # load the restore to T must leave out
        stopped = datetime.now(UTC)  # before the last commit (see the test above)
        sql("INSERT INTO marker VALUES (now())")  # after T: must not come back with T
        expected = sql("SELECT (SELECT count(*) FROM pgbench_history), "
                       "(SELECT sum(abalance) FROM pgbench_accounts), "
                       "(SELECT count(*) FROM marker)")
        wait_for(lambda: c.archived_after(stopped), 60, "the stream to catch up",
                 lambda: f"last pg status {c.last_status}")
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()
        stream.send_signal(15)
        stream.communicate(timeout=60)
    assert stream.returncode == 0

    pitr = Path(str(c.server.base) + "-pitr")
    port, _ = _start_restored(c, pitr, "--time", target.isoformat())
    try:
        assert sql("SELECT count(*) FROM marker", port=port) == "1"
        assert sql(after_target, port=port) == "0"
        assert int(sql("SELECT count(*) FROM pgbench_history", port=port)) > 0
        _amcheck(c, port)
    finally:
        _stop(c, pitr)

    latest = Path(str(c.server.base) + "-latest")
    port, _ = _start_restored(c, latest, "--latest")
    try:
        got = sql("SELECT (SELECT count(*) FROM pgbench_history), "
                  "(SELECT sum(abalance) FROM pgbench_accounts), "
                  "(SELECT count(*) FROM marker)", port=port)
        assert got == expected
        _amcheck(c, port)
    finally:
        _stop(c, latest)


def test_retention_gap_detection_and_check(cluster: Cluster, tmp_path: Path) -> None:
    sql = cluster.server.sql
    sql("CREATE TABLE labs (id int, result text)")
    cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn)
    for i in range(3):
        sql(f"INSERT INTO labs VALUES ({i}, 'first window')")
        cluster.switch_and_wait()
    cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn, "--tag", "second")
    sql("INSERT INTO labs VALUES (10, 'second window')")
    cluster.switch_and_wait()
    sql("INSERT INTO labs VALUES (11, 'second window')")
    cluster.switch_and_wait()
    assert cluster.medark_as_root("pg", "check", "--read-data").returncode == 0

    # forget keeps the newest base backup: the WAL only the older one needed expires,
    # and prune then frees it, while the retained window still restores.
    before = cluster.medark_as_root("pg", "status", "--json").json()["wal_segments"]
    forget = cluster.medark_as_pg("forget", "--keep-last", "1", "--prune")
    assert "archived WAL/binlog file(s) that no remaining backup needs" in forget.stdout
    after = cluster.medark_as_root("pg", "status", "--json").json()
    assert after["backups"] == 1 and after["wal_segments"] < before
    assert cluster.medark_as_root("pg", "check", "--read-data").returncode == 0

    future = cluster.medark_as_root("pg", "restore", "--target-dir", str(tmp_path / "f"),
                                    "--time", "2999-01-01T00:00:00Z", check=False)
    assert future.returncode == 24 and "after the newest archived WAL" in future.stderr

    # Lose one archived segment in the middle of the window: check and restore say so.
    records = sorted(p for p in (cluster.repo / "wal").rglob("*")
                     if p.is_file() and len(p.name) == 24)
    records[-2].unlink()
    check = cluster.medark_as_root("pg", "check", check=False)
    assert check.returncode == 23, check.stdout + check.stderr
    broken = cluster.medark_as_root("pg", "restore", "--target-dir", str(tmp_path / "g"),
                                    "--latest", check=False)
    assert broken.returncode == 23, broken.stderr
    assert "gap" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_restore_follows_a_timeline_created_by_an_earlier_promotion(cluster: Cluster) -> None:
    """A PITR restore that archives (no --archive-mode-off) promotes to timeline 2 and
    pushes its WAL and 00000002.history into the same archive; a later --latest restore
    must follow timeline 2, not the abandoned rest of timeline 1."""
    sql = cluster.server.sql
    sql("CREATE TABLE charts (id int, v text)")
    cluster.medark_as_pg("pg", "backup", "--dsn", cluster.server.dsn)
    sql("INSERT INTO charts VALUES (1, 'kept')")
    time.sleep(1.1)
    target = datetime.now(UTC)
    time.sleep(1.1)
    sql("INSERT INTO charts VALUES (2, 'abandoned on timeline 1')")
    cluster.switch_and_wait()
    cluster.server.stop()

    first = Path(str(cluster.server.base) + "-tl2")
    port = free_port()
    cluster.medark_as_root(
        "pg", "restore", "--target-dir", str(first), "--time", target.isoformat(), "--start",
        "--port", str(port), "--medark-command", cluster.medark, "--password-file",
        str(cluster.password_file), "--timeout", "300")
    try:
        sql("INSERT INTO charts VALUES (3, 'written on timeline 2')", port=port)
        segment = sql("SELECT pg_walfile_name(pg_switch_wal())", port=port)
        assert segment.startswith("00000002")
        wait_for(lambda: sql("SELECT last_archived_wal FROM pg_stat_archiver", port=port)
                 >= segment, 60, "timeline 2 to be archived")
    finally:
        _stop(cluster, first)
    status = cluster.medark_as_root("pg", "status", "--json").json()
    assert status["timelines"] == 2

    second = Path(str(cluster.server.base) + "-after-tl2")
    port, _ = _start_restored(cluster, second, "--latest")
    try:
        assert sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM charts",
                   port=port) == "1,3"
        assert sql("SELECT timeline_id FROM pg_control_checkpoint()", port=port) == "3"
    finally:
        _stop(cluster, second)
