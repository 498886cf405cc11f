"""The monthly and quarterly reports list the period's DR drills and switches from the
catalog: each with its switch time, the writes held and a failover's data loss, in
Chinese and in English; the page is drawn (pdftoppm) so it can be looked at."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSWORD, Cli
from dr_site import dr_nodes

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.util import clock

CONFIG = """\
[hospital]
name = "示例县人民医院"
tier = "三甲"
level = 4
sichuan = true

[catalog]
url = "{catalog}"

[sites.main]
name = "主院区"
location = "CN-SC"

[sites.east]
location = "CN-SC"
role = "campus"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[systems.his]
name = "HIS 医院信息系统"
owner = "信息科"
criticality = "core"

[[systems.his.sources]]
type = "files"
paths = ["{data}"]

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "30min"
retention = {{ daily = 30 }}

[dr.his]
"""

NODES = dr_nodes("his", "host=127.0.0.1 port=1 user=medark dbname=his",
                 "host=127.0.0.1 port=2 user=medark dbname=his")
"""Unreachable on purpose: these tests read the catalog, not the servers."""

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils is not installed")


def _record(catalog: Catalog) -> tuple[int, int, int]:
    """A drill (healthy in 41.6 s), a failover that lost 8 KiB in 3 commits (clients held
    0.8 s, healthy 19 s after), and a drill that failed."""
    drill = catalog.start_dr_action("his", "drill", "daemon")
    catalog.finish_dr_action(drill, "succeeded", switch_seconds=41.6)
    failover = catalog.start_dr_action("his", "failover", "zhang.wei")
    at = clock.now()
    for name, offset, seconds in (("hold clients", 0.0, 0.01), ("promote standby", 0.3, 0.4),
                                  ("redirect clients", 0.7, 0.1),
                                  ("start services at east", 0.8, 15.0),
                                  ("health checks", 15.8, 3.2)):
        catalog.record_step(failover, DrStep(name, at + timedelta(seconds=offset), seconds,
                                             "ok"))
    catalog.finish_dr_action(failover, "succeeded", switch_seconds=0.8, data_loss={
        "bytes": 8192, "commits": 3, "summary": "8192 bytes, 3 commits not on the standby"})
    broken = catalog.start_dr_action("his", "drill", "daemon")
    catalog.finish_dr_action(broken, "failed", error="health check web: HTTP 503")
    return drill, failover, broken


def _pdf_text(pdf: str) -> str:
    return subprocess.run(["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True,
                          check=True).stdout


@needs_poppler
def test_the_reports_list_drills_and_switches(cli: Cli, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    config = tmp_path / "medark.toml"
    config.write_text(CONFIG.format(catalog=url, repo=cli.repo, password_file=password_file,
                                    data=tmp_path) + NODES, encoding="utf-8")
    catalog = Catalog(url)
    try:
        drill, failover, broken = _record(catalog)
    finally:
        catalog.close()
    now = datetime.now(UTC)
    out = tmp_path / "reports"
    monthly = cli("--json", "report", "monthly", "--month", now.strftime("%Y-%m"),
                  "--output", out, "--config", config, password=None).json()
    text = _pdf_text(monthly["pdf"])
    section = text[text.index("容灾演练与切换"):text.index("存储增长与重复数据删除")]
    lines = [" ".join(line.split()) for line in section.splitlines() if line.strip()]
    assert any(f"演练 #{drill}" in line and "成功" in line and "42 秒" in line
               for line in lines), lines
    row = next(line for line in lines if f"故障切换 #{failover}" in line)
    assert "成功" in row and "19 秒" in row and "800 毫秒" in row, row
    assert "未到达备用库" in section  # wrapped in the PDF's cell; whole in the HTML:
    html = Path(monthly["html"]).read_text(encoding="utf-8")
    assert "<td>8.00 KiB（3 个事务）未到达备用库</td>" in html
    assert any(f"演练 #{broken}" in line and "失败" in line for line in lines), lines
    assert "HTTP 503" in section and "health check web: HTTP 503" in html
    assert "切换时间：演练为容灾端服务恢复健康所用的时间" in section
    compliance = text[text.index("8. 合规评估"):]
    assert f"演练 #{broken}" in compliance  # the failed drill fails 9.1.4.9 d, cited
    png = tmp_path / "monthly"
    subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "2", monthly["pdf"],
                    str(png)], check=True)
    assert sorted(p.name for p in tmp_path.glob("monthly*.png"))

    english = cli("--json", "report", "monthly", "--month", now.strftime("%Y-%m"), "--lang",
                  "en", "--output", out, "--config", config, password=None).json()
    text = _pdf_text(english["pdf"])
    section = " ".join(text[text.index("DR drills and switches"):
                            text.index("Storage growth")].split())
    assert f"drill #{drill}" in section and "42s" in section, section
    assert f"failover #{failover}" in section and "19s" in section and "800ms" in section
    assert "not on the standby" in section, section
    assert "<td>8.00 KiB (3 commits) not on the standby</td>" in Path(
        english["html"]).read_text(encoding="utf-8")
    assert f"drill #{broken}" in section and "failed" in section
    assert "演练" not in section

    quarter = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    quarterly = cli("--json", "report", "quarterly", "--quarter", quarter, "--output", out,
                    "--config", config, password=None).json()
    text = _pdf_text(quarterly["pdf"])
    assert f"故障切换 #{failover}" in text and "容灾与安全事件" in text
    assert "见第 3 节" in text and "尚未提供" not in text.split("合规评估")[0]
    # a month without any: the table says so
    before = (now.replace(day=1) - timedelta(days=40)).strftime("%Y-%m")
    empty = cli("--json", "report", "monthly", "--month", before, "--output", out,
                "--config", config, password=None).json()
    text = _pdf_text(empty["pdf"])
    section = text[text.index("容灾演练与切换"):text.index("存储增长与重复数据删除")]
    assert "无" in section and "#" not in section
