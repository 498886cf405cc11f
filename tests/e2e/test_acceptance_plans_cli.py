"""Issue 5's acceptance, end to end through the real `medark`: a PostgreSQL HIS, a
MariaDB LIS and a PACS file tree, a local and an offsite repository, under the daemon on
short intervals (seconds standing in for hours). One source breaks and its jobs fail;
`medark compliance` shows the passes, the RPO breach the failures cause (measured against
a custom profile with a 20-second RPO) and the fix once the next job runs; restore tests
of all three systems measure their RTO; the monthly report renders, and its PDF pages are
checked as images."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mysql_server as my
import pg_server as pg
import pytest
from conftest import MEDARK, PASSWORD, Cli, nothing_left_in

pytestmark = pytest.mark.usefixtures("private_tmp")  # TMPDIR of its own: nothing_left_in

CONFIG = """\
[hospital]
name = "验收县人民医院"
tier = "acceptance"
level = 3

[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[profiles.acceptance]
base = "三甲"
[[profiles.acceptance.requirements]]
id = "acceptance.pacs.rpo"
title = "PACS RPO ≤ 20 s (seconds stand for minutes)"
check = "local_rpo"
limit = "20s"
systems = ["pacs"]

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

[systems.his]
name = "HIS"
owner = "it"
criticality = "core"
records = "inpatient"

[[systems.his.sources]]
type = "postgres"
dsn = "{pg_dsn}"
stream = true

[systems.lis]
name = "LIS"
owner = "laboratory"

[[systems.lis.sources]]
type = "mariadb"
dsn = "{my_dsn}"
stream = true

[systems.pacs]
name = "PACS"
owner = "radiology"
records = "outpatient"

[[systems.pacs.sources]]
type = "files"
paths = ["{pacs}"]

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1min"
rto = "15min"
retention = {{ daily = 7, yearly = 30 }}
copies = [{{ to = "offsite", schedule = "continuous" }}]
restore_test = {{ schedule = "every 30s", sql = ["SELECT count(*) >= 5000 FROM vitals"] }}

[plans.lis]
system = "lis"
repository = "local"
schedule = "every 1h"
rpo = "1min"
rto = "15min"
retention = {{ daily = 7 }}
copies = [{{ to = "offsite", schedule = "continuous" }}]
restore_test = {{ schedule = "every 30s", sql = ["SELECT count(*) = 500 FROM lis.results"] }}

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 4s"
rpo = "20s"
rto = "15min"
retention = {{ daily = 7, yearly = 15 }}
copies = [{{ to = "offsite", schedule = "continuous" }}]
restore_test = {{ schedule = "every 30s" }}
retries = 0
"""


@pytest.fixture
def servers() -> Iterator[tuple[pg.PgServer, my.MariaServer]]:
    for reason in (pg.can_run_servers(), my.can_run_servers()):
        if reason is not None:
            pytest.skip(reason)
    pg_base = pg.make_base()
    bin_dir = pg.pg_bin()
    assert bin_dir is not None
    postgres = pg.PgServer(pg_base, pg.free_port(), bin_dir, settings={"archive_mode": "off"})
    maria = my.MariaServer(my.make_base())
    try:
        postgres.init()
        postgres.start()
        maria.init()
        maria.start()
        yield postgres, maria
    finally:
        postgres.stop()
        maria.stop()
        # This test's sandboxes only (under its own TMPDIR): another worker's restore
        # test, running meanwhile, has "medark-restore-test-" in its arguments too.
        subprocess.run(["pkill", "-f", "--", f"{os.environ['TMPDIR']}/medark-restore-test-"],
                       check=False)
        for base in (pg_base, maria.base):
            shutil.rmtree(base, ignore_errors=True)
            for extra in base.parent.glob(base.name + "*"):
                shutil.rmtree(extra, ignore_errors=True)


def test_a_hospital_under_the_daemon_proves_its_plans(
        cli: Cli, tmp_path: Path, servers: tuple[pg.PgServer, my.MariaServer]) -> None:
    postgres, maria = servers
    postgres.sql("CREATE TABLE vitals AS SELECT g AS id, md5(g::text) AS reading "
                 "FROM generate_series(1, 5000) g")
    maria.root_sql("CREATE DATABASE lis; CREATE TABLE lis.results (id INT PRIMARY KEY, "
                   "value VARCHAR(32)); INSERT INTO lis.results "
                   "SELECT seq, CONCAT('r', seq) FROM lis.seq_1_to_500")
    pacs = tmp_path / "pacs"
    (pacs / "2026" / "11").mkdir(parents=True)
    for i in range(30):
        (pacs / "2026" / "11" / f"ct{i:03}.dcm").write_bytes(os.urandom(50_000))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    cli("-r", tmp_path / "offsite", "init")
    config = tmp_path / "medark.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", repo=cli.repo,
                                    offsite=tmp_path / "offsite", password_file=password_file,
                                    pg_dsn=postgres.dsn, my_dsn=maria.dsn, pacs=pacs),
                      encoding="utf-8")
    cli("config", "check", "--config", config, password=None)

    def jobs() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = cli("jobs", "--json", "--config", config,
                                          password=None).json()
        return found

    def succeeded(plan: str, kind: str) -> list[dict[str, Any]]:
        return [j for j in jobs() if j["plan"] == plan and j["kind"] == kind
                and j["status"] == "succeeded"]

    def verdicts() -> tuple[int, dict[tuple[str, str], dict[str, Any]]]:
        result = cli("--json", "compliance", "--profile", "acceptance", "--level", "3",
                     "--config", config, password=None, check=False)
        doc = next(d for d in result.json_lines() if d.get("message_type") == "compliance")
        return result.returncode, {(v["system"], v["requirement"]): v
                                   for v in doc["verdicts"]}

    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config),
                               "--poll", "0.2", "--retry-base", "1"], env=env, text=True,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        # the first hours: every system backed up, copied offsite, restore-tested
        for plan in ("his", "lis", "pacs"):
            pg.wait_for(lambda p=plan: bool(succeeded(p, "restore_test")), 240,
                   f"a restore test of {plan}")
        pg.wait_for(lambda: len(succeeded("pacs", "backup")) >= 3, 60, "three PACS backups")
        code, found = verdicts()
        for system in ("his", "lis", "pacs"):
            for rid in ("三甲.local.rpo", "三甲.local.rto", "三甲.offsite.rpo", "djbh.1.local",
                        "djbh.2.offsite", "djbh.3.realtime", "residency"):
                assert found[(system, rid)]["status"] == "pass", found[(system, rid)]
            assert found[(system, "三甲.dr.rto")]["status"] == "not covered"
            assert found[(system, "djbh.3.hot")]["status"] == "not covered"
        assert found[("pacs", "acceptance.pacs.rpo")]["status"] == "pass"
        assert ("his", "acceptance.pacs.rpo") not in found  # a requirement of PACS alone
        assert found[("his", "records.retention")]["status"] == "pass"
        assert code == 0, [v for v in found.values() if v["status"] == "fail"]

        # the failing job: the PACS share disappears; its backups fail and its RPO grows
        # past the profile's 20 seconds
        broken = datetime.now(UTC)
        pacs.rename(tmp_path / "pacs-unmounted")
        pg.wait_for(lambda: any(j["plan"] == "pacs" and j["kind"] == "backup"
                           and j["status"] == "failed" for j in jobs()), 30,
               "a failed PACS backup")
        pg.wait_for(lambda: (datetime.now(UTC) - broken).total_seconds() > 25, 30, "the breach")
        code, found = verdicts()
        breach = found[("pacs", "acceptance.pacs.rpo")]
        assert breach["status"] == "fail" and "achieved RPO" in breach["measured"]["evidence"]
        assert found[("pacs", "三甲.local.rpo")]["status"] == "pass"  # 10 min: still met
        assert found[("his", "三甲.local.rpo")]["status"] == "pass"  # others unaffected
        assert code == 17
        alerts = cli("alerts", "--json", "--open", "--config", config, password=None).json()
        assert {"job_failed", "rpo_breach"} <= {a["kind"] for a in alerts
                                               if a["plan"] == "pacs"}, alerts

        # the fix: the share is back, the next job brings the RPO back under its target
        (tmp_path / "pacs-unmounted").rename(pacs)
        fixed = datetime.now(UTC)
        pg.wait_for(lambda: any(j["plan"] == "pacs" and j["kind"] == "backup"
                           and j["status"] == "succeeded"
                           and datetime.fromisoformat(j["started_at"]) > fixed
                           for j in jobs()), 60, "a PACS backup after the fix")
        code, found = verdicts()
        assert found[("pacs", "acceptance.pacs.rpo")]["status"] == "pass"
        assert code == 0
        pg.wait_for(lambda: not [a for a in cli("alerts", "--json", "--open", "--config", config,
                                           password=None).json() if a["plan"] == "pacs"],
               30, "the PACS alerts to resolve")
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
    assert daemon.returncode == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    assert not [j for j in jobs() if j["status"] == "running"]
    # offsite points are read from the offsite repository: still proved with the daemon down
    code, found = verdicts()
    for system in ("his", "lis", "pacs"):
        assert found[(system, "djbh.2.offsite")]["status"] == "pass", found[(system,
                                                                             "djbh.2.offsite")]

    # restore tests: each system's RTO measured, servers restored from the newest point
    for plan, kind in (("his", "postgres"), ("lis", "mariadb")):
        test = succeeded(plan, "restore_test")[-1]["details"]
        assert test["restored"][0]["kind"] == kind and test["rto_seconds"] > 0
    nothing_left_in(Path(os.environ["TMPDIR"]))

    # the monthly report, checked as the pages a reader sees
    month = datetime.now(UTC).strftime("%Y-%m")
    out = tmp_path / "reports"
    done = cli("--json", "report", "monthly", "--month", month, "--output", out, "--config",
               config, password=None).json()
    pdf = Path(done["pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for words in ("验收县人民医院", "数据安全分析月报", "HIS", "LIS", "PACS", "恢复演练",
                  "合规评估", "acceptance"):
        assert words in text, words
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / "page")],
                   check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2
    assert _inked_share(pages[0]) > 0.01  # title, tables and the RPO chart
    for page in pages:  # a last page may hold only a table's tail, never nothing
        assert _inked_share(page) > 0.0005, f"{page.name} is blank"
    print(json.dumps({"pages": len(pages), "report": str(pdf)}))


def _inked_share(png: Path) -> float:
    """The share of a page's pixels that are not white: text, tables and charts."""
    from PIL import Image

    with Image.open(png) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
    return sum(histogram[:200]) / max(1, sum(histogram))
