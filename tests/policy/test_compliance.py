"""The compliance rules on plain facts: profiles as data, design and measured checks,
recommended failures as warnings, capabilities not built as "not covered", and no
measurement never passing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from medark.config.schedule import Schedule
from medark.policy.compliance import (
    FAIL,
    NOT_APPLICABLE,
    NOT_COVERED,
    PASS,
    WARN,
    OffsiteSchedule,
    SystemFacts,
    TargetRetention,
    evaluate,
    failed_musts,
)
from medark.policy.compliance_profiles import profile
from medark.policy.residency import SiteLocation, residency

MIN = timedelta(minutes=1)


def facts(**overrides: object) -> SystemFacts:
    base: dict[str, object] = dict(
        system="his", records="inpatient", plans=["his"], local_design_rpo=timedelta(0),
        local_rpo=2 * MIN, rto=5 * MIN, rto_targets=[15 * MIN],
        offsite_design_rpo=timedelta(0), offsite_realtime=True, offsite_rpo=3 * MIN,
        retention_reach=timedelta(days=30 * 365), record_minimum=timedelta(days=30 * 365))
    base.update(overrides)
    return SystemFacts(**base)  # type: ignore[arg-type]


def by_id(verdicts: list, system: str = "his") -> dict:
    return {v.requirement.id: v for v in verdicts if v.system == system}


def test_profiles_hold_the_tables() -> None:
    ids = {r.id for r in profile("三甲", 3)}
    assert {"三甲.local.rpo", "三甲.offsite.rpo", "djbh.1.local", "djbh.2.offsite",
            "djbh.3.realtime", "djbh.3.hot", "records.retention", "residency"} <= ids
    assert "djbh.4.switch" not in ids and "sichuan.1.4.3" not in ids
    assert {r.id for r in profile("tertiary-a", 4, sichuan=True)} >= {"djbh.4.switch",
                                                                       "sichuan.1.4.2"}
    tier3a = {r.id: r for r in profile("三甲", 2)}
    assert tier3a["三甲.local.rpo"].limit == 10 * MIN and tier3a["三甲.local.rpo"].must
    assert not tier3a["三甲.offsite.rpo"].must and tier3a["三甲.dr.rto"].must
    assert {r.id: r for r in profile("二级", 1)}["二级.local.rto"].limit == 30 * MIN
    for bad in (("四甲", 2), ("三甲", 5)):
        with pytest.raises(ValueError):
            profile(*bad)


def test_a_well_protected_system_passes_what_is_built() -> None:
    verdicts = by_id(evaluate(profile("三甲", 3), [facts()]))
    for rid in ("三甲.local.rpo", "三甲.local.rto", "三甲.offsite.rpo", "djbh.1.local",
                "djbh.2.offsite", "djbh.3.realtime", "residency"):
        assert verdicts[rid].status == PASS, (rid, verdicts[rid].public())
    for rid in ("三甲.dr.rto", "三甲.dr.rpo", "djbh.3.hot"):
        assert verdicts[rid].status == NOT_COVERED  # never a pass
    assert verdicts["records.retention"].design.status == PASS
    assert not failed_musts(list(verdicts.values()))


def test_a_breached_rpo_fails_a_must_and_names_the_numbers() -> None:
    verdicts = by_id(evaluate(profile("三甲", 2), [facts(local_rpo=42 * MIN)]))
    rpo = verdicts["三甲.local.rpo"]
    assert rpo.status == FAIL and rpo.design.status == PASS
    assert rpo.measured.evidence == "achieved RPO 42min > 10min"
    assert rpo in failed_musts(list(verdicts.values()))


def test_no_measurement_is_not_a_pass() -> None:
    verdicts = by_id(evaluate(profile("三乙", 1), [facts(local_rpo=None, rto=None,
                                                          rto_targets=[])]))
    assert verdicts["三乙.local.rpo"].measured.status == FAIL
    assert verdicts["三乙.local.rto"].design.evidence.startswith("no restore test scheduled")
    assert verdicts["三乙.local.rto"].status == FAIL


def test_a_missed_recommendation_is_a_warning() -> None:
    slow = facts(offsite_design_rpo=timedelta(hours=24), offsite_realtime=False,
                 offsite_rpo=timedelta(hours=20))
    verdicts = by_id(evaluate(profile("二级", 2), [slow]))
    assert verdicts["二级.offsite.rpo"].status == WARN  # recommended: > 30 min
    assert verdicts["djbh.2.offsite"].status == PASS  # must: scheduled offsite exists


def test_records_and_residency() -> None:
    short = facts(retention_reach=timedelta(days=10 * 365))
    assert by_id(evaluate(profile("三甲", 1), [short]))["records.retention"].status == FAIL
    none = facts(records="none", record_minimum=None)
    assert by_id(evaluate(profile("三甲", 1), [none]))["records.retention"].status == \
        NOT_APPLICABLE
    abroad = facts(residency_problems=[("offsite", residency(SiteLocation.parse("HK")))])
    verdict = by_id(evaluate(profile("三甲", 1), [abroad]))["residency"]
    assert verdict.status == FAIL
    assert verdict.measured.text("en").startswith("offsite: HK (Hong Kong) is outside")
    assert verdict.measured.text("zh").startswith("offsite: HK（香港）位于中国大陆境外")


def test_a_custom_profile_replaces_and_adds_requirements() -> None:
    from medark.config.plans import CHECKS, ProfileConf, RequirementConf
    from medark.policy.compliance import _CHECKS

    assert set(CHECKS) == set(_CHECKS)  # the configuration offers exactly what is judged
    county = ProfileConf(base="三乙", requirements=[
        RequirementConf(id="三乙.local.rpo", title="local RPO ≤ 5 min", check="local_rpo",
                        limit=5 * MIN),
        RequirementConf(id="county.pacs.rto", title="PACS RTO ≤ 2 h", check="local_rto",
                        limit=timedelta(hours=2), must=False, systems=["pacs"])])
    reqs = profile("county", 1, custom={"county": county})
    ids = [r.id for r in reqs]
    assert ids.index("三乙.local.rpo") == 1 and "county.pacs.rto" in ids and "djbh.1.local" in ids
    verdicts = evaluate(reqs, [facts(local_rpo=7 * MIN), facts(system="pacs")])
    his = by_id(verdicts)
    assert his["三乙.local.rpo"].status == FAIL  # 7 min: within 三乙's 15, not the county's 5
    assert his["三乙.local.rpo"].requirement.source == "profile county"
    assert "county.pacs.rto" not in his and "county.pacs.rto" in by_id(verdicts, "pacs")
    with pytest.raises(ValueError, match="county"):
        profile("city", 1, custom={"county": county})


def test_the_offsite_rto_is_measured_by_a_restore_test_from_the_copy() -> None:
    none = by_id(evaluate(profile("三甲", 1), [facts()]))["三甲.offsite.rto"]
    assert none.status == WARN and "offsite_restore_test" in none.design.evidence
    tested = facts(offsite_rto=20 * MIN, offsite_rto_targets=[45 * MIN])
    verdict = by_id(evaluate(profile("三甲", 1), [tested]))["三甲.offsite.rto"]
    assert verdict.status == PASS and verdict.measured.evidence == \
        "offsite restore test RTO 20min ≤ 1h"
    slow = facts(offsite_rto=2 * 60 * MIN, offsite_rto_targets=[45 * MIN])
    assert by_id(evaluate(profile("三甲", 1), [slow]))["三甲.offsite.rto"].status == WARN


SHANGHAI = ZoneInfo("Asia/Shanghai")
SICHUAN_AT = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


def _offsite(schedule: str) -> OffsiteSchedule:
    """A copy to the regional site as the service reads it: the schedule's longest gap
    over two weeks from the parser (config/schedule.py)."""
    gap = Schedule.parse(schedule).longest_gap(SHANGHAI, SICHUAN_AT, timedelta(days=14))
    return OffsiteSchedule("regional", schedule, gap or timedelta(0))


@pytest.mark.parametrize(("schedule", "status", "evidence"), [
    ("continuous", PASS, "continuous copy to regional"),
    ("every 6h", PASS, "copy to regional (every 6h): at most 6h between runs ≤ 1d"),
    ("0 2 * * *", PASS, "copy to regional (0 2 * * *): at most 1d between runs ≤ 1d"),
    ("0 */8 * * *", PASS, "copy to regional (0 */8 * * *): at most 8h between runs ≤ 1d"),
    ("0 3 * * 0", WARN, "copy to regional (0 3 * * 0): up to 7d between runs > 1d"),
    ("0 2 * * 1-5", WARN, "copy to regional (0 2 * * 1-5): up to 3d between runs > 1d"),
    ("* * * * 1-5", WARN, "copy to regional (* * * * 1-5): up to 2d1min between runs > 1d"),
    ("every 36h", WARN, "copy to regional (every 36h): up to 1d12h between runs > 1d"),
])
def test_sichuan_1_4_3_asks_for_a_copy_offsite_at_least_every_24_hours(
        schedule: str, status: str, evidence: str) -> None:
    copy = _offsite(schedule)
    fresh = facts(offsite_design_rpo=copy.gap, offsite_realtime=copy.gap == timedelta(0),
                  offsite_rpo=timedelta(hours=2), offsite_schedules=[copy])
    verdict = by_id(evaluate(profile("三甲", 1, sichuan=True), [fresh]))["sichuan.1.4.3"]
    assert verdict.design.evidence == evidence
    assert verdict.design.status == (PASS if status == PASS else FAIL)
    assert verdict.status == status  # recommended: a miss warns
    assert verdict.measured.status == PASS  # the offsite point is 2 h old either way
    assert "（" + schedule + "）" in verdict.design.text("zh") or schedule == "continuous"


def test_sichuan_1_4_3_judges_the_most_frequent_copy_and_needs_one() -> None:
    both = facts(offsite_schedules=[_offsite("0 3 * * 0"), OffsiteSchedule(
        "campus", "every 12h", timedelta(hours=12))])
    verdict = by_id(evaluate(profile("三甲", 1, sichuan=True), [both]))["sichuan.1.4.3"]
    assert verdict.status == PASS and "campus (every 12h)" in verdict.design.evidence
    none = facts(offsite_design_rpo=None, offsite_rpo=None, offsite_schedules=[])
    verdict = by_id(evaluate(profile("三甲", 1, sichuan=True), [none]))["sichuan.1.4.3"]
    assert verdict.design.evidence == "no copy to another site"
    assert verdict.measured.evidence == "no offsite copy"
    stale = facts(offsite_rpo=timedelta(hours=30),
                  offsite_schedules=[_offsite("0 2 * * *")])
    verdict = by_id(evaluate(profile("三甲", 1, sichuan=True), [stale]))["sichuan.1.4.3"]
    assert verdict.design.status == PASS and verdict.measured.status == FAIL


def test_record_retention_covers_every_copy_target() -> None:
    thirty = timedelta(days=30 * 365)
    kept = facts(retention_applied=timedelta(hours=1), target_retention=[
        TargetRetention("offsite", thirty, applied=timedelta(minutes=5)),
        TargetRetention("campus", None, applied=timedelta(hours=2))])
    verdict = by_id(evaluate(profile("三甲", 1), [kept]))["records.retention"]
    assert verdict.status == PASS, verdict.public()
    assert verdict.design.evidence == ("retention reaches 30y, at offsite: retention "
                                       "reaches 30y, at campus: retention reaches forever")
    assert verdict.measured.evidence.endswith(", at offsite: retention applied 5min ago, "
                                              "at campus: retention applied 2h ago")
    assert verdict.design.text("zh") == "保留期 30 年，offsite：保留期 30 年，campus：保留期 永久"

    short = facts(retention_applied=timedelta(hours=1), target_retention=[
        TargetRetention("offsite", timedelta(days=10 * 365), applied=timedelta(minutes=5))])
    verdict = by_id(evaluate(profile("三甲", 1), [short]))["records.retention"]
    assert verdict.status == FAIL and verdict.design.status == FAIL
    assert verdict.design.evidence == ("retention reaches 30y, at offsite: retention "
                                       "reaches 10y < 30y")
    assert verdict.design.text("zh").endswith("offsite：保留期 10 年 < 30 年")

    unapplied = facts(retention_applied=timedelta(hours=1),
                      target_retention=[TargetRetention("offsite", thirty)])
    verdict = by_id(evaluate(profile("三甲", 1), [unapplied]))["records.retention"]
    assert verdict.design.status == PASS and verdict.measured.status == NOT_COVERED
    assert verdict.measured.evidence.endswith(
        "at offsite: retention has not been applied (no forget:offsite ran)")
