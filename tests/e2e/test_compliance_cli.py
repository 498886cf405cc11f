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
    result = cli("--json", "compliance", "--profile", "三甲", "--level", "2", "--lang", "en",
                 "--config", config, *at, password=None, check=False)
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
    chinese = cli("compliance", "--profile", "三甲", "--level", "2", "--lang", "zh",
                  "--config", config, *later, password=None, check=False)
    assert chinese.returncode == 17
    row = next(line for line in chinese.stdout.splitlines() if "本地备份 RPO ≤ 10 分钟" in line)
    assert "不通过" in row and "必须" in row, row
    assert "实测：实际 RPO" in chinese.stdout and "> 10 分钟" in chinese.stdout
    assert "achieved" not in chinese.stdout and "FAIL" not in chinese.stdout

    (tmp_path / "moved").rename(data)  # fixed: the next job brings the RPO back
    cli("run", "pacs", "--config", config, password=None)
    code, verdicts = _verdicts(cli, config,
                               "--at", (datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    assert verdicts["三甲.local.rpo"]["status"] == "pass" and code == 0


def test_compliance_speaks_the_locale_or_the_configured_language(cli: Cli,
                                                                 tmp_path: Path) -> None:
    """--lang, else `[hospital] language`, else a Chinese locale, else English."""
    config = tmp_path / "medark.toml"
    text = CONFIG.format(state=tmp_path / "state", repo=cli.repo, offsite=tmp_path / "o",
                         data=tmp_path, password_file=tmp_path / "password")
    config.write_text(text, encoding="utf-8")
    args = ["compliance", "--profile", "三乙", "--level", "1", "--config", config]

    def run(config_lang: str | None, locale: str, *lang: str) -> str:
        config.write_text((f'[hospital]\nlanguage = "{config_lang}"\n\n' if config_lang
                           else "") + text, encoding="utf-8")
        env = dict(cli.env, LC_ALL="", LC_MESSAGES="", LANG=locale)
        result = Cli(cli.repo, env)(*args, *lang, password=None, check=False)
        assert result.returncode == 17, result.stderr  # nothing has run
        return result.stdout

    english = run(None, "C.UTF-8")
    assert "local backup RPO ≤ 15 min" in english and "本地备份" not in english
    chinese = run(None, "zh_CN.UTF-8")
    assert "本地备份 RPO ≤ 15 分钟" in chinese and "实际 RPO：无记录" in chinese
    assert "local backup" not in chinese
    assert "local backup RPO" in run(None, "zh_CN.UTF-8", "--lang", "en")
    assert "本地备份 RPO" in run("zh", "C.UTF-8")
    assert "local backup RPO" in run("en", "zh_CN.UTF-8")
    doc = next(d for d in Cli(cli.repo, dict(cli.env, LANG="zh_CN.UTF-8"))(
        "--json", *args, "--lang", "zh", password=None, check=False).json_lines()
        if d.get("message_type") == "compliance")
    assert doc["lang"] == "zh"
    rpo = next(v for v in doc["verdicts"] if v["requirement"] == "三乙.local.rpo")
    assert rpo["title"] == "本地备份 RPO ≤ 15 分钟"
    assert rpo["measured"]["evidence"] == "实际 RPO：无记录"


def test_copy_targets_retention_and_the_sichuan_daily_copy(cli: Cli, tmp_path: Path) -> None:
    """records.retention names each copy target's retention and its forget; Sichuan 1.4.3
    fails a weekly offsite copy by design (naming its schedule) and passes a daily one."""
    data = tmp_path / "pacs"
    data.mkdir()
    (data / "a.dcm").write_bytes(os.urandom(10_000))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    cli("init")
    cli("-r", tmp_path / "offsite", "init")
    config = tmp_path / "medark.toml"
    base = CONFIG.format(state=tmp_path / "state", repo=cli.repo, offsite=tmp_path / "offsite",
                         data=data, password_file=password_file)
    copies = 'copies = [{ to = "offsite", schedule = "every 10min" }]'
    assert copies in base

    def judge(schedule: str) -> dict[str, Any]:
        retention = "retention = { daily = 7, monthly = 6, yearly = 20 }"
        config.write_text(base.replace(copies, f'copies = [{{ to = "offsite", schedule = '
                                       f'"{schedule}", {retention} }}]'), encoding="utf-8")
        _code, verdicts = _verdicts(cli, config, "--sichuan")
        return verdicts

    weekly = judge("0 3 * * 0")
    kept = weekly["records.retention"]
    assert kept["design"] == {"status": "pass", "evidence": "retention reaches 15y, at "
                              "offsite: retention reaches 20y"}, kept
    assert kept["measured"]["status"] == "not covered"
    assert "at offsite: retention has not been applied (no forget:offsite ran)" in \
        kept["measured"]["evidence"]
    daily = weekly["sichuan.1.4.3"]
    assert daily["status"] == "warn" and daily["design"]["status"] == "fail", daily
    assert daily["design"]["evidence"] == \
        "copy to offsite (0 3 * * 0): up to 7d between runs > 1d"

    jobs = cli("--json", "run", "pacs", "--config", config, password=None).json_lines()
    assert [j["kind"] for j in jobs] == ["backup", "copy:offsite", "forget:offsite", "forget"]
    weekly = judge("0 3 * * 0")
    kept = weekly["records.retention"]
    assert kept["status"] == "pass", kept
    assert ", at offsite: retention applied " in kept["measured"]["evidence"], kept
    daily = weekly["sichuan.1.4.3"]
    assert daily["measured"]["status"] == "pass"  # fresh now, yet a week apart by design
    assert daily["status"] == "warn" and daily["design"]["status"] == "fail"

    daily = judge("0 2 * * *")["sichuan.1.4.3"]
    assert daily["status"] == "pass", daily
    assert daily["design"]["evidence"] == \
        "copy to offsite (0 2 * * *): at most 1d between runs ≤ 1d"
    assert judge("every 6h")["sichuan.1.4.3"]["status"] == "pass"
    assert judge("continuous")["sichuan.1.4.3"]["design"]["evidence"] == \
        "continuous copy to offsite"
    chinese = cli("compliance", "--profile", "三甲", "--level", "2", "--sichuan", "--lang",
                  "zh", "--config", config, password=None, check=False).stdout
    assert "，offsite：保留期 20 年" in chinese and "持续复制到 offsite" in chinese


def test_the_hospital_is_judged_by_its_configured_tier_and_level(cli: Cli,
                                                                 tmp_path: Path) -> None:
    """Without --profile/--level/--sichuan, `[hospital]` says which rules apply (as the
    reports read it); each flag given overrides its key."""
    config = tmp_path / "medark.toml"
    config.write_text('[hospital]\ntier = "二级"\nlevel = 2\nsichuan = true\n\n' + CONFIG.format(
        state=tmp_path / "state", repo=cli.repo, offsite=tmp_path / "o", data=tmp_path,
        password_file=tmp_path / "password"), encoding="utf-8")

    def judged(*flags: str) -> dict[str, Any]:
        result = cli("--json", "compliance", "--config", config, *flags, password=None,
                     check=False)
        assert result.returncode in (0, 17), result.stderr
        doc: dict[str, Any] = next(d for d in result.json_lines()
                                   if d.get("message_type") == "compliance")
        return doc

    doc = judged()
    assert (doc["profile"], doc["level"], doc["sichuan"]) == ("二级", 2, True)
    ids = {v["requirement"] for v in doc["verdicts"]}
    assert any(i.startswith("二级.") for i in ids) and any(i.startswith("sichuan.") for i in ids)
    assert not any(i.startswith("三甲.") for i in ids)
    doc = judged("--profile", "三甲", "--level", "3")
    assert (doc["profile"], doc["level"], doc["sichuan"]) == ("三甲", 3, True)
    assert any(v["requirement"].startswith("三甲.") for v in doc["verdicts"])
