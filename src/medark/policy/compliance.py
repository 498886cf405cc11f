"""Compliance: each requirement of a profile judged for each system, twice — by design
(do the plans provide it?) and by measurement (did the jobs deliver it?) — each pass,
fail or not covered, with the evidence (docs/architecture.md, convention 8).

Pure: the facts about each system (from the configuration and the job catalog) come in
as `SystemFacts`; nothing here reads a clock, a file or a database.

Rules:
- a failed "recommended" requirement is a warning, a failed "must" a failure;
- a capability Medark does not have yet (the application-level DR RTO/RPO, hot
  redundancy) is "not covered" — never a pass;
- a capability Medark has but a system does not use (no copy to another site, no
  `[dr.SYSTEM]` standby) fails, as a must, or warns, as a recommendation;
- no measurement is not a pass: a plan that never succeeded, or an RTO never tested,
  fails its measured check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from medark.policy.compliance_dbaudit import DbAuditFacts, judge
from medark.policy.compliance_netconfig import NetconfigFacts
from medark.policy.compliance_netconfig import judge as judge_devices
from medark.policy.compliance_profiles import Requirement
from medark.policy.compliance_text import Parts, Phrase, evidence, title
from medark.policy.residency import Residency

PASS = "pass"
WARN = "warn"
FAIL = "fail"
NOT_COVERED = "not covered"
NOT_APPLICABLE = "n/a"
_RANK = {PASS: 0, NOT_APPLICABLE: 0, NOT_COVERED: 1, WARN: 2, FAIL: 3}


@dataclass(frozen=True)
class OffsiteSchedule:
    """A copy to another site as planned: how often it runs."""

    target: str
    schedule: str
    """As the configuration writes it ("0 2 * * *", "every 6h", "continuous")."""
    gap: timedelta
    """The longest gap between two of its runs (config/schedule.py); zero when
    continuous."""


@dataclass(frozen=True)
class TargetRetention:
    """What a copy target keeps of the system's plans: its own retention, else the
    plan's (with several plans copying there, the shortest reach)."""

    target: str
    reach: timedelta | None
    """None: kept forever."""
    applied: timedelta | None = None
    """How long ago its forget (job forget:TARGET) last succeeded; None: never."""


@dataclass(frozen=True)
class DrSetup:
    """A system's `[dr.SYSTEM]` table, as far as compliance reads it."""

    kind: str
    """postgres or mariadb."""
    standby_site: str
    feed: str
    """stream or repository."""
    drill: str | None
    """The drill schedule as written; None: no scheduled drill."""


@dataclass(frozen=True)
class DrEvent:
    """A DR action cited as evidence (service/dr_evidence.py chose it)."""

    id: int
    kind: str
    """drill, switchover, failover or failback."""
    when: str
    """When it ended, as the hospital's time zone writes it."""
    ago: timedelta
    """How long before the judged moment it ended."""
    seconds: float | None = None
    """Its switch time (a drill's time to healthy); None: not measured."""
    error: str | None = None


@dataclass(frozen=True)
class SystemFacts:
    system: str
    records: str
    plans: list[str]
    local_design_rpo: timedelta | None
    """The longest gap the local backup schedule allows (zero with continuous WAL/binlog
    archiving); None when no plan backs the system up."""
    local_rpo: timedelta | None
    """Measured: age of the newest successful local backup; None when there is none."""
    rto: timedelta | None
    """Measured: the newest successful restore test's time to verified."""
    rto_targets: list[timedelta] = field(default_factory=list)
    offsite_design_rpo: timedelta | None = None
    """The longest gap between offsite copies (zero when continuous); None: no copy to
    another site."""
    offsite_realtime: bool = False
    offsite_rto: timedelta | None = None
    """Measured: the RTO of the newest successful restore test from an offsite copy."""
    offsite_rto_targets: list[timedelta] = field(default_factory=list)
    """RTO targets of the plans that schedule a restore test from an offsite copy."""
    offsite_rpo: timedelta | None = None
    """Measured: age of the newest point the offsite repository holds (its newest snapshot
    of the plan; for a database also its newest copied WAL/binlog)."""
    retention_reach: timedelta | None = timedelta(0)
    """None: kept forever."""
    record_minimum: timedelta | None = None
    retention_applied: timedelta | None = None
    """How long ago the plans' retention (forget) last ran; None: never."""
    residency_problems: list[tuple[str, Residency]] = field(default_factory=list)
    """(repository, its verdict) for each repository of the plans outside mainland China
    or of unknown location."""
    offsite_schedules: list[OffsiteSchedule] = field(default_factory=list)
    """Each copy of the plans to another site, with its schedule's longest gap."""
    target_retention: list[TargetRetention] = field(default_factory=list)
    """Each copy target of the plans (any site), with the retention it applies."""
    criticality: str = "important"
    dr: DrSetup | None = None
    """None: no `[dr.SYSTEM]` table, no standby to switch to."""
    dr_window: timedelta = timedelta(days=90)
    """How recent a drill or switch must be to count (service/dr_evidence.py)."""
    dr_latest: DrEvent | None = None
    """The newest succeeded drill or switch (any age)."""
    dr_failed_drill: DrEvent | None = None
    """A drill that failed after `dr_latest`."""
    db_audit: DbAuditFacts | None = None
    """Sichuan 1.5.2: its database audit collection and monthly analysis."""
    netconfig: NetconfigFacts | None = None
    """Sichuan 1.4.1: the hospital's network devices and their stored configurations."""


@dataclass(frozen=True)
class Check:
    """A status and its evidence as a template (policy/compliance_text.py) and values, so
    either language can be printed."""

    status: str
    key: str
    values: Mapping[str, object] = field(default_factory=dict)

    def text(self, language: str = "en") -> str:
        return evidence(self.key, self.values, language)

    @property
    def evidence(self) -> str:
        return self.text("en")


@dataclass(frozen=True)
class Verdict:
    system: str
    requirement: Requirement
    design: Check
    measured: Check

    @property
    def status(self) -> str:
        worst = max((self.design.status, self.measured.status), key=lambda s: _RANK[s])
        if worst == FAIL and not self.requirement.must:
            return WARN
        return worst

    def title(self, language: str = "en") -> str:
        return title(self.requirement, language)

    def public(self, language: str = "en") -> dict[str, Any]:
        r = self.requirement
        return {"system": self.system, "requirement": r.id, "title": self.title(language),
                "source": r.source, "must": r.must, "status": self.status,
                "design": {"status": self.design.status,
                           "evidence": self.design.text(language)},
                "measured": {"status": self.measured.status,
                             "evidence": self.measured.text(language)}}


def evaluate(requirements: list[Requirement], systems: list[SystemFacts]) -> list[Verdict]:
    return [Verdict(facts.system, req, *_CHECKS[req.check](req, facts))
            for facts in systems for req in requirements if req.applies_to(facts.system)]


def failed_musts(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.requirement.must and v.status == FAIL]


def _within(value: timedelta | None, limit: timedelta | None, what: str) -> Check:
    """`what` is a key of compliance_text.PHRASES."""
    term = Phrase(what)
    if value is None:
        return Check(FAIL, "within.none", {"what": term})
    if limit is None:
        return Check(PASS, "within.value", {"what": term, "value": value})
    verdict = (FAIL, "within.over") if value > limit else (PASS, "within.ok")
    return Check(*verdict, {"what": term, "value": value, "limit": limit})


def _uncovered(req: Requirement, _facts: SystemFacts) -> tuple[Check, Check]:
    why = {"dr_rpo": "not_built.dr", "dr_rto": "not_built.dr",
           "hot_redundancy": "not_built.hot", "device_configs": "not_built.devices"}
    note = Check(NOT_COVERED, why.get(req.check, "not_covered"))
    return note, note


def _local_rpo(req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    return (_within(f.local_design_rpo, req.limit, "schedule_rpo"),
            _within(f.local_rpo, req.limit, "achieved_rpo"))


def _local_rto(req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    if not f.rto_targets:
        design = Check(FAIL, "no_restore_test")
    else:
        design = _within(max(f.rto_targets), req.limit, "planned_rto")
    return design, _within(f.rto, req.limit, "test_rto")


def _offsite_rpo(req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    if f.offsite_design_rpo is None:
        return Check(FAIL, "no_offsite"), Check(FAIL, "no_offsite_copy")
    return (_within(f.offsite_design_rpo, req.limit, "copy_rpo"),
            _within(f.offsite_rpo, req.limit, "offsite_age"))


def _offsite_rto(req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    if f.offsite_design_rpo is None:
        return Check(FAIL, "no_offsite"), Check(FAIL, "no_offsite_copy")
    if not f.offsite_rto_targets:
        design = Check(FAIL, "no_offsite_test")
    else:
        design = _within(max(f.offsite_rto_targets), req.limit, "planned_rto")
    return design, _within(f.offsite_rto, req.limit, "offsite_test_rto")


def _local_backup(_req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    design = Check(PASS, "plans", {"plans": ", ".join(f.plans)}) if f.plans else \
        Check(FAIL, "no_plan")
    return design, _within(f.local_rpo, None, "local_point")


def _offsite_backup(req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    if f.offsite_design_rpo is None:
        return Check(FAIL, "no_offsite"), Check(FAIL, "no_offsite_copy")
    return (Check(PASS, "copy_every", {"gap": f.offsite_design_rpo}) if f.offsite_design_rpo
            else Check(PASS, "continuous_copy"),
            _within(f.offsite_rpo, req.limit, "offsite_age"))


def _offsite_realtime(_req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    if not f.offsite_realtime:
        return Check(FAIL, "no_realtime"), Check(FAIL, "no_realtime_copy")
    return (Check(PASS, "realtime"),
            _within(f.offsite_rpo, timedelta(minutes=5), "offsite_age"))


def _offsite_frequency(req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    """By design, the most frequent copy to another site must run at least every `limit`
    (a weekly copy is an offsite backup, not a daily one); measured as _offsite_backup."""
    _design, measured = _offsite_backup(req, f)
    if not f.offsite_schedules:
        return Check(FAIL, "no_offsite"), measured
    best = min(f.offsite_schedules, key=lambda c: c.gap)
    if not best.gap:
        return Check(PASS, "frequency.continuous", {"target": best.target}), measured
    values = {"target": best.target, "schedule": best.schedule, "gap": best.gap,
              "limit": req.limit}
    if req.limit is not None and best.gap > req.limit:
        return Check(FAIL, "frequency.over", values), measured
    return Check(PASS, "frequency.ok", values), measured


def _record_retention(_req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    """The plans' retention and every copy target's (its own or the plan's) must reach
    the record minimum; measured, each has been applied by its forget."""
    minimum = f.record_minimum
    if minimum is None:
        na = Check(NOT_APPLICABLE, "no_records")
        return na, na
    design = [_reach(f.retention_reach, minimum, "retention")]
    design += [_reach(t.reach, minimum, "retention.copy", {"target": t.target})
               for t in f.target_retention]
    measured = [Check(NOT_COVERED, "retention.unapplied") if f.retention_applied is None
                else Check(PASS, "retention.applied", {"ago": f.retention_applied})]
    measured += [Check(NOT_COVERED, "retention.copy_unapplied", {"target": t.target})
                 if t.applied is None else
                 Check(PASS, "retention.copy_applied", {"target": t.target, "ago": t.applied})
                 for t in f.target_retention]
    return _joined(design), _joined(measured)


def _reach(reach: timedelta | None, minimum: timedelta, key: str,
           where: Mapping[str, object] | None = None) -> Check:
    if reach is not None and reach < minimum:
        return Check(FAIL, f"{key}.short", {**(where or {}), "reach": reach,
                                            "minimum": minimum})
    return Check(PASS, f"{key}.reach", {**(where or {}), "reach": reach})


def _joined(checks: list[Check]) -> Check:
    """One check of several findings: the worst status, every evidence in order."""
    if len(checks) == 1:
        return checks[0]
    worst = max((c.status for c in checks), key=lambda s: _RANK[s])
    return Check(worst, "joined", {"parts": Parts(tuple((c.key, c.values) for c in checks))})


def _dr_design(f: SystemFacts) -> Check:
    assert f.dr is not None
    values = {"system": f.system, "kind": f.dr.kind, "site": f.dr.standby_site,
              "feed": Phrase(f"feed.{f.dr.feed}")}
    if f.dr.drill is None:
        return Check(PASS, "dr.configured_nodrill", values)
    return Check(PASS, "dr.configured", {**values, "drill": f.dr.drill})


def _event(e: DrEvent) -> dict[str, object]:
    return {"what": Phrase(f"dr.{e.kind}"), "id": e.id, "when": e.when}


def _app_switch(_req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    """By design a `[dr.SYSTEM]` standby; measured, a drill or switch that succeeded
    within `dr_window` and no drill failed since."""
    if f.dr is None:
        return Check(FAIL, "dr.none", {"system": f.system}), Check(FAIL, "dr.nothing")
    where = {"system": f.system, "window": f.dr_window}
    latest, failed = f.dr_latest, f.dr_failed_drill
    if failed is not None:
        measured = Check(FAIL, "dr.failed_drill", {**where, **_event(failed),
                                                   "error": failed.error or "?"})
    elif latest is None:
        measured = Check(FAIL, "dr.never", where)
    elif latest.ago > f.dr_window:
        measured = Check(FAIL, "dr.stale", {**where, **_event(latest)})
    else:
        measured = Check(PASS, "dr.recent", {**where, **_event(latest)})
    return _dr_design(f), measured


def _switch_time(req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    """The switch time of the newest succeeded drill or switch within `dr_window`, against
    the limit. A general system (criticality) is not one of the main systems the rule
    names: n/a."""
    if f.criticality == "general":
        na = Check(NOT_APPLICABLE, "switch.general")
        return na, na
    if f.dr is None:
        return Check(FAIL, "dr.none", {"system": f.system}), Check(FAIL, "dr.nothing")
    where = {"system": f.system, "window": f.dr_window}
    latest = f.dr_latest
    if latest is None:
        return _dr_design(f), Check(FAIL, "switch.never", where)
    if latest.ago > f.dr_window:
        return _dr_design(f), Check(FAIL, "switch.stale", {**where, **_event(latest)})
    if latest.seconds is None:
        return _dr_design(f), Check(FAIL, "switch.unmeasured", {**where, **_event(latest)})
    values = {**where, **_event(latest), "value": timedelta(seconds=latest.seconds),
              "limit": req.limit}
    if req.limit is None:
        return _dr_design(f), Check(PASS, "switch.value", values)
    over = timedelta(seconds=latest.seconds) > req.limit
    return _dr_design(f), Check(FAIL if over else PASS,
                                "switch.over" if over else "switch.ok", values)


def _residency(_req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    if f.residency_problems:
        bad = Check(FAIL, "residency.bad", {"problems": f.residency_problems})
        return bad, bad
    good = Check(PASS, "residency.ok")
    return good, good


def _db_audit(_req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    design, measured = judge(f.db_audit)
    return Check(*design), Check(*measured)


def _device_configs(_req: Requirement, f: SystemFacts) -> tuple[Check, Check]:
    design, measured = judge_devices(f.netconfig)
    return Check(*design), Check(*measured)


_CHECKS: dict[str, Callable[[Requirement, SystemFacts], tuple[Check, Check]]] = {
    "local_rpo": _local_rpo, "local_rto": _local_rto, "offsite_rpo": _offsite_rpo,
    "offsite_rto": _offsite_rto, "dr_rpo": _uncovered, "dr_rto": _uncovered,
    "local_backup": _local_backup, "offsite_backup": _offsite_backup,
    "offsite_realtime": _offsite_realtime, "hot_redundancy": _uncovered,
    "app_switch": _app_switch, "switch_time": _switch_time,
    "offsite_frequency": _offsite_frequency, "device_configs": _device_configs,
    "record_retention": _record_retention, "residency": _residency,
    "db_audit": _db_audit,
}
