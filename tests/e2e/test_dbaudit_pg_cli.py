"""The database audit trail of a PostgreSQL server with pgaudit (docs/dbaudit.md): a
scripted workload (an ordinary user, a bulk export, a GRANT, DDL on a clinical table, a
connection from an address outside the allow list, failed logins and a query "at
night") is collected by `dbaudit collect` and by the daemon, across a log rotation and
two daemon restarts; every event the server logged is stored exactly once, the chain
verifies, and the month's analysis finds exactly the planted findings.

"Night" is placed by the configured working hours, never by the wall clock: the window
ends between the day's workload and the night's (times read from the server)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import MEDARK, Cli
from pg_server import PgServer, can_run_servers, free_port, make_base, pg_bin
from plan_site import write_plan_config

from medark.catalog.dbaudit_state import events
from medark.catalog.store import Catalog
from medark.sources.postgres import audit_log

pytestmark = pytest.mark.skipif(
    can_run_servers() is not None or not Path(
        f"{pg_bin()}/../lib/pgaudit.so".replace("/bin/../", "/")).exists(),
    reason=str(can_run_servers() or "pgaudit is not installed (postgresql-15-pgaudit)"))

PLAN = """\
[systems.his]
owner = "it"
criticality = "core"

[[systems.his.sources]]
type = "postgres"
dsn = "{dsn}"
audit = {{ log = "{log}", format = "csvlog", allow = ["127.0.0.1/32"], working_hours = \
"{hours}", bulk_rows = 1000, clinical = ["public.patients"], every = "1s" }}

[plans.his]
system = "his"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "1d"
rto = "1d"
retention = {{ daily = 7 }}
"""

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    base = make_base()
    bin_dir = pg_bin()
    assert bin_dir is not None
    log = base / "log"
    server = PgServer(base, free_port(), bin_dir, settings={
        "archive_mode": "off", "listen_addresses": "'127.0.0.1,::1'",
        "shared_preload_libraries": "'pgaudit'", "logging_collector": "on",
        "log_destination": "'csvlog'", "log_directory": f"'{log}'",
        "log_filename": "'postgresql-%Y%m%d_%H%M%S.log'", "log_rotation_age": "0",
        "log_rotation_size": "0", "log_timezone": "'UTC'", "log_file_mode": "0644",
        "password_encryption": "'scram-sha-256'"})
    try:
        server.init()
        (server.data / "pg_hba.conf").write_text(HBA)
        server.start()
        yield server
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def psql(server: PgServer, user: str, password: str, query: str, app: str,
         host: str = "127.0.0.1", check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": password, "PGAPPNAME": app, "PGCONNECT_TIMEOUT": "10"}
    done = subprocess.run([server.tool("psql"), "-h", host, "-p", str(server.port), "-U", user,
                           "-d", "postgres", "-AtX", "-v", "ON_ERROR_STOP=1", "-c", query],
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"psql as {user}: {done.stderr}")
    return done


def server_now(server: PgServer) -> datetime:
    return datetime.fromisoformat(server.sql("SELECT to_char(clock_timestamp() AT TIME "
                                             "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
                                             ) + "+00:00")


def logged_events(log: Path) -> list[tuple[str, str, str, str]]:
    """Every event in the server's log files, parsed afresh: what must be stored."""
    found = []
    for path in sorted(log.glob("*.csv")):
        events, _end = audit_log.parse(path.read_bytes(), 0, "csvlog")
        found += [(e.time.isoformat(), e.user, e.cls, e.statement) for e in events]
    return found


def stored(cli: Cli, config: Path) -> list[dict[str, object]]:
    result: list[dict[str, object]] = cli("dbaudit", "search", "--json", "--last", "0",
                                          "--config", config, password=None).json()
    return result


def stored_count(tmp_path: Path) -> int:
    """Read in process (a `dbaudit search` per poll would cost a second each)."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'state' / 'catalog.sqlite'}")
    try:
        return sum(1 for _ in events(catalog))
    finally:
        catalog.close()


def run_daemon(cli: Cli, config: Path, until: object) -> None:
    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    daemon = subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config),
                               "--poll", "0.2"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not until():  # type: ignore[operator]
            assert time.monotonic() < deadline, "the daemon's collector stored nothing new"
            assert daemon.poll() is None, daemon.communicate()
            time.sleep(0.3)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err


def test_pgaudit_workload_collected_once_and_analysed(cli: Cli, tmp_path: Path,
                                                      server: PgServer) -> None:
    log = server.base / "log"
    server.sql("CREATE EXTENSION pgaudit")  # its event triggers name DDL's objects
    server.sql("CREATE ROLE nurse LOGIN PASSWORD 'n-pass'; CREATE ROLE analyst LOGIN "
               "PASSWORD 'a-pass'; CREATE TABLE patients AS SELECT g AS id, 'name ' || g "
               "AS name FROM generate_series(1, 3000) g; CREATE TABLE orders (id int, "
               "state text); INSERT INTO orders VALUES (1, 'new'); GRANT SELECT ON "
               "patients TO nurse; GRANT SELECT, UPDATE ON orders TO nurse; CREATE ROLE readers; "
               "GRANT SELECT ON patients TO readers; GRANT readers TO analyst")
    start = server_now(server) - timedelta(seconds=1)
    server.sql("ALTER SYSTEM SET pgaudit.log = 'read, write, ddl, role'")
    server.sql("ALTER SYSTEM SET pgaudit.log_rows = on")
    server.sql("ALTER SYSTEM SET pgaudit.log_catalog = off")
    server.sql("ALTER SYSTEM SET pgaudit.log_relation = on")
    server.sql("ALTER SYSTEM SET log_connections = on")
    server.sql("SELECT pg_reload_conf()")
    time.sleep(0.5)

    config = write_plan_config(cli, tmp_path, PLAN, dsn=server.dsn, log=log,
                               hours="08:00-18:00")
    # the day, part 1: an ordinary user's work and a bulk export
    psql(server, "nurse", "n-pass", "SELECT name FROM patients WHERE id = 7", "HIS-Client")
    psql(server, "nurse", "n-pass", "UPDATE orders SET state = 'done' WHERE id = 1",
         "HIS-Client")
    export = psql(server, "analyst", "a-pass", "COPY patients TO STDOUT", "ExportTool")
    assert len(export.stdout.splitlines()) == 3000
    first = cli("--json", "dbaudit", "collect", "--config", config, password=None)
    assert first.json_lines()[0]["events"] >= 6

    # a rotation, then part 2 collected by the daemon
    server.sql("SELECT pg_rotate_logfile()")
    time.sleep(0.3)
    server.sql("GRANT SELECT ON patients TO analyst")
    server.sql("ALTER TABLE patients ADD COLUMN note text")
    server.sql("CREATE TABLE scratch (x int)")
    psql(server, "analyst", "a-pass", "SELECT * FROM patients", "ExportTool")
    psql(server, "nurse", "n-pass", "SELECT count(*) FROM orders", "HIS-Client", host="::1")
    assert len(list(log.glob("*.csv"))) == 2
    run_daemon(cli, config, lambda: stored_count(tmp_path) >= len(logged_events(log)))

    # the night: failed logins, and a query outside working hours
    boundary = server_now(server) + timedelta(seconds=1)  # the last event of the day
    time.sleep(1.5)  # (the same host's clock: no connection, no event, meanwhile)
    for _ in range(3):
        failed = psql(server, "mallory", "guess", "SELECT 1", "psql", check=False)
        assert failed.returncode != 0
    psql(server, "nurse", "n-pass", "SELECT name FROM patients WHERE id = 8", "HIS-Client")
    run_daemon(cli, config, lambda: stored_count(tmp_path) >= len(logged_events(log)))

    # exactly once: what is stored is what the server logged, in order, no more
    events = stored(cli, config)
    expected = logged_events(log)
    assert [(e["time"], e["user"], e["class"], e["statement"]) for e in events] == expected
    assert sum(1 for e in events if e["class"] == "FAILED_LOGIN") == 3, [
        e for e in events if e["class"] == "FAILED_LOGIN"]
    exports = cli("dbaudit", "search", "--json", "--user", "analyst", "--class", "export",
                  "--config", config, password=None).json()
    assert [e["statement"] for e in exports] == ["COPY patients TO STDOUT"]
    verified = cli("--json", "audit", "verify", "--config", config, password=None).json()
    assert verified["intact"] and verified["records"] >= len(events)

    # the analysis: working hours end at the boundary, so only the night is outside
    zone = ZoneInfo("Asia/Shanghai")  # the configuration's time zone (the default)
    hours = f"{start.astimezone(zone):%H:%M:%S}-{boundary.astimezone(zone):%H:%M:%S}"
    config.write_text(config.read_text().replace("08:00-18:00", hours))
    month = f"{boundary.astimezone(zone):%Y-%m}"
    report = cli("--json", "dbaudit", "report", "--month", month, "--config", config,
                 password=None).json()
    by_id = {e["id"]: e for e in events}
    found = {(f["kind"], f["subject"]): f for f in report["findings"]}
    assert sorted((f["kind"], f["subject"]) for f in report["findings"]) == sorted([
        ("privilege", "postgres"), ("ddl", "public.patients"), ("bulk_read", "analyst"),
        ("bulk_read", "analyst"),
        ("off_hours", "nurse"), ("failed_logins", "127.0.0.1"),
        ("disallowed_client", "::1")]), [(f["kind"], f["subject"], f["count"], f["detail"])
                                          for f in report["findings"]]
    assert report["counts"]["bulk_read"] == 2  # the COPY TO and the 3000-row SELECT
    assert {by_id[f["events"][0]]["command"] for f in report["findings"]
            if f["kind"] == "bulk_read"} == {"COPY", "SELECT"}
    failed_group = found[("failed_logins", "127.0.0.1")]
    assert failed_group["count"] == 3
    assert {by_id[i]["user"] for i in failed_group["events"]} == {"mallory"}
    night = found[("off_hours", "nurse")]
    assert all(datetime.fromisoformat(str(by_id[i]["time"])) > boundary
               for i in night["events"])
    assert "GRANT SELECT ON patients TO analyst" in found[("privilege", "postgres")]["detail"]
    assert report["notes"]  # no month before: new programs from next month on
