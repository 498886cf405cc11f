"""`medark compliance` judging application-level DR (等保 9.1.4.9 d `djbh.4.switch`,
Sichuan 1.4.2 `sichuan.1.4.2`) from the DR actions the catalog recorded: a recent
succeeded drill passes and its switch time is measured against 3 minutes; a slow
failover fails the switch time; a drill that failed afterwards fails the switch-over;
nothing within 90 days fails and says what to run; a system without `[dr.SYSTEM]` fails;
a general system is not judged on the switch time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import Cli
from dr_site import dr_nodes

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.util import clock

CONFIG = """\
timezone = "UTC"

[catalog]
url = "{catalog}"

[sites.main]
location = "CN-SC"

[sites.east]
location = "CN-SC"
role = "campus"

[repositories.local]
site = "main"
url = "{data}/repo"
password_file = "{data}/password"

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}

[systems.his]
owner = "信息科"
criticality = "core"

[[systems.his.sources]]
type = "files"
paths = ["{data}"]

[systems.lis]
owner = "检验科"

[[systems.lis.sources]]
type = "files"
paths = ["{data}"]

[systems.oa]
owner = "办公室"
criticality = "general"

[[systems.oa.sources]]
type = "files"
paths = ["{data}"]

[dr.his]
drill = "0 3 1 * *"
"""

NODES = dr_nodes("his", "host=127.0.0.1 port=1 user=medark dbname=his",
                 "host=127.0.0.1 port=2 user=medark dbname=his")
"""Unreachable on purpose: these tests read the catalog, not the servers."""


def _judge(cli: Cli, config: Path, *extra: str, lang: str = "en"
           ) -> tuple[int, dict[tuple[str, str], dict[str, Any]]]:
    result = cli("--json", "compliance", "--profile", "三甲", "--level", "4", "--sichuan",
                 "--lang", lang, "--config", config, *extra, password=None, check=False)
    doc = next(d for d in result.json_lines() if d.get("message_type") == "compliance")
    return result.returncode, {(v["system"], v["requirement"]): v for v in doc["verdicts"]}


def _failover(catalog: Catalog, held: float, healthy_after: float) -> int:
    """A failover recorded as the DR commands do: its steps, clients held `held` s,
    the application healthy at the DR site `healthy_after` s after the clients were held."""
    action = catalog.start_dr_action("his", "failover", "zhang.wei")
    at = clock.now()
    catalog.record_step(action, DrStep("preflight", at, 0.05, "ok"))
    catalog.record_step(action, DrStep("hold clients", at + timedelta(seconds=0.05), 0.01,
                                       "ok"))
    catalog.record_step(action, DrStep("promote standby", at + timedelta(seconds=1), 0.5,
                                       "ok"))
    catalog.record_step(action, DrStep("redirect clients", at + timedelta(seconds=1.5), 0.2,
                                       "ok"))
    catalog.record_step(action, DrStep("start services at east", at + timedelta(seconds=2),
                                       healthy_after - 3, "ok"))
    catalog.record_step(action, DrStep("health checks",
                                       at + timedelta(seconds=0.05 + healthy_after - 1), 1.0,
                                       "ok"))
    catalog.finish_dr_action(action, "succeeded", switch_seconds=held,
                             data_loss={"bytes": 8192, "commits": 3, "summary": "8192 bytes"})
    return action


def test_switch_over_and_switch_time_are_measured_from_the_dr_actions(
        cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    config = tmp_path / "medark.toml"
    config.write_text(CONFIG.format(catalog=url, data=tmp_path) + NODES, encoding="utf-8")
    catalog = Catalog(url)
    try:
        code, verdicts = _judge(cli, config)
        switch, time = verdicts[("his", "djbh.4.switch")], verdicts[("his", "sichuan.1.4.2")]
        assert switch["design"] == {"status": "pass", "evidence": "[dr.his]: postgres standby "
                                    "at site east (streaming), drills 0 3 1 * *"}, switch
        assert switch["status"] == "fail" and code == 17  # a must: never drilled
        assert switch["measured"]["evidence"] == ("no drill or switch recorded for his in "
                                                  "the last 90d: run medark dr drill his")
        assert time["status"] == "warn"  # recommended
        assert time["measured"]["evidence"] == ("no switch time measured for his in the "
                                                "last 90d: run medark dr drill his")
        # no [dr.lis]: fails as a missing offsite copy does; oa is not a main system
        lis = verdicts[("lis", "djbh.4.switch")]
        assert lis["status"] == "fail" and lis["design"]["evidence"] == \
            "no [dr.lis] table: no standby to switch to (docs/dr.md)"
        assert verdicts[("lis", "sichuan.1.4.2")]["status"] == "warn"
        assert verdicts[("oa", "sichuan.1.4.2")]["status"] == "n/a"
        assert verdicts[("oa", "djbh.4.switch")]["status"] == "fail"
        assert verdicts[("his", "三甲.dr.rto")]["status"] == "not covered"  # not this check

        drill = catalog.start_dr_action("his", "drill", "daemon")
        catalog.finish_dr_action(drill, "succeeded", switch_seconds=42.4)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        code, verdicts = _judge(cli, config)
        switch, time = verdicts[("his", "djbh.4.switch")], verdicts[("his", "sichuan.1.4.2")]
        assert switch["status"] == "pass", switch
        assert switch["measured"]["evidence"].startswith(f"drill #{drill} succeeded {day} ")
        assert switch["measured"]["evidence"].endswith(" UTC (within 90d)")
        assert time["status"] == "pass", time
        assert time["measured"]["evidence"].endswith(": switch time 42s ≤ 3min"), time
        assert time["measured"]["evidence"].startswith(f"drill #{drill} {day} ")

        # a failover whose application came back after 4 min 10 s: the switch time is
        # from holding the clients to the health checks passing, not the 0.8 s of held
        # writes alone
        failover = _failover(catalog, held=0.8, healthy_after=250)
        _code, verdicts = _judge(cli, config)
        time = verdicts[("his", "sichuan.1.4.2")]
        assert time["status"] == "warn" and time["measured"]["status"] == "fail", time
        assert time["measured"]["evidence"].startswith(f"failover #{failover} {day} ")
        assert time["measured"]["evidence"].endswith(": switch time 4min10s > 3min"), time
        assert verdicts[("his", "djbh.4.switch")]["status"] == "pass"
        _code, chinese = _judge(cli, config, lang="zh")
        assert chinese[("his", "sichuan.1.4.2")]["measured"]["evidence"].startswith(
            f"故障切换 #{failover}（{day} ")
        assert chinese[("his", "sichuan.1.4.2")]["measured"]["evidence"].endswith(
            "切换时间 4 分钟 10 秒 > 3 分钟")

        # a drill that fails afterwards: the DR is not proved to work any more
        broken = catalog.start_dr_action("his", "drill", "daemon")
        catalog.finish_dr_action(broken, "failed", error="health check web: HTTP 503\nmore")
        code, verdicts = _judge(cli, config)
        switch = verdicts[("his", "djbh.4.switch")]
        assert switch["status"] == "fail" and code == 17
        assert switch["measured"]["evidence"].startswith(f"drill #{broken} failed {day} ")
        assert switch["measured"]["evidence"].endswith(
            ", after the last success: health check web: HTTP 503; once fixed, run medark "
            "dr drill his"), switch
        _code, chinese = _judge(cli, config, lang="zh")
        assert chinese[("his", "djbh.4.switch")]["measured"]["evidence"].startswith(
            f"演练 #{broken} 于 {day} ")

        fixed = catalog.start_dr_action("his", "drill", "daemon")
        catalog.finish_dr_action(fixed, "succeeded", switch_seconds=38.0)
        code, verdicts = _judge(cli, config)
        assert verdicts[("his", "djbh.4.switch")]["status"] == "pass"
        assert verdicts[("his", "sichuan.1.4.2")]["measured"]["evidence"].endswith(
            ": switch time 38s ≤ 3min")

        # judged 91 days on, the newest success is too old to prove anything
        later = (datetime.now(UTC) + timedelta(days=91)).isoformat()
        code, verdicts = _judge(cli, config, "--at", later)
        switch, time = verdicts[("his", "djbh.4.switch")], verdicts[("his", "sichuan.1.4.2")]
        assert switch["status"] == "fail" and code == 17
        assert switch["measured"]["evidence"] == (
            f"no drill or switch recorded for his in the last 90d (the last, drill #{fixed}, "
            f"succeeded {switch['measured']['evidence'].split('succeeded ')[1]}")
        assert switch["measured"]["evidence"].endswith("): run medark dr drill his")
        assert time["measured"]["status"] == "fail"
        # as of before the first drill, none of it counts
        before = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        _code, verdicts = _judge(cli, config, "--at", before)
        assert verdicts[("his", "djbh.4.switch")]["measured"]["evidence"].startswith(
            "no drill or switch recorded")
        text = cli("compliance", "--profile", "三甲", "--level", "4", "--sichuan", "--lang",
                   "zh", "--config", config, password=None, check=False).stdout
        assert f"演练 #{fixed} 于 {day}" in text and "（近 90 天内）" in text
        assert "未配置 [dr.lis]：没有可切换的备用系统" in text
    finally:
        catalog.close()
