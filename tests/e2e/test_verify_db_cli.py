"""`medark verify PLAN` on database plans: the newest point of a PostgreSQL HIS and a
MariaDB LIS restored into throwaway servers on free ports, checked (queries, pg_amcheck /
mariadb-check, the plan's SQL and commands), stopped and removed; the time to verified is
the achieved RTO. A check that is false fails the test, and nothing is left running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mysql_server as my
import pg_server as pg
import pytest
from conftest import MEDARK, PASSWORD, TEST_KDF, Result, nothing_left_in
from plan_site import SITE as PLAN_SITE

pytestmark = pytest.mark.usefixtures("private_tmp")  # TMPDIR of its own: nothing_left_in

SITE = PLAN_SITE + """\
[systems.db]
owner = "it"

[[systems.db.sources]]
type = "{kind}"
dsn = "{dsn}"

[plans.db]
system = "db"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "30min"
retention = {{ daily = 7 }}
restore_test = {{ schedule = "0 3 * * 0", sql = {sql}, checks = {checks} }}
"""


# Option files override MYSQL_UNIX_PORT: a check names the restored server's socket itself.
CLIENT_CHECK = ("sh -c 'mariadb --no-defaults --socket=\"$MYSQL_UNIX_PORT\" --user=root "
                "-e \"SELECT 1 FROM lis.results\"'")


def _verify(config: Path, env: dict[str, str]) -> Result:
    done = subprocess.run([MEDARK, "--json", "verify", "db", "--config", str(config)],
                          env=env, capture_output=True, text=True, check=False, timeout=900)
    return Result(done.returncode, done.stdout, done.stderr)


def _write_config(base: Path, repo: Path, password_file: Path, kind: str, dsn: str,
                  sql: list[str], checks: list[str]) -> Path:
    config = base / "medark.toml"
    config.write_text(SITE.format(state=base / "state", repo=repo, password_file=password_file,
                                  kind=kind, dsn=dsn, sql=json.dumps(sql),
                                  checks=json.dumps(checks)),  # a TOML array of strings
                      encoding="utf-8")
    return config


def _nothing_left(base: Path) -> None:
    nothing_left_in(Path(os.environ["TMPDIR"]))


# ---- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_site() -> Iterator[tuple[pg.PgServer, Path, str, dict[str, str]]]:
    """A server archiving into a repository the postgres user owns (as in production)."""
    if (reason := pg.can_run_servers()) is not None:
        pytest.skip(reason)
    base = pg.make_base()
    server: pg.PgServer | None = None
    try:
        medark = pg.medark_for_postgres(base)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
        env.update(TEST_KDF)
        password_file, repo, cache = base / "repo-password", base / "repo", base / "cache"
        password_file.write_text(PASSWORD + "\n")
        password_file.chmod(0o600)
        repo.mkdir()
        cache.mkdir()
        pg.chown_pg(base)
        bin_dir = pg.pg_bin()
        assert bin_dir is not None
        command = pg.archive_command(medark, repo, password_file, cache)
        server = pg.PgServer(base, pg.free_port(), bin_dir, settings={
            "archive_mode": "on", "archive_timeout": "0",
            "archive_command": "'" + command.replace("'", "''") + "'"})
        done = pg.as_pg([*medark.split(), "--repo", str(repo), "--password-file",
                         str(password_file), "init"], env=env, cwd=str(base))
        assert done.returncode == 0, done.stderr
        server.init()
        server.start()
        yield server, base, medark, env
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["pkill", "-f", "--", f"-D {base}"], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_a_postgres_plan_is_restored_into_a_throwaway_server_and_checked(
        pg_site: tuple[pg.PgServer, Path, str, dict[str, str]]) -> None:
    server, base, medark, env = pg_site
    server.sql("CREATE TABLE vitals AS SELECT g AS id, md5(g::text) AS note "
               "FROM generate_series(1, 5000) g; CREATE INDEX ON vitals (note)")
    backup = pg.as_pg([*medark.split(), "--repo", str(base / "repo"), "--password-file",
                       str(base / "repo-password"), "--cache-dir", str(base / "cache"),
                       "pg", "backup", "--dsn", server.dsn, "--tag", "plan=db"],
                      env=env, cwd=str(base), timeout=600)
    assert backup.returncode == 0, backup.stderr
    # Written after the base backup: only WAL replay brings these rows back.
    server.sql("INSERT INTO vitals SELECT g, 'after' FROM generate_series(5001, 5100) g")
    segment = server.sql("SELECT pg_walfile_name(pg_switch_wal())")
    pg.wait_for(lambda: server.sql("SELECT last_archived_wal FROM pg_stat_archiver")
                >= segment, 60, f"{segment} to be archived")
    config = _write_config(
        base, base / "repo", base / "repo-password", "postgres", server.dsn,
        ["SELECT count(*) = 5100 FROM vitals"],
        ["psql -U postgres -AtX -c \"SELECT 1 FROM vitals WHERE note = 'after' LIMIT 1\""])
    done = _verify(config, env)
    assert done.returncode == 0, done.stderr
    doc = done.json()
    step = doc["steps"][0]
    assert doc["status"] == "succeeded" and step["kind"] == "postgres"
    assert step["amcheck"] == "passed" and step["databases"] >= 2 and step["queries"] == 1
    assert 0 < step["ready_seconds"] <= doc["rto_seconds"] < doc["rto_target_seconds"]
    _nothing_left(base)

    config = _write_config(base, base / "repo", base / "repo-password", "postgres",
                           server.dsn, ["SELECT count(*) = 6000 FROM vitals"], [])
    failed = _verify(config, env)
    assert failed.returncode == 1
    assert "check 'SELECT count(*) = 6000 FROM vitals' returned 'f'" in failed.stderr
    _nothing_left(base)


# ---- MariaDB ------------------------------------------------------------------------------


@pytest.fixture
def maria() -> Iterator[my.MariaServer]:
    yield from _maria(log_bin=True)


@pytest.fixture
def maria_without_binlog() -> Iterator[my.MariaServer]:
    yield from _maria(log_bin=False)


def _maria(log_bin: bool) -> Iterator[my.MariaServer]:
    if (reason := my.can_run_servers()) is not None:
        pytest.skip(reason)
    server = my.MariaServer(my.make_base(), log_bin=log_bin)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)
        for extra in server.base.parent.glob(server.base.name + "*"):
            shutil.rmtree(extra, ignore_errors=True)


def test_a_mariadb_plan_is_restored_into_a_throwaway_server_and_checked(
        maria: my.MariaServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_CACHE_DIR=str(tmp_path / "cache"))
    repo, password_file = tmp_path / "repo", tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    init = subprocess.run([MEDARK, "--repo", str(repo), "--password-file", str(password_file),
                           "init"], env=env, capture_output=True, text=True, check=False)
    assert init.returncode == 0, init.stderr
    maria.root_sql("CREATE DATABASE lis; CREATE TABLE lis.results (id INT PRIMARY KEY, "
                   "value VARCHAR(32), KEY (value)); INSERT INTO lis.results "
                   "SELECT seq, CONCAT('r', seq) FROM lis.seq_1_to_3000")
    config = _write_config(tmp_path, repo, password_file, "mariadb", maria.dsn,
                           ["SELECT count(*) = 3040 FROM lis.results"],
                           [CLIENT_CHECK])
    run = subprocess.run([MEDARK, "run", "db", "--config", str(config)], env=env,
                         capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stderr
    # After the backup: only the binlog replay brings these rows back.
    maria.root_sql("INSERT INTO lis.results SELECT seq, 'late' FROM lis.seq_3001_to_3040")
    maria.root_sql("FLUSH BINARY LOGS")
    stream = subprocess.run(
        [MEDARK, "--repo", str(repo), "--password-file", str(password_file), "mysql",
         "binlog-stream", "--dsn", maria.dsn, "--duration", "3"],
        env=env, capture_output=True, text=True, check=False, timeout=300)
    assert stream.returncode == 0, stream.stderr
    done = _verify(config, env)
    assert done.returncode == 0, done.stderr
    doc = done.json()
    step = doc["steps"][0]
    assert doc["status"] == "succeeded" and step["kind"] == "mariadb"
    assert step["mariadb_check"] == "passed" and step["tables"] >= 1
    assert 0 < step["ready_seconds"] <= doc["rto_seconds"]
    _nothing_left(tmp_path)


def test_a_mariadb_backup_without_binlog_is_verified_as_it_is(
        maria_without_binlog: my.MariaServer, tmp_path: Path) -> None:
    """Binary logging off: nothing to replay, so the restore test restores the backup as
    it is (`mysql restore --backup-only`) instead of failing to roll it forward."""
    maria = maria_without_binlog
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_CACHE_DIR=str(tmp_path / "cache"))
    repo, password_file = tmp_path / "repo", tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    init = subprocess.run([MEDARK, "--repo", str(repo), "--password-file", str(password_file),
                           "init"], env=env, capture_output=True, text=True, check=False)
    assert init.returncode == 0, init.stderr
    maria.root_sql("CREATE DATABASE lis; CREATE TABLE lis.results (id INT PRIMARY KEY, "
                   "value VARCHAR(32)); INSERT INTO lis.results "
                   "SELECT seq, CONCAT('r', seq) FROM lis.seq_1_to_500")
    config = _write_config(tmp_path, repo, password_file, "mariadb", maria.dsn,
                           ["SELECT count(*) = 500 FROM lis.results"], [CLIENT_CHECK])
    run = subprocess.run([MEDARK, "run", "db", "--config", str(config)], env=env,
                         capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stderr
    maria.root_sql("INSERT INTO lis.results VALUES (501, 'after the backup')")
    done = _verify(config, env)
    assert done.returncode == 0, done.stderr
    doc = done.json()
    step = doc["steps"][0]
    assert doc["status"] == "succeeded" and step["kind"] == "mariadb"
    assert step["mariadb_check"] == "passed" and step["tables"] >= 1
    _nothing_left(tmp_path)
