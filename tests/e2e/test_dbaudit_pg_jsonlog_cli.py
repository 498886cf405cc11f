"""The database audit trail without pgaudit: PostgreSQL 15's jsonlog with
`log_statement = all`, `log_connections` and a refused login, collected by `dbaudit
collect` (docs/dbaudit.md); statements classified from their text."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Cli
from pg_server import PgServer, can_run_servers, free_port, make_base, pg_bin
from plan_site import write_plan_config

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))

PLAN = """\
[systems.emr]
owner = "it"

[[systems.emr.sources]]
type = "postgres"
dsn = "{dsn}"
audit = {{ log = "{log}", format = "jsonlog" }}

[plans.emr]
system = "emr"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "1d"
rto = "1d"
retention = {{ daily = 7 }}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    base = make_base()
    bin_dir = pg_bin()
    assert bin_dir is not None
    server = PgServer(base, free_port(), bin_dir, settings={
        "archive_mode": "off", "logging_collector": "on", "log_destination": "'jsonlog'",
        "log_directory": f"'{base / 'log'}'", "log_file_mode": "0644",
        "log_timezone": "'Asia/Shanghai'"})
    try:
        server.init()
        (server.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        server.start()
        yield server
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_jsonlog_with_log_statement(cli: Cli, tmp_path: Path, server: PgServer) -> None:
    server.sql("CREATE ROLE clerk LOGIN PASSWORD 'c-pass'; CREATE TABLE notes (id int, "
               "body text); INSERT INTO notes VALUES (1, 'Zhang San, 45'); "
               "GRANT SELECT ON notes TO clerk")
    server.sql("ALTER SYSTEM SET log_statement = 'all'")
    server.sql("ALTER SYSTEM SET log_connections = on")
    server.sql("SELECT pg_reload_conf()")
    env = {**os.environ, "PGPASSWORD": "c-pass", "PGAPPNAME": "EMR-Viewer"}
    base = [server.tool("psql"), "-h", "127.0.0.1", "-p", str(server.port), "-d", "postgres",
            "-AtX"]
    subprocess.run([*base, "-U", "clerk", "-c", "SELECT body FROM notes WHERE body = "
                    "'Zhang San, 45'", "-c", "COPY notes TO STDOUT"], env=env, check=True,
                   capture_output=True)
    refused = subprocess.run([*base, "-U", "clerk", "-c", "SELECT 1"],
                             env={**env, "PGPASSWORD": "wrong"}, capture_output=True)
    assert refused.returncode != 0
    server.sql("GRANT INSERT ON notes TO clerk")
    config = write_plan_config(cli, tmp_path, PLAN, dsn=server.dsn, log=server.base / "log")
    cli("dbaudit", "collect", "--config", config, password=None)
    stored = cli("dbaudit", "search", "--json", "--last", "0", "--config", config,
                 password=None).json()
    clerk = [(e["class"], e["statement"], e["application"]) for e in stored
             if e["user"] == "clerk"]
    assert clerk == [
        ("CONNECT", "", "EMR-Viewer"),
        ("READ", "SELECT body FROM notes WHERE body = '?'", "EMR-Viewer"),
        ("EXPORT", "COPY notes TO STDOUT", "EMR-Viewer"),
        ("FAILED_LOGIN", 'password authentication failed for user "clerk"', ""),
    ], clerk
    roles = [e for e in stored if e["class"] == "ROLE"]
    assert [(e["user"], e["statement"]) for e in roles] == [
        ("postgres", "GRANT INSERT ON notes TO clerk")]
    assert all("Zhang" not in str(e["statement"]) for e in stored)
    # log_timezone's "CST" read in the configuration's zone (Asia/Shanghai): the real time
    now = datetime.now(UTC)
    assert all(abs(datetime.fromisoformat(str(e["time"])) - now) < timedelta(minutes=5)
               for e in stored)
