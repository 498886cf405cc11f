"""`medark dr switchover` of a repository-fed standby: the standby has no connection to
the primary (made by `pg restore --standby` from the repository the primary archives
to). Under a write load through pgbouncer, the switch closes the primary's last WAL
segment, waits until the standby has replayed it from the repository, promotes it and
moves the clients: exit 0, no request failed, every acknowledged order on the new
primary; the old primary's reinstatement is skipped with what to do instead. Then
`dr failback` rewinds the old primary, lets it catch up by streaming and switches back,
again losing nothing and failing no request.
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
               datadir_control(standby_data, tool)) + f"""
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
    assert steps["reinstate old primary"]["result"] == "skipped"
    assert "medark pg restore --standby" in steps["reinstate old primary"]["detail"]
    assert record.failures == [], record.failures[:5]
    refs = [a.ref for a in record.acks]
    found = setup.primary.sql("SELECT string_agg(ref, ',') FROM orders",
                              port=setup.standby_port)
    assert set(refs) <= set(found.split(","))
    assert setup.primary.sql("SELECT pg_is_in_recovery()", port=setup.standby_port) == "f"
    assert setup.primary.sql("SHOW default_transaction_read_only") == "on"  # fenced
    print(f"repository-fed switch-over: writes held {doc['switch_seconds']} s, "
          f"{len(refs)} orders, 0 failed")


def test_failback_returns_to_the_configured_primary(setup: Setup) -> None:
    """With a network path between the sites again, failback rewinds the old primary,
    lets it catch up by streaming, and switches back; the DR node is left fenced, to be
    rebuilt as a repository-fed standby."""
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
    names = [s["name"] for s in doc["steps"]]
    assert names[:3] == ["find roles", "reinstate configured primary", "wait for catch-up"]
    # rewound, or (the WAL back to the fork already archived and recycled) copied anew
    # with the old directory kept aside
    how = doc["steps"][1]["detail"]
    assert "rewound with pg_rewind" in how or "copied anew" in how, how
    if "copied anew" in how:
        assert list(setup.primary.base.glob("data.medark-replaced-*")), how
    assert record.failures == [], record.failures[:5]
    refs = [a.ref for a in record.acks]
    found = setup.primary.sql("SELECT string_agg(ref, ',') FROM orders")
    assert set(refs) <= set(found.split(","))
    assert setup.primary.sql("SELECT pg_is_in_recovery()") == "f"
    assert setup.primary.sql("SHOW default_transaction_read_only",
                             port=setup.standby_port) == "on"  # the DR node, fenced
