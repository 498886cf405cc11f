"""The compliance words in both languages: every built-in requirement has a Chinese
title, every evidence template both spellings with the same values, numbers formatted
in the language asked for, and a custom requirement's title left as written."""

from __future__ import annotations

import re
import string
from datetime import timedelta

from medark.config.plans import ProfileConf, RequirementConf
from medark.policy.compliance import SystemFacts, evaluate
from medark.policy.compliance_profiles import profile
from medark.policy.compliance_text import EVIDENCE, PHRASES, span, title

HAN = re.compile(r"[\u4e00-\u9fff]")
MIN = timedelta(minutes=1)


def _fields(template: str) -> set[str]:
    return {name for _t, name, _f, _c in string.Formatter().parse(template) if name}


def test_every_template_has_both_languages_with_the_same_values() -> None:
    assert EVIDENCE["en"].keys() == EVIDENCE["zh"].keys()
    assert PHRASES["en"].keys() == PHRASES["zh"].keys()
    for key, english in EVIDENCE["en"].items():
        assert _fields(english) == _fields(EVIDENCE["zh"][key]), key


def test_every_built_in_requirement_has_a_chinese_title() -> None:
    for tier in ("二级", "三乙", "三甲"):
        for req in profile(tier, 4, sichuan=True):
            zh = title(req, "zh")
            assert HAN.search(zh.replace(tier, "")), (req.id, zh)
            assert title(req, "en") == req.title and not HAN.search(req.title)
    rto = {r.id: r for r in profile("三甲", 1)}["三甲.local.rto"]
    assert title(rto, "zh") == "本地备份 RTO ≤ 15 分钟"
    assert title({r.id: r for r in profile("二级", 1)}["二级.offsite.rto"], "zh") == \
        "异地备份 RTO ≤ 1 小时"


def test_evidence_with_numbers_is_formatted_in_either_language() -> None:
    facts = SystemFacts(system="his", records="inpatient", plans=["his"],
                        local_design_rpo=timedelta(0), local_rpo=90 * MIN, rto=None,
                        retention_reach=None, record_minimum=timedelta(days=30 * 365),
                        retention_applied=timedelta(days=2, hours=3))
    verdicts = {v.requirement.id: v for v in evaluate(profile("三甲", 1), [facts])}
    rpo = verdicts["三甲.local.rpo"].measured
    assert rpo.text("en") == "achieved RPO 1h30min > 10min"
    assert rpo.text("zh") == "实际 RPO 1 小时 30 分钟 > 10 分钟"
    kept = verdicts["records.retention"]
    assert kept.design.text("zh") == "保留期 永久"
    assert kept.measured.text("zh") == "保留策略 2 天 3 小时前执行；按策略保留每年的病历恢复点"
    assert verdicts["三甲.local.rto"].measured.text("zh") == "恢复演练 RTO：无记录"
    assert verdicts["三甲.dr.rto"].public("zh")["design"]["evidence"] == \
        "应用级容灾（备用系统）尚未提供"
    assert span(timedelta(days=365 * 15), "zh") == "15 年"
    assert span(timedelta(seconds=0.046), "zh") == "46 毫秒"  # a fast RTO is not "0 秒"
    assert span(timedelta(seconds=0.046), "en") == "46ms"
    assert span(timedelta(seconds=2.46), "en") == "2.5s"


def test_a_custom_title_is_never_translated() -> None:
    county = ProfileConf(base="三乙", requirements=[
        RequirementConf(id="三乙.local.rpo", title="local RPO ≤ 5 min", check="local_rpo",
                        limit=5 * MIN)])
    reqs = {r.id: r for r in profile("county", 1, custom={"county": county})}
    assert title(reqs["三乙.local.rpo"], "zh") == "local RPO ≤ 5 min"
    assert title(reqs["三乙.local.rto"], "zh") == "本地备份 RTO ≤ 20 分钟"
