"""The DR switch-over rules on plain facts (the catalog side is tests/e2e/
test_compliance_dr_cli.py): the 90-day window's edge, a success with no switch time, a
custom switch-time requirement, the Chinese words, and the must/recommended outcome of a
system without a standby."""

from __future__ import annotations

from datetime import timedelta

from medark.config.plans import ProfileConf
from medark.policy.compliance import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    WARN,
    DrEvent,
    DrSetup,
    SystemFacts,
    Verdict,
    evaluate,
)
from medark.policy.compliance_profiles import profile

DAY = timedelta(days=1)
SETUP = DrSetup("postgres", "east", "stream", None)


def facts(**overrides: object) -> SystemFacts:
    base: dict[str, object] = dict(
        system="his", records="inpatient", plans=["his"], local_design_rpo=timedelta(0),
        local_rpo=timedelta(minutes=2), rto=timedelta(minutes=5), dr=SETUP)
    base.update(overrides)
    return SystemFacts(**base)  # type: ignore[arg-type]


def judged(f: SystemFacts, requirement: str) -> Verdict:
    found = {v.requirement.id: v for v in evaluate(profile("三甲", 4, sichuan=True), [f])}
    return found[requirement]


def test_the_window_edge_and_an_unmeasured_switch() -> None:
    at_edge = DrEvent(3, "switchover", "2026-09-06 03:00 CST", 90 * DAY, 95.0)
    switch = judged(facts(dr_latest=at_edge), "djbh.4.switch")
    assert switch.status == PASS, switch.public()
    assert switch.measured.evidence == (
        "switch-over #3 succeeded 2026-09-06 03:00 CST (within 90d)")
    assert switch.design.evidence == (
        "[dr.his]: postgres standby at site east (streaming), no drill schedule")
    time = judged(facts(dr_latest=at_edge), "sichuan.1.4.2")
    assert time.measured.evidence == (
        "switch-over #3 2026-09-06 03:00 CST: switch time 1min35s ≤ 3min")
    late = DrEvent(3, "switchover", "2026-09-06 03:00 CST", 90 * DAY + timedelta(seconds=1),
                   95.0)
    assert judged(facts(dr_latest=late), "djbh.4.switch").status == FAIL
    unmeasured = DrEvent(4, "failback", "2026-12-01 10:00 CST", DAY, None)
    time = judged(facts(dr_latest=unmeasured), "sichuan.1.4.2")
    assert time.status == WARN
    assert time.measured.evidence == (
        "failback #4 2026-12-01 10:00 CST recorded no switch time: run medark dr drill his")
    assert time.measured.text("zh") == (
        "回切 #4（2026-12-01 10:00 CST）未记录切换时间：请运行 medark dr drill his")


def test_without_a_standby_a_must_fails_and_a_recommendation_warns() -> None:
    bare = facts(dr=None)
    assert judged(bare, "djbh.4.switch").status == FAIL
    assert judged(bare, "sichuan.1.4.2").status == WARN
    general = facts(dr=None, criticality="general")
    assert judged(general, "sichuan.1.4.2").status == NOT_APPLICABLE


def test_a_custom_switch_time_requirement_uses_its_limit() -> None:
    custom = {"county": ProfileConf.model_validate({"requirements": [
        {"id": "county.switch", "title": "HIS switch ≤ 30 s", "check": "switch_time",
         "limit": "30s", "systems": ["his"]}]})}
    requirements = profile("county", 1, custom=custom)
    drill = DrEvent(9, "drill", "2026-12-01 03:00 CST", DAY, 42.0)
    verdicts = {v.requirement.id: v for v in evaluate(requirements, [facts(dr_latest=drill)])}
    switch = verdicts["county.switch"]
    assert switch.status == FAIL
    assert switch.measured.evidence == "drill #9 2026-12-01 03:00 CST: switch time 42s > 30s"
