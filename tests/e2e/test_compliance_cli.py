"""`medark compliance` through the real command: passes proved by measurements, the RPO
breach a failing source causes, the fix once the next job runs, "not covered" for what is
not built, and the exit code (0 only when no "must" fails)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import PASSWORD, Cli

CONFIG = """\
[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[sites.main]
location = "CN-SC"

[sites.regional]
location = "CN-SC"
role = "regional"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[repositories.offsite]
site = "regional"
url = "{offsite}"
password_file = "{password_file}"

[systems.pacs]
owner = "radiology"
records = "outpatient"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 5min"
rpo = "10min"
rto = "15min"
retention = {{ daily = 30, yearly = 15 }}
copies = [{{ to = "offsite", schedule = "every 10min" }}]
restore_test = {{ schedule = "0 3 * * 0" }}
offsite_restore_test = {{ repository = "offsite", schedule = "0 4 1 * *" }}
"""


def _verdicts(cli: Cli, config: Path, *at: str) -> tuple[int, dict[str, Any]]:
    result = cli("--json", "compliance", "--profile", "三甲", "--level", "2", "--config",
                 config, *at, password=None, check=False)
    doc = next(d for d in result.json_lines() if d.get("message_type") == "compliance")
    return result.returncode, {v["requirement"]: v for v in doc["verdicts"]}


def test_compliance_is_proved_by_measurements(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "pacs"
    data.mkdir()
    (data / "a.dcm").write_bytes(os.urandom(10_000))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    cli("-r", tmp_path / "offsite", "init")
    config = tmp_path / "medark.toml"

    def write() -> None:
        config.write_text(CONFIG.format(state=tmp_path / "state", repo=cli.repo,
                                        offsite=tmp_path / "offsite", data=data,
                                        password_file=password_file), encoding="utf-8")

    write()
    code, verdicts = _verdicts(cli, config)
    assert code == 17  # nothing has run: nothing is proved
    assert verdicts["三甲.local.rpo"]["measured"]["evidence"] == "no achieved RPO"

    cli("run", "pacs", "--config", config, password=None)  # backup and the offsite copy
    cli("verify", "pacs", "--config", config, password=None)
    code, verdicts = _verdicts(cli, config)
    offsite_rto = verdicts["三甲.offsite.rto"]
    assert offsite_rto["status"] == "warn", offsite_rto  # scheduled, never measured
    assert offsite_rto["measured"]["evidence"] == "no offsite restore test RTO"
    wrong = cli("verify", "pacs", "--from", "nowhere", "--config", config, password=None,
                check=False)
    assert wrong.returncode == 2 and "not a copy target" in wrong.stderr
    tested = cli("--json", "verify", "pacs", "--from", "offsite", "--config", config,
                 password=None).json()
    assert tested["status"] == "succeeded" and tested["repository"] == "offsite"
    code, verdicts = _verdicts(cli, config)
    for rid in ("三甲.local.rpo", "三甲.local.rto", "djbh.1.local", "djbh.2.offsite",
                "三甲.offsite.rpo", "三甲.offsite.rto", "residency"):
        assert verdicts[rid]["status"] == "pass", verdicts[rid]
    assert verdicts["三甲.dr.rto"]["status"] == "not covered"
    assert verdicts["records.retention"]["design"]["status"] == "pass"
    # 三甲's local application-level DR is a must that is not built: "not covered" is
    # neither a pass nor a failure, and the exit code follows the failures alone
    assert {v["requirement"] for v in verdicts.values() if v["status"] == "fail"} == set()
    assert code == 0

    # the next backup fails; judged 11 minutes on (as an audit would be), the newest point
    # is older than 三甲's 10 minutes: the breach shows
    data.rename(tmp_path / "moved")
    assert cli("run", "pacs", "--config", config, password=None, check=False).returncode == 1
    later = ["--at", (datetime.now(UTC) + timedelta(minutes=11)).isoformat()]
    code, verdicts = _verdicts(cli, config, *later)
    rpo = verdicts["三甲.local.rpo"]
    assert rpo["status"] == "fail" and "achieved RPO" in rpo["measured"]["evidence"], rpo
    assert code == 17
    text = cli("compliance", "--profile", "三甲", "--level", "2", "--config", config, *later,
               password=None, check=False)
    assert "FAIL" in text.stdout and "achieved RPO" in text.stdout
    assert "must\" requirement(s) fail" in text.stderr

    (tmp_path / "moved").rename(data)  # fixed: the next job brings the RPO back
    cli("run", "pacs", "--config", config, password=None)
    code, verdicts = _verdicts(cli, config,
                               "--at", (datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    assert verdicts["三甲.local.rpo"]["status"] == "pass" and code == 0
