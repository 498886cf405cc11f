"""`medark dr switchover` of a repository-fed standby: the standby has no connection to
the primary (made by `pg restore --standby` from the repository the primary archives
to). Under a write load through pgbouncer, the switch closes the primary's last WAL
segment, waits until the standby has replayed it from the repository, promotes it and
moves the clients: exit 0, no request failed, every acknowledged order on the new
primary. The new primary archives its timeline into the same repository (`pg restore
--standby` set that up), and the old primary is rewound and made its repository-fed
standby: a write on the new primary reaches it through the repository alone. Then
`dr failback` switches back the same way, again losing nothing and failing no request,
and leaves the DR node a repository-fed standby as it was at the start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, TEST_KDF
from dr_site import datadir_control, dr_nodes, preamble
from his_app import ORDERS_DDL
from pg_server import (
    PgServer,
    archive_command,
    as_pg,
    can_run_servers,
    chown_pg,
    free_port,
    make_base,
    medark_for_postgres,
    pg_bin,
    wait_for,
)
from pgbouncer_server import PgbouncerServer, pgbouncer_bin
from write_load import HisApp, WriteLoad

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed"),
]


@dataclass
class Setup:
    base: Path
    primary: PgServer
    standby_data: Path
    standby_port: int
    pooler: PgbouncerServer
    app: HisApp
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.base / "medark.toml"

    def dr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MEDARK, "dr", *args, "--config", str(self.config),
                               "--catalog", f"sqlite:///{self.base / 'catalog.db'}"],
                              env=self.env, capture_output=True, text=True, check=False,
                              timeout=600)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    base = make_base()
    bin_dir = pg_bin()
    assert bin_dir is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF)
    repo, cache, password = base / "repo", base / "pgcache", base / "password"
    medark = medark_for_postgres(base)
    password.write_text(PASSWORD + "\n")
    for path in (repo, cache):
        path.mkdir(mode=0o700)
    for path in (repo, cache, password):
        chown_pg(path)
    password.chmod(0o600)
    standby_data, standby_port = Path(f"{base}-standby"), free_port()
    primary = PgServer(base, free_port(), bin_dir, settings={
        "wal_log_hints": "on",  # pg_rewind, for the failback
        "archive_mode": "on", "archive_command": "'" + archive_command(
            medark, repo, password, cache).replace("'", "''") + "'"})
    pooler: PgbouncerServer | None = None
    app: HisApp | None = None

    def as_postgres(*args: str) -> None:
        done = as_pg([*medark.split(), "--repo", str(repo), "--password-file",
                      str(password), "--cache-dir", str(cache), *args], env=env, timeout=300)
        assert done.returncode == 0, done.stderr

    try:
        as_postgres("init")
        primary.init()
        primary.start()
        primary.sql(ORDERS_DDL)
        as_postgres("pg", "backup", "--dsn", primary.dsn)
        restored = subprocess.run(
            [MEDARK, "--repo", str(repo), "--password-file", str(password), "--cache-dir",
             str(base / "root-cache"), "pg", "restore", "--target-dir", str(standby_data),
             "--standby", "--start", "--port", str(standby_port), "--medark-command",
             medark, "--timeout", "120"], env=env, capture_output=True, text=True,
            check=False, timeout=300)
        assert restored.returncode == 0, restored.stderr
        pooler = PgbouncerServer(primary.port)
        pooler.start()
        app = HisApp(pooler.client_dsn).start()
        built = Setup(base, primary, standby_data, standby_port, pooler, app, env)
        tool = primary.tool("pg_ctl")
        built.config.write_text(preamble(primary.dsn, repositories=f"""
[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password}"
""") + """
[dr.his]
feed = "repository"
repository = "local"
max_lag = "1h"
""" + dr_nodes("his", primary.dsn,
               f"host=127.0.0.1 port={standby_port} user=postgres dbname=postgres",
               datadir_control(primary.data, tool),
               datadir_control(standby_data, tool),
               extra=f'medark_command = "{medark}"\n') + f"""
[dr.his.client_switch]
type = "pgbouncer"
ini = "{pooler.ini}"
admin_dsn = "{pooler.admin_dsn}"
database = "his"

[[dr.his.health]]
type = "sql"
name = "writable"
query = "SELECT NOT pg_is_in_recovery()"
expect = "true"
""", encoding="utf-8")
        yield built
    finally:
        if app is not None:
            app.stop()
        if pooler is not None:
            pooler.stop()
        primary.stop()
        primary.stop(standby_data)
        for path in (base, standby_data, Path(f"{standby_data}.medark-wal")):
            shutil.rmtree(path, ignore_errors=True)


def test_a_repository_fed_standby_takes_over_with_nothing_lost(setup: Setup) -> None:
    load = WriteLoad(setup.app.port, prefix="repo-", clients=2).start()
    wait_for(lambda: load.acked() >= 30, timeout=60, what="orders before the switch")
    started = time.monotonic()
    result = setup.dr("switchover", "his", "--yes", "--json")
    if result.returncode != 0:
        load.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: load.snapshot().first_ack_on(setup.standby_port, started) is not None,
             timeout=60, what="an order on the new primary")
    record = load.stop()
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["status"] == "succeeded", doc
    steps = {s["name"]: s for s in doc["steps"]}
    assert "from repository local" in steps["wait for standby"]["detail"]
    reinstated = steps["reinstate old primary"]
    assert reinstated["result"] == "ok", reinstated
    assert "replays repository local" in reinstated["detail"], reinstated
    assert record.failures == [], record.failures[:5]
    refs = [a.ref for a in record.acks]
    found = setup.primary.sql("SELECT string_agg(ref, ',') FROM orders",
                              port=setup.standby_port)
    assert set(refs) <= set(found.split(","))
    assert setup.primary.sql("SELECT pg_is_in_recovery()", port=setup.standby_port) == "f"
    _fed_through_the_repository(setup, new=setup.standby_port, old=setup.primary.port,
                                ref="after-switchover")
    print(f"repository-fed switch-over: writes held {doc['switch_seconds']} s, "
          f"{len(refs)} orders, 0 failed; {reinstated['detail']}")


def _fed_through_the_repository(setup: Setup, new: int, old: int, ref: str) -> None:
    """`old` is a standby with no streaming source that refuses writes, and an order
    written on `new` reaches it once `new` archived the segment into the repository."""
    assert setup.primary.sql("SELECT pg_is_in_recovery()", port=old) == "t"
    assert setup.primary.sql("SELECT count(*) FROM pg_stat_wal_receiver", port=old) == "0"
    refused = subprocess.run(
        [setup.primary.tool("psql"), "-h", "127.0.0.1", "-p", str(old), "-U", "postgres",
         "-d", "postgres", "-Atc",
         "INSERT INTO orders (ref, patient) VALUES ('must-fail', 'p')"],
        capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "read-only" in refused.stderr, refused.stderr
    setup.primary.sql(f"INSERT INTO orders (ref, patient) VALUES ('{ref}', 'p')", port=new)
    setup.primary.sql("SELECT pg_switch_wal()", port=new)
    wait_for(lambda: setup.primary.sql(
        f"SELECT count(*) FROM orders WHERE ref = '{ref}'", port=old) == "1",
        timeout=90, what=f"{ref} replayed from the repository")


def test_failback_returns_to_the_configured_primary(setup: Setup) -> None:
    """The configured primary is a repository-fed standby already: failback waits for it
    to catch up, switches back, and makes the DR node a repository-fed standby again."""
    load = WriteLoad(setup.app.port, prefix="back-", clients=2).start()
    wait_for(lambda: load.acked() >= 30, timeout=60, what="orders before the failback")
    started = time.monotonic()
    result = setup.dr("failback", "his", "--yes", "--json")
    if result.returncode != 0:
        load.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: load.snapshot().first_ack_on(setup.primary.port, started) is not None,
             timeout=60, what="an order on the configured primary")
    record = load.stop()
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["status"] == "succeeded", doc
    names = [s["name"] for s in doc["steps"]]
    assert names[:2] == ["find roles", "wait for catch-up"], names
    steps = {s["name"]: s for s in doc["steps"]}
    # rewound, or (the WAL back to the fork already archived and recycled) copied anew
    # with the old directory kept aside
    how = steps["reinstate old primary"]["detail"]
    assert "replays repository local" in how, how
    assert "rewound with pg_rewind" in how or "copied anew" in how, how
    if "copied anew" in how:
        assert list(setup.base.parent.glob(f"{setup.standby_data.name}.medark-replaced-*"))
    assert record.failures == [], record.failures[:5]
    refs = [a.ref for a in record.acks]
    found = setup.primary.sql("SELECT string_agg(ref, ',') FROM orders")
    assert set(refs) <= set(found.split(","))
    assert setup.primary.sql("SELECT pg_is_in_recovery()") == "f"
    _fed_through_the_repository(setup, new=setup.primary.port, old=setup.standby_port,
                                ref="after-failback")
