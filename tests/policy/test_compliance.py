"""The compliance rules on plain facts: profiles as data, design and measured checks,
recommended failures as warnings, capabilities not built as "not covered", and no
measurement never passing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medark.policy.compliance import (
    FAIL,
    NOT_APPLICABLE,
    NOT_COVERED,
    PASS,
    WARN,
    SystemFacts,
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
