"""The database audit trail of a MariaDB server with the server_audit plugin
(docs/dbaudit.md): a small workload (an ordinary user, an export INTO OUTFILE, a GRANT,
failed logins "at night") collected in three runs of `dbaudit collect` around a
rotation of the plugin's log; each logged event stored once, and the month's analysis
finds exactly the planted findings. Night is placed by the configured working hours.
(The report's section and Sichuan 1.5.2: test_dbaudit_report_cli.py.)"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Cli
from mysql_server import MariaServer, can_run_servers, chown_mysql, make_base
from plan_site import write_plan_config

from medark.sources.mysql import audit_log

PLUGIN = Path("/usr/lib/mysql/plugin/server_audit.so")
pytestmark = pytest.mark.skipif(
    can_run_servers() is not None or not PLUGIN.exists(),
    reason=str(can_run_servers() or "the server_audit plugin is not installed"))

PLAN = """\
[systems.lis]
owner = "lab"
criticality = "core"

[[systems.lis.sources]]
type = "mariadb"
dsn = "mysql://medark@127.0.0.1:{port}"
audit = {{ log = "{log}", format = "server_audit", allow = ["127.0.0.1/32", "local"], \
working_hours = "{hours}", timezone = "UTC" }}

[plans.lis]
system = "lis"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "1d"
rto = "1d"
retention = {{ daily = 7 }}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[MariaServer]:
    server = MariaServer(make_base(), log_bin=False)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(server.base)], check=False)


def client(server: MariaServer, user: str, password: str, query: str,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["mariadb", "--no-defaults", "--protocol=TCP", "--host=127.0.0.1",
                           f"--port={server.port}", f"--user={user}", "--batch", "-e", query],
                          env={**os.environ, "MYSQL_PWD": password}, capture_output=True,
                          text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"mariadb as {user}: {done.stderr}")
    return done


def logged(log: Path) -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(log.parent.glob(log.name + "*"), key=lambda p: p.stat().st_mtime_ns):
        events, _end = audit_log.parse(path.read_bytes(), 0, UTC)
        found += [(e.user, e.cls, e.statement) for e in events]
    return found


def test_server_audit_workload_collected_once_and_analysed(cli: Cli, tmp_path: Path,
                                                           server: MariaServer) -> None:
    audit_dir = server.base / "audit"
    audit_dir.mkdir()
    chown_mysql(audit_dir)
    log = audit_dir / "server_audit.log"
    server.root_sql(
        "CREATE DATABASE lis; CREATE TABLE lis.results (id int, value text); "
        "INSERT INTO lis.results VALUES (1, 'a'), (2, 'b'); "
        "CREATE USER 'tech'@'%' IDENTIFIED BY 'Tech-pw-1'; "
        "GRANT SELECT ON lis.* TO 'tech'@'%'; "
        "CREATE USER 'analyst'@'%' IDENTIFIED BY 'Analyst-pw-1'; "
        "GRANT SELECT ON lis.* TO 'analyst'@'%'; GRANT FILE ON *.* TO 'analyst'@'%'")
    server.root_sql("INSTALL SONAME 'server_audit'")
    server.root_sql(f"SET GLOBAL server_audit_file_path = '{log}'; "
                    "SET GLOBAL server_audit_events = 'CONNECT,QUERY'; "
                    "SET GLOBAL server_audit_excl_users = 'medark'; "
                    "SET GLOBAL server_audit_logging = ON")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    config = write_plan_config(cli, tmp_path, PLAN, port=server.port, log=log,
                               hours="08:00-18:00")

    client(server, "tech", "Tech-pw-1", "SELECT value FROM lis.results WHERE id = 2")
    out = server.base / "tmp" / "export.csv"
    client(server, "analyst", "Analyst-pw-1",
           f"SELECT * FROM lis.results INTO OUTFILE '{out}'")
    cli("dbaudit", "collect", "--config", config, password=None)
    server.root_sql("SET GLOBAL server_audit_file_rotate_now = ON")
    server.root_sql("GRANT SELECT ON lis.* TO 'analyst'@'%'")
    cli("dbaudit", "collect", "--config", config, password=None)  # a new collector

    boundary = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(math.ceil((boundary - datetime.now(UTC)).total_seconds()) + 1.2)
    for _ in range(2):
        assert client(server, "mallory", "guess", "SELECT 1", check=False).returncode != 0
    cli("dbaudit", "collect", "--config", config, password=None)

    stored = cli("dbaudit", "search", "--json", "--last", "0", "--config", config,
                 password=None).json()
    assert len(list(audit_dir.glob("server_audit.log*"))) == 2
    assert [(e["user"], e["class"], e["statement"]) for e in stored] == logged(log)
    status = cli("--json", "dbaudit", "status", "--config", config, password=None).json()
    assert [(s["source"], s["events"], s["last_error"]) for s in status] == [
        ("lis", len(stored), None)]
    assert status[0]["path"] == str(log)
    zone = ZoneInfo("Asia/Shanghai")  # the configuration's (working hours are in it)
    hours = f"{start.astimezone(zone):%H:%M:%S}-{boundary.astimezone(zone):%H:%M:%S}"
    config.write_text(config.read_text().replace("08:00-18:00", hours))
    month = f"{boundary.astimezone(zone):%Y-%m}"
    report = cli("--json", "dbaudit", "report", "--month", month, "--config", config,
                 password=None).json()
    assert sorted((f["kind"], f["subject"], f["count"]) for f in report["findings"]) == [
        ("bulk_read", "analyst", 1), ("failed_logins", "127.0.0.1", 2),
        ("privilege", "root", 1)], report["findings"]

