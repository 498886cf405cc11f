"""The database audit analysis in the monthly report, and Sichuan 1.5.2 (docs/dbaudit.md):
a MariaDB server_audit log of this month (a GRANT, failed logins, a read) collected,
the report's HTML shows the section in Chinese with the findings, and 1.5.2 fails,
saying why, until last month's report was written, then passes. The log is written
here as the plugin writes it (test_dbaudit_mariadb_cli.py reads a real server's); the
database itself is not needed (its dsn names a closed port)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from conftest import Cli
from pg_server import free_port
from plan_site import write_plan_config

PLAN = """\
[hospital]
sichuan = true

[systems.lis]
owner = "lab"
criticality = "core"

[[systems.lis.sources]]
type = "mariadb"
dsn = "mysql://medark@127.0.0.1:{port}"
audit = {{ log = "{log}", format = "server_audit", allow = ["10.1.0.0/16"], \
working_hours = "00:00-23:59:59", timezone = "UTC" }}

[plans.lis]
system = "lis"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "1d"
rto = "1d"
retention = {{ daily = 7 }}
"""


def test_the_monthly_report_and_sichuan_1_5_2(cli: Cli, tmp_path: Path) -> None:
    zone = ZoneInfo("Asia/Shanghai")  # the configuration's
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    first = now.astimezone(zone).date().replace(day=1)
    previous = f"{first - timedelta(days=1):%Y-%m}"
    then = f"{(first - timedelta(days=10)):%Y%m%d} 03:00:00"  # last month (UTC)
    log = tmp_path / "server_audit.log"
    log.write_text(
        f"{then},db1,tech,10.1.2.3,5,0,CONNECT,lis,,0\n"
        f"{then},db1,tech,10.1.2.3,5,9,QUERY,lis,'SELECT * FROM results WHERE id = 3',0\n"
        f"{then},db1,root,10.1.0.9,6,10,QUERY,lis,'GRANT SELECT ON lis.* TO \\'x\\'@\\'%\\'"
        "',0\n"
        f"{then},db1,mallory,10.1.7.7,7,0,FAILED_CONNECT,,,1045\n"
        f"{then},db1,mallory,10.1.7.7,8,0,FAILED_CONNECT,,,1045\n"
        f"{now:%Y%m%d %H:%M:%S},db1,tech,10.1.2.3,9,0,CONNECT,lis,,0\n")  # collected today
    config = write_plan_config(cli, tmp_path, PLAN, port=free_port(), log=log)
    cli("dbaudit", "collect", "--config", config, password=None)

    def verdict() -> dict[str, Any]:
        result = cli("--json", "compliance", "--lang", "en", "--config", config,
                     password=None, check=False)
        doc = next(d for d in result.json_lines() if d.get("message_type") == "compliance")
        found: dict[str, Any] = next(v for v in doc["verdicts"]
                                     if v["requirement"] == "sichuan.1.5.2")
        return found

    missing = verdict()
    assert missing["status"] == "warn", missing
    assert missing["design"]["evidence"] == "audit log collected for lis"
    assert missing["measured"]["evidence"] == (
        f"no monthly report of {previous} with the database audit analysis (medark report "
        f"--month {previous})")
    written = cli("--json", "report", "monthly", "--month", previous, "--output",
                  tmp_path / "reports", "--config", config, password=None).json()
    html = Path(written["html"]).read_text(encoding="utf-8")
    section = html[html.index("数据库审计分析"):]
    assert "权限变更" in section and "登录失败" in section
    assert "lis · 10.1.7.7" in section and "lis · root" in section  # the findings' rows
    pdf = subprocess.run(["pdftotext", str(written["pdf"]), "-"], capture_output=True,
                         text=True, check=True).stdout  # the PDF's pages say it too
    assert "数据库审计分析" in pdf and "权限变更" in pdf
    passed = verdict()
    assert passed["status"] == "pass", passed
