"""`medark report monthly` through the real command: HTML and PDF in Chinese (and
English), the month's jobs, restore tests and compliance in them (the requirements and
evidence in the report's language), Chinese text that really renders in the PDF (a CJK
font embedded, text extracted, the page drawn as an image), and the last whole month or
quarter when none is given."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import PASSWORD, Cli

CONFIG = """\
[hospital]
name = "示例县人民医院"
tier = "三乙"
level = 2

[catalog]
url = "sqlite:///{state}/catalog.sqlite"

[sites.main]
name = "主院区"
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[systems.pacs]
name = "PACS 影像归档"
owner = "放射科"
records = "inpatient"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "30min"
retention = {{ daily = 30, yearly = 30 }}
restore_test = {{ schedule = "0 3 * * 0" }}
"""

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils is not installed")


@needs_poppler
def test_the_monthly_report_renders_in_chinese_and_english(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "pacs"
    data.mkdir()
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    config = tmp_path / "medark.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", repo=cli.repo, data=data,
                                    password_file=password_file), encoding="utf-8")
    for i in range(3):
        (data / f"study{i}.dcm").write_bytes(os.urandom(200_000))
        cli("run", "pacs", "--config", config, password=None)
    cli("verify", "pacs", "--config", config, password=None)
    month = datetime.now(UTC).strftime("%Y-%m")  # the catalog's jobs are from today
    out = tmp_path / "reports"
    result = cli("--json", "report", "monthly", "--month", month, "--output", out,
                 "--config", config, password=None)
    assert result.stderr == ""  # no matplotlib warning (a glyph missing from a font)
    done = result.json()
    html = Path(done["html"]).read_text(encoding="utf-8")
    assert "示例县人民医院 数据安全分析月报" in html and "PACS 影像归档" in html
    assert "100.0%" in html  # 3 of 3 backups succeeded
    assert "<svg" in html and "合规评估" in html and "三乙" in html
    pdf = Path(done["pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for words in ("数据安全分析月报", "备份概况", "恢复演练与 RTO", "合规评估", "PACS 影像归档"):
        assert words in text, words
    compliance = text[text.index("合规评估"):]
    for words in ("本地备份 RPO ≤ 15 分钟", "提供重要数据的本地数据备份与恢复功能", "通过",
                  "医疗数据存储于中国大陆境内", "实测：实际 RPO", "设计：备份计划 pacs"):
        assert words in compliance, words
    assert "local backup" not in compliance and "achieved RPO" not in compliance
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True,
                           check=True).stdout
    assert "Noto-Sans-CJK" in fonts, fonts
    png = tmp_path / "page"
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(png)],
                   check=True)
    page = next(tmp_path.glob("page*.png"))
    assert page.stat().st_size > 20_000  # a drawn page, not a blank one
    english = cli("--json", "report", "monthly", "--month", month, "--lang", "en",
                  "--output", out, "--config", config, password=None).json()
    assert Path(english["pdf"]).name == f"report-{month}-en.pdf"
    assert "Monthly data-security analysis report" in Path(english["html"]).read_text(
        encoding="utf-8")
    text = subprocess.run(["pdftotext", english["pdf"], "-"], capture_output=True,
                          text=True, check=True).stdout
    compliance = " ".join(text[text.index("Compliance"):].split())
    for words in ("local backup RPO ≤ 15 min", "local backup and recovery of", "pass",
                  "Measured: achieved RPO", "Design: plans pacs"):
        assert words in compliance, words
    assert "本地备份" not in compliance and "实测" not in compliance
    assert "PACS 影像归档" in text  # the configuration's own names stay as written
    bad = cli("report", "monthly", "--month", "2026-13", "--config", config, password=None,
              check=False)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
    now = datetime.now(UTC)
    quarter = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    quarterly = cli("--json", "report", "quarterly", "--quarter", quarter, "--output", out,
                    "--config", config, password=None).json()
    text = subprocess.run(["pdftotext", "-layout", quarterly["pdf"], "-"],
                          capture_output=True, text=True, check=True).stdout
    assert "网络安全分析季报" in text and "容灾与安全事件" in text and "未覆盖" in text

    # no --month: the last whole month (no --quarter: quarter) in the hospital's time zone
    def previous() -> tuple[str, str]:
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        last = today.replace(day=1) - timedelta(days=1)
        quarter = today.year * 4 + (today.month - 1) // 3 - 1
        return f"{last:%Y-%m}", f"{quarter // 4}-Q{quarter % 4 + 1}"

    expected = {previous()}
    latest = cli("--json", "report", "monthly", "--output", out, "--config", config,
                 password=None).json()
    latest_quarter = cli("--json", "report", "quarterly", "--output", out, "--config",
                         config, password=None).json()
    expected.add(previous())  # the same, unless a month ended meanwhile
    assert (latest["period"], latest_quarter["period"]) in expected
    assert Path(latest["pdf"]).name == f"report-{latest['period']}.pdf"
    assert "100.0%" not in Path(latest["html"]).read_text(encoding="utf-8")  # no jobs then
