"""The dashboard (GET /api/dashboard): per system of the institutions in scope a status
light with its reasons (stable codes the console translates), the achieved RPO against
its target, the last backup, the last restore test and its RTO, the offsite copies' lag,
the standby's lag and the last drill, and the open alerts; counts per institution and
overall.

Figures come from what the catalog holds (server/dashboard_facts.py): jobs the agents
ran and uploaded or the server queued, the DR status agents report, open alerts. The
achieved RPO is the age of the newest successful backup's start, as `medark compliance`
measures it (service/compliance.py); a database whose WAL or binlog streams may have a
newer point that only the hospital's host can read (`log_streamed`). Unknown is None.

Status: critical when a reason is (`not_protected`, `no_backup`, `rpo_breached`,
`standby_broken`), else warning when a reason is, else unknown when nothing was ever
reported (`no_jobs`), else ok.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from medark.catalog.statuses import FAILED, SUCCEEDED
from medark.catalog.store import Catalog, JobRecord
from medark.config.plans import MedarkConfig
from medark.config.schedule import Schedule
from medark.policy.compliance_profiles import profile
from medark.scheduler.dr_watch import DRILL, dr_plan
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.dashboard_facts import Facts, Inst, load, scoped, seconds_between
from medark.server.oversight import allowed
from medark.server.remote_ops import DR_ACTIONS
from medark.service.dr_evidence import DR_WINDOW
from medark.util import clock

STATES = ("ok", "warning", "critical", "unknown")
CRITICAL = ("not_protected", "no_backup", "rpo_breached", "standby_broken")
WARNING = ("backup_failed", "rpo_over_tier", "rpo_log_unmeasured", "restore_test_failed",
           "restore_test_missing", "rto_exceeded", "offsite_broken", "offsite_lagging",
           "standby_lagging", "standby_unknown", "drill_failed", "drill_overdue",
           "alerts_open")
"""Every reason code, gravest first within its class (docs/server.md)."""
LOG_SOURCES = ("postgres", "mariadb")
LAG_PROBLEMS = ("lag_over_limit",)
"""DR status problems that make a standby lag, not break (the rest: it cannot take
over, or the primary is unreachable)."""


def dashboard(catalog: Catalog, principal: Principal, institution: str | None
              ) -> dict[str, Any]:
    """The dashboard document of the institutions in scope (or `institution`)."""
    allowed(catalog, principal, R.DASHBOARD_READ, "dashboard.read", institution,
            institution)
    facts = load(catalog, scoped(catalog, principal, institution, "dashboard.read"))
    now = clock.now()
    systems = [judge(inst, name, facts, now) for inst in facts.institutions
               if inst.config is not None for name in sorted(inst.config.systems)]
    return {"generated_at": clock.format_time(now), "institution": institution,
            "summary": _summary(systems, facts, None),
            "institutions": [_institution(inst, systems, facts) for inst in
                             facts.institutions],
            "systems": systems}


def _institution(inst: Inst, systems: list[dict[str, Any]], facts: Facts
                 ) -> dict[str, Any]:
    config = inst.config
    online = sum(1 for a in facts.agents if a.institution == inst.name
                 and a.state == "online")
    return {"name": inst.name, "title": inst.title,
            "timezone": config.timezone if config else None,
            "config_version": inst.version,
            "problem": None if inst.problem is None else {
                "code": inst.problem, "message": inst.problem_message or inst.problem},
            "summary": _summary([s for s in systems if s["institution"] == inst.name],
                                facts, inst.name),
            "agents": {"online": online,
                       "offline": sum(1 for a in facts.agents
                                      if a.institution == inst.name) - online}}


def _summary(systems: list[dict[str, Any]], facts: Facts, institution: str | None
             ) -> dict[str, int]:
    counts = Counter(s["status"] for s in systems)
    return {"systems": len(systems), **{state: counts.get(state, 0) for state in STATES},
            "open_alerts": sum(1 for a in facts.alerts
                               if institution is None or a.institution == institution)}


def judge(inst: Inst, system: str, facts: Facts, now: datetime) -> dict[str, Any]:
    """One system's figures and status."""
    config = inst.config
    assert config is not None
    conf = config.systems[system]
    plans = sorted(n for n, p in config.plans.items() if p.system == system)
    reasons: list[str] = []
    rpo, last_backup = _rpo(inst.name, config, system, plans, facts, now, reasons)
    restore = _restore_test(inst.name, config, plans, facts, reasons)
    offsite = copies(inst.name, config, plans, facts, now)
    for copy in offsite:
        if copy["state"] in ("broken", "lagging") and copy["offsite"]:
            reasons.append(f"offsite_{copy['state']}")
    dr = _dr(inst.name, config, system, facts, now, reasons)
    alerts = facts.alerts_of(inst.name, (*plans, system, dr_plan(system)))
    if alerts:
        reasons.append("alerts_open")
    unique = sorted(set(reasons), key=lambda r: (CRITICAL + WARNING + ("no_jobs",)).index(r))
    lags = [c["lag_seconds"] for c in offsite if c["offsite"] and c["lag_seconds"] is not None]
    return {"institution": inst.name, "name": system, "title": conf.name or system,
            "criticality": conf.criticality, "records": conf.records, "plans": plans,
            "status": _status(unique), "reasons": unique, "rpo": rpo,
            "last_backup": last_backup, "restore_test": restore,
            "offsite": [c for c in offsite if c["offsite"]],
            "offsite_lag_seconds": max(lags) if lags else None,
            "dr": dr, "open_alerts": alerts}


def _status(reasons: list[str]) -> str:
    if any(r in CRITICAL for r in reasons):
        return "critical"
    if any(r in WARNING for r in reasons):
        return "warning"
    return "unknown" if "no_jobs" in reasons else "ok"


def _rpo(institution: str, config: MedarkConfig, system: str, plans: list[str],
         facts: Facts, now: datetime, reasons: list[str]
         ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The achieved RPO (newest successful backup of any of the system's plans) against
    its target: the plans' `rpo` (the tightest), else the compliance tier's local RPO
    limit. Over the plan's target is critical; within it but over the tier's limit a
    warning (`rpo_over_tier`: compliance fails it)."""
    done = _newest([facts.job("succeeded", institution, p, "backup") for p in plans],
                   by_start=True)
    ended = _newest([facts.job("newest", institution, p, "backup") for p in plans])
    plan_target = min((config.plans[p].rpo for p in plans), default=None)
    tier_target = tier_rpo(config, system)
    target, source = ((plan_target, "plan") if plan_target is not None
                      else (tier_target, "tier") if tier_target is not None else (None, None))
    streamed = any(s.type in LOG_SOURCES and s.stream
                   for s in config.systems[system].sources)
    achieved = seconds_between(now, done.started_at) if done is not None else None
    if not plans:
        reasons.append("not_protected")
    elif ended is None and done is None:
        reasons.append("no_jobs")
    elif done is None:
        reasons.append("no_backup")
    if ended is not None and ended.status == FAILED:
        reasons.append("backup_failed")
    over = [limit for limit in (target, tier_target)
            if achieved is not None and limit is not None
            and achieved > limit.total_seconds()]
    if over and streamed:
        reasons.append("rpo_log_unmeasured")
    elif target is not None and target in over:
        reasons.append("rpo_breached")
    elif over:
        reasons.append("rpo_over_tier")
    rpo = {"achieved_seconds": achieved,
           "point_at": clock.format_time(done.started_at) if done and done.started_at
           else None,
           "target_seconds": target.total_seconds() if target is not None else None,
           "target_source": source,
           "plan_seconds": plan_target.total_seconds() if plan_target else None,
           "tier_seconds": tier_target.total_seconds() if tier_target else None,
           "log_streamed": streamed}
    return rpo, None if ended is None else job_brief(ended)


def tier_rpo(config: MedarkConfig, system: str) -> timedelta | None:
    """The tightest local RPO limit the configuration's compliance profile sets for the
    system (None: an unknown tier, or no such requirement)."""
    hospital = config.hospital
    try:
        requirements = profile(hospital.tier, hospital.level, hospital.sichuan,
                               config.profiles)
    except ValueError:
        return None
    limits = [r.limit for r in requirements
              if r.check == "local_rpo" and r.limit is not None and r.applies_to(system)]
    return min(limits) if limits else None


def _restore_test(institution: str, config: MedarkConfig, plans: list[str],
                  facts: Facts, reasons: list[str]) -> dict[str, Any] | None:
    """The newest restore test (from the plan's repository or an offsite copy) and the
    RTO the newest successful one measured, against the plans' `rto`."""
    kinds = [(p, kind) for p in plans for kind, _repo, _test in
             config.plans[p].restore_tests()]
    newest = _newest([facts.job("newest", institution, p, k) for p, k in kinds])
    done = _newest([facts.job("succeeded", institution, p, k) for p, k in kinds])
    if newest is None:
        if kinds:
            reasons.append("restore_test_missing")
        return None
    measured = (done.details or {}).get("rto_seconds") if done is not None else None
    rto = float(measured) if isinstance(measured, int | float) and not isinstance(
        measured, bool) else None
    target = min((config.plans[p].rto for p in plans), default=None)
    if newest.status == FAILED:
        reasons.append("restore_test_failed")
    if rto is not None and target is not None and rto > target.total_seconds():
        reasons.append("rto_exceeded")
    return {**job_brief(newest), "kind": newest.kind, "rto_seconds": rto,
            "rto_target_seconds": target.total_seconds() if target else None,
            "last_success_at": _time(done.finished_at) if done is not None else None}


def copies(institution: str, config: MedarkConfig, plans: list[str], facts: Facts,
           now: datetime) -> list[dict[str, Any]]:
    """Each copy of the plans (to another site: `offsite`) with its state and lag: how
    long ago the newest successful copy started (points newer than that are not there
    yet). A continuous copy runs all the time: ok while the server knows it runs, else
    unknown (its lag is read on the hospital's host, not here)."""
    found = []
    for name in plans:
        plan = config.plans[name]
        home = config.repositories[plan.repository].site
        for copy in plan.copies:
            schedule = copy.parsed_schedule()
            kind = f"{'follow' if schedule.continuous else 'copy'}:{copy.to}"
            newest = facts.job("newest", institution, name, kind)
            done = facts.job("succeeded", institution, name, kind)
            running = facts.job("running", institution, name, kind)
            lag = None if schedule.continuous or done is None else seconds_between(
                now, done.started_at)
            if schedule.continuous:
                state = "ok" if running is not None else "unknown"
            elif newest is None:
                state = "unknown"
            elif newest.status != SUCCEEDED:
                state = "broken"
            else:
                allowed_gap = _gap(copy.schedule, config.timezone) + plan.rpo
                state = "lagging" if lag is not None and lag > allowed_gap.total_seconds() \
                    else "ok"
            found.append({"plan": name, "target": copy.to,
                          "site": config.repositories[copy.to].site,
                          "offsite": config.repositories[copy.to].site != home,
                          "continuous": schedule.continuous, "schedule": copy.schedule,
                          "state": state, "lag_seconds": lag,
                          "last_copy_at": _time(done.started_at) if done else None,
                          "last_job": job_brief(newest) if newest else None})
    return found


@lru_cache(maxsize=1024)
def _gap(schedule: str, timezone: str) -> timedelta:
    """The longest gap of a copy schedule over the coming week (cached: a regional
    center's 200 systems share a few schedules)."""
    return Schedule.parse(schedule).typical_gap(ZoneInfo(timezone), clock.now()) \
        or timedelta(0)


def _dr(institution: str, config: MedarkConfig, system: str, facts: Facts,
        now: datetime, reasons: list[str]) -> dict[str, Any] | None:
    """The standby (a `[dr.SYSTEM]` table): its state and lag as the institution's agent
    last reported it, and the newest drill (a reported DR status, or a drill job)."""
    conf = config.dr.get(system)
    if conf is None:
        return None
    report = facts.dr_report(institution, system)
    entry = report[1] if report else {}
    found_lag = entry.get("lag")
    lag: dict[str, Any] = found_lag if isinstance(found_lag, dict) else {}
    problems = [str(p.get("code")) for p in entry.get("problems", [])
                if isinstance(p, dict)] if isinstance(entry.get("problems"), list) else []
    state = standby_state(report is not None and report[0].state == "online", entry,
                          problems)
    if state == "broken":
        reasons.append("standby_broken")
    elif state == "lagging":
        reasons.append("standby_lagging")
    elif state == "unknown":
        reasons.append("standby_unknown")
    drill = last_drill(institution, system, entry, facts)
    if drill is not None and drill["status"] in (FAILED, "rolled_back"):
        reasons.append("drill_failed")
    if conf.drill and (drill is None or drill["at"] is None or now - clock.parse_time(
            drill["at"]) > DR_WINDOW):
        reasons.append("drill_overdue")
    found_nodes = entry.get("nodes")
    nodes: list[Any] = found_nodes if isinstance(found_nodes, list) else []
    serving = next((str(n["site"]) for n in nodes if isinstance(n, dict)
                    and n.get("role") == "primary" and isinstance(n.get("site"), str)), None)
    return {"standby_site": conf.standby.site, "primary_site": conf.primary.site,
            "current_primary_site": serving,
            "kind": conf.primary.kind, "feed": conf.feed, "state": state,
            "lag_seconds": _number(lag.get("seconds")),
            "lag_bytes": _whole(lag.get("bytes")),
            "problems": problems, "agent": report[0].name if report else None,
            "reported_at": report[0].reported_at if report else None,
            "last_drill": drill}


def standby_state(agent_online: bool, entry: dict[str, Any], problems: list[str]) -> str:
    """ok, lagging (over its lag limits) or broken (cannot take over, primary down),
    from the agent's report; unknown without one, or while its agent is offline."""
    if not entry or not agent_online or entry.get("supported") is False:
        return "unknown"
    if entry.get("healthy") is True:
        return "ok"
    if problems and all(p in LAG_PROBLEMS for p in problems):
        return "lagging"
    return "broken"


def last_drill(institution: str, system: str, entry: dict[str, Any], facts: Facts
               ) -> dict[str, Any] | None:
    """The newer of the drill the agent's DR status names and the newest drill job
    (scheduled by the agent, or asked through the server)."""
    candidates: list[dict[str, Any]] = []
    reported = entry.get("last_drill")
    if isinstance(reported, dict) and isinstance(reported.get("started_at"), str):
        candidates.append({"at": reported.get("finished_at") or reported["started_at"],
                           "status": str(reported.get("status", "")),
                           "seconds": _number(reported.get("switch_seconds")),
                           "job_id": None})
    for kind in (DRILL, DR_ACTIONS["drill"]):
        job = facts.job("newest", institution, dr_plan(system), kind)
        if job is not None:
            action = (job.details or {}).get("dr_action")
            seconds = action.get("switch_seconds") if isinstance(action, dict) else None
            candidates.append({"at": _time(job.finished_at or job.started_at),
                               "status": job.status, "seconds": _number(seconds),
                               "job_id": job.id})
    dated = [c for c in candidates if c["at"] is not None]
    return max(dated, key=lambda c: clock.parse_time(c["at"])) if dated else None


def job_brief(job: JobRecord) -> dict[str, Any]:
    return {"job_id": job.id, "plan": job.plan, "status": job.status,
            "started_at": _time(job.started_at), "finished_at": _time(job.finished_at),
            "error": (job.error or "").strip().split("\n")[0][:300] or None,
            "snapshot_id": job.snapshot_id}


def _newest(jobs: list[JobRecord | None], by_start: bool = False) -> JobRecord | None:
    present = [j for j in jobs if j is not None]
    if by_start:
        present = [j for j in present if j.started_at is not None]
        return max(present, key=lambda j: (j.started_at, j.id)) if present else None
    return max(present, key=lambda j: j.id) if present else None


def _time(value: datetime | None) -> str | None:
    return clock.format_time(value) if value is not None else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if abs(value) < 1e15 else None


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**62:
        return None
    return value
