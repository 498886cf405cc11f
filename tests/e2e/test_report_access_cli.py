"""`medark report monthly` / `quarterly` print the access section from the audit trail:
cross-institution grants, failed logins by address and account, administrators'
actions per actor, in Chinese and English. The pages are drawn (pdftoppm) to be looked
at. (A period without audit records: tests/service/test_report_access.py.)"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import PASSWORD, Cli

from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.store import Catalog

CONFIG = """\
[hospital]
name = "示例县人民医院"
tier = "三乙"
level = 3

[catalog]
url = "{catalog}"

[sites.main]
name = "主院区"
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[systems.his]
name = "HIS 医院信息系统"
owner = "信息科"

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
"""

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils is not installed")


def _grant(action: str, result: str = "ok", actor: str = "wang.fang") -> AuditEntry:
    return AuditEntry(actor, "10.20.0.8", action, "grant:12", result, "乡镇卫生院",
                      {"grant": 12, "from_institution": "县人民医院",
                       "to_institution": "乡镇卫生院", "purpose": "远程会诊"})


def _fill(catalog: Catalog) -> None:
    for entry in [
        _grant("grant.request"), _grant("grant.approve", actor="sec.admin"),
        _grant("grant.use"), _grant("grant.use"), _grant("grant.refused", "denied"),
        AuditEntry("wang.fang", "10.20.0.8", "grant.refused", "中心医院/pacs", "denied",
                   "中心医院", {"grant": None, "from_institution": "乡镇卫生院",
                               "to_institution": "中心医院", "purpose": None}),
        *[AuditEntry("zhang.wei", "192.168.40.17", "login", "zhang.wei", "failed")] * 5,
        AuditEntry("server", "192.168.40.17", "lockout", "zhang.wei"),
        AuditEntry("root", "203.0.113.9", "login", "root", "failed"),
        AuditEntry("sec.admin", "10.0.0.5", "user.create", "li.na", "ok", "县人民医院",
                   {"roles": ["operator"]}),
        AuditEntry("sec.admin", "10.0.0.5", "token.revoke", "li.na"),
        AuditEntry("sys.admin", "10.0.0.6", "institution.create", "乡镇卫生院", "ok", None,
                   {"title": "乡镇卫生院"}),
        AuditEntry("daemon", "daemon", "audit.anchor", "repository:/srv/worm"),
    ]:
        append(catalog, entry)


def _pdf_text(pdf: str) -> str:
    return subprocess.run(["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True,
                          check=True).stdout


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


@needs_poppler
def test_the_reports_have_an_access_section(cli: Cli, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    config = tmp_path / "medark.toml"
    config.write_text(CONFIG.format(catalog=url, repo=cli.repo, password_file=password_file,
                                    data=tmp_path), encoding="utf-8")
    catalog = Catalog(url)
    try:
        _fill(catalog)
    finally:
        catalog.close()
    now = datetime.now(UTC)
    out = tmp_path / "reports"
    monthly = cli("--json", "report", "monthly", "--month", now.strftime("%Y-%m"),
                  "--output", out, "--config", config, password=None).json()
    text = _pdf_text(monthly["pdf"])
    section = text[text.index("7. 访问与操作审计"):text.index("8. 合规评估")]
    lines = _lines(section)
    assert "来源：审计日志，本周期 17 条记录。" in lines, lines
    row = next(line for line in lines if line.startswith("#12"))
    assert "县人民医院 → 乡镇卫生院" in row and "远程会诊" in row and " 2 1 " in row, row
    assert any("grant.refused" in line and "拒绝" in line for line in lines), lines
    row = next(line for line in lines if line.startswith("无授权"))
    assert "乡镇卫生院 → 中心医院" in row and " 0 1 " in row, row
    row = next(line for line in lines if line.startswith("192.168.40.17"))
    assert "zhang.wei 5 1" in row, row
    assert any(line.startswith("203.0.113.9 root 1 0") for line in lines), lines
    assert "sec.admin 3" in lines and "sys.admin 1" in lines, lines
    assert "audit.anchor" not in section and "institution.create" in section
    html = Path(monthly["html"]).read_text(encoding="utf-8")
    assert "roles=[&#39;operator&#39;]" in html
    pages = tmp_path / "monthly"
    subprocess.run(["pdftoppm", "-png", "-r", "80", monthly["pdf"], str(pages)], check=True)
    assert len(list(tmp_path.glob("monthly*.png"))) >= 2

    english = cli("--json", "report", "monthly", "--month", now.strftime("%Y-%m"), "--lang",
                  "en", "--output", out, "--config", config, password=None).json()
    text = _pdf_text(english["pdf"])
    section = text[text.index("7. Access and administration audit"):
                   text.index("8. Compliance")]
    lines = _lines(section)
    # one more: writing the Chinese report above is itself recorded (report.written)
    assert "From the audit trail: 18 records in the period." in lines, lines
    assert any(line.startswith("192.168.40.17 zhang.wei 5 1") for line in lines), lines
    assert any("grant.refused" in line and "denied" in line for line in lines), lines
    assert any(line.startswith("none 乡镇卫生院 → 中心医院") for line in lines), lines
    assert "sec.admin 3" in lines, lines
    assert "拒绝" not in section and "审计" not in section
    subprocess.run(["pdftoppm", "-png", "-r", "80", english["pdf"],
                    str(tmp_path / "english")], check=True)

    quarter = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    quarterly = cli("--json", "report", "quarterly", "--quarter", quarter, "--output", out,
                    "--config", config, password=None).json()
    text = _pdf_text(quarterly["pdf"])
    assert "8. 访问与操作审计" in text and "9. 合规评估" in text
    assert "登录失败与跨机构访问见第8节" in "".join(text.split())
    assert "zhang.wei" in text[text.index("8. 访问与操作审计"):]
