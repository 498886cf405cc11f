"""Sichuan 1.5.2 judged (policy/compliance_dbaudit.py): each way to fail says why."""

from __future__ import annotations

from datetime import timedelta

from medark.policy.compliance import NOT_APPLICABLE, PASS, WARN, SystemFacts, evaluate
from medark.policy.compliance_dbaudit import Collector, DbAuditFacts
from medark.policy.compliance_profiles import profile

MIN = timedelta(minutes=1)


def verdict(facts: DbAuditFacts | None, language: str = "en") -> tuple[str, str, str]:
    system = SystemFacts("his", "none", ["his"], None, None, None, db_audit=facts)
    found = next(v for v in evaluate(profile("三甲", 1, sichuan=True), [system])
                 if v.requirement.id == "sichuan.1.5.2")
    return found.status, found.design.text(language), found.measured.text(language)


def healthy(**changes: object) -> DbAuditFacts:
    values: dict[str, object] = dict(
        core=True, databases=["his"], unaudited=[],
        collectors=[Collector("his", 2 * MIN, 5 * MIN)], period="2026-11", report=True)
    values.update(changes)
    return DbAuditFacts(**values)  # type: ignore[arg-type]


def test_pass_and_not_applicable() -> None:
    assert verdict(healthy())[0] == PASS
    assert "2026-11" in verdict(healthy())[2]
    assert verdict(healthy(core=False))[0] == NOT_APPLICABLE
    assert verdict(None)[0] == NOT_APPLICABLE
    assert verdict(healthy(databases=[]))[0] == NOT_APPLICABLE


def test_each_failure_is_explained() -> None:
    status, design, measured = verdict(healthy(unaudited=["his#1"],
                                               databases=["his", "his#1"]))
    assert status == WARN and "his#1" in design and "not collected: his#1" in measured
    assert "never collected" in verdict(healthy(collectors=[Collector("his", None, None)]))[2]
    assert "last collected 3.0 h ago" in verdict(
        healthy(collectors=[Collector("his", 180 * MIN, MIN)]))[2]
    assert "no event in the last 24 h" in verdict(
        healthy(collectors=[Collector("his", MIN, timedelta(days=2))]))[2]
    assert "permission denied" in verdict(
        healthy(collectors=[Collector("his", MIN, MIN, "log: permission denied")]))[2]
    status, _design, measured = verdict(healthy(report=False))
    assert status == WARN and "no monthly report of 2026-11" in measured
    assert "审计" in verdict(healthy(), "zh")[1]
