"""`medark compliance`: the facts about every system gathered from the configuration (what
the plans provide) and from measurements (the job catalog; for databases the archived
WAL/binlog age, read by `medark pg|mysql status` children; offsite, the newest point the
offsite repository itself holds; for DR, the newest drill or switch the catalog recorded,
service/dr_evidence.py), then judged by policy/compliance.py against a profile."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

from medark.catalog.dr_records import DrActionRecord
from medark.catalog.models import SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import RESTORE_TEST, MedarkConfig
from medark.config.records import RECORD_MINIMUM
from medark.policy.compliance import (
    DrEvent,
    DrSetup,
    OffsiteSchedule,
    SystemFacts,
    TargetRetention,
    Verdict,
    evaluate,
)
from medark.policy.compliance_profiles import profile
from medark.policy.residency import Residency, SiteLocation, residency
from medark.scheduler.runner import Launcher, Step, launch, medark_command, repository_env
from medark.service.dbaudit_facts import db_audit_facts
from medark.service.dr_evidence import DR_WINDOW, dr_evidence, switch_time
from medark.service.netconfig_facts import netconfig_facts
from medark.util import clock

LOG_STATUS = {"postgres": ("pg", "MEDARK_PG_DSN"), "mariadb": ("mysql", "MEDARK_MYSQL_DSN")}
FREQUENCY_WINDOW = timedelta(days=14)
"""How far ahead a copy's schedule is read for its longest gap (Sichuan 1.4.3)."""


def compliance(config: MedarkConfig, catalog: Catalog, tier: str, level: int,
               sichuan: bool, now: datetime, launcher: Launcher = launch,
               institution: str | None = None) -> list[Verdict]:
    """As of `now`: jobs started later are not counted (an audit "as of" a moment).
    `institution`: only its jobs and DR actions count (a management server's catalog
    holds every hospital's, whose plans may share names); None, every one."""
    requirements = profile(tier, level, sichuan, config.profiles)
    systems = [gather(config, catalog, name, now, launcher, institution)
               for name in sorted(config.systems)]
    if any(r.check == "device_configs" for r in requirements):  # the hospital's, read once
        devices = netconfig_facts(config, catalog)
        systems = [replace(facts, netconfig=devices) for facts in systems]
    return evaluate(requirements, systems)


def gather(config: MedarkConfig, catalog: Catalog, system: str, now: datetime,
           launcher: Launcher = launch, institution: str | None = None) -> SystemFacts:
    plans = sorted(n for n, p in config.plans.items() if p.system == system)
    sources = config.systems[system].sources
    database = any(s.type in LOG_STATUS for s in sources)
    design: list[timedelta] = []
    measured: list[timedelta] = []
    rto: tuple[datetime, timedelta] | None = None
    offsite_rto: tuple[datetime, timedelta] | None = None
    offsite_rto_targets: list[timedelta] = []
    offsite_design: list[timedelta] = []
    offsite_measured: list[timedelta] = []
    realtime = False
    reaches: list[timedelta | None] = []
    forgot: list[timedelta] = []
    problems: list[tuple[str, Residency]] = []
    schedules: list[OffsiteSchedule] = []
    for name in plans:
        plan = config.plans[name]
        gap = plan.parsed_schedule().typical_gap(config.zone, now)
        design.append(timedelta(0) if database else (gap or timedelta(0)))
        done = catalog.latest(name, "backup", SUCCEEDED, now, institution)
        if done is not None and done.started_at is not None:
            measured.append(now - done.started_at)
        if database:
            measured += _log_ages(config, name, plan.repository, now, launcher)
        rto = _newer_rto(rto, catalog, name, RESTORE_TEST, now, institution)
        home = config.repositories[plan.repository].site
        for copy in plan.copies:
            if config.repositories[copy.to].site == home:
                continue  # another repository on the same site is not offsite
            schedule = copy.parsed_schedule()
            realtime = realtime or schedule.continuous
            schedules.append(OffsiteSchedule(copy.to, schedule.text, schedule.longest_gap(
                config.zone, now, FREQUENCY_WINDOW) or timedelta(0)))
            offsite_design.append(schedule.typical_gap(config.zone, now) or timedelta(0))
            offsite_measured += _offsite_ages(config, name, copy.to, now, launcher)
            offsite_rto = _newer_rto(offsite_rto, catalog, name, f"{RESTORE_TEST}:{copy.to}",
                                     now, institution)
            tested_offsite = plan.offsite_restore_test
            if tested_offsite is not None and tested_offsite.repository == copy.to:
                offsite_rto_targets.append(plan.rto)
            if database:
                offsite_measured += _log_ages(config, name, copy.to, now, launcher)
        reaches.append(plan.retention.reach())
        applied = catalog.latest(name, "forget", SUCCEEDED, now, institution)
        if applied is not None and applied.started_at is not None:
            forgot.append(now - applied.started_at)
        for target in [plan.repository, *(c.to for c in plan.copies)]:
            site = config.sites[config.repositories[target].site]
            verdict = residency(SiteLocation.parse(site.location))
            if not verdict.compliant:
                problems.append((target, verdict))
    dr, latest, failed_drill = _dr_facts(config, catalog, system, now, institution)
    return SystemFacts(
        system=system, records=config.systems[system].records, plans=plans,
        local_design_rpo=min(design) if design else None,
        local_rpo=min(measured) if measured else None,
        rto=rto[1] if rto else None,
        rto_targets=[config.plans[n].rto for n in plans if config.plans[n].restore_test],
        offsite_design_rpo=min(offsite_design) if offsite_design else None,
        offsite_realtime=realtime,
        offsite_rto=offsite_rto[1] if offsite_rto else None,
        offsite_rto_targets=offsite_rto_targets,
        offsite_rpo=min(offsite_measured) if offsite_measured else None,
        retention_reach=None if None in reaches else max(
            (r for r in reaches if r is not None), default=timedelta(0)),
        record_minimum=RECORD_MINIMUM.get(config.systems[system].records),
        retention_applied=min(forgot) if forgot else None,
        residency_problems=problems, offsite_schedules=schedules,
        target_retention=_target_retention(config, catalog, plans, now, institution),
        criticality=config.systems[system].criticality, dr=dr, dr_window=DR_WINDOW,
        dr_latest=latest, dr_failed_drill=failed_drill,
        db_audit=db_audit_facts(config, catalog, system, now))


def _dr_facts(config: MedarkConfig, catalog: Catalog, system: str, now: datetime,
              institution: str | None
              ) -> tuple[DrSetup | None, DrEvent | None, DrEvent | None]:
    """The system's [dr.SYSTEM] table, its newest succeeded drill or switch, and a drill
    that failed after it."""
    conf = config.dr.get(system)
    if conf is None:
        return None, None, None
    found = dr_evidence(catalog, system, now, institution)

    def event(record: DrActionRecord | None) -> DrEvent | None:
        if record is None:
            return None
        ended = record.finished_at or record.started_at
        return DrEvent(record.id, record.kind,
                       ended.astimezone(config.zone).strftime("%Y-%m-%d %H:%M %Z"),
                       now - ended, switch_time(record),
                       (record.error or "").strip().split("\n")[0] or None)

    return (DrSetup(conf.primary.kind, conf.standby.site, conf.feed, conf.drill),
            event(found.latest), event(found.failed_drill))


def _target_retention(config: MedarkConfig, catalog: Catalog, plans: list[str],
                      now: datetime, institution: str | None) -> list[TargetRetention]:
    """Each copy target of `plans` (any site: medical records are kept wherever they
    are), with the shortest reach of the retentions applied there and when the newest
    of their forgets (job forget:TARGET) succeeded."""
    reaches: dict[str, list[timedelta | None]] = {}
    applied: dict[str, list[timedelta]] = {}
    for name in plans:
        plan = config.plans[name]
        for copy in plan.copies:
            reaches.setdefault(copy.to, []).append(plan.copy_retention(copy.to).reach())
            done = catalog.latest(name, f"forget:{copy.to}", SUCCEEDED, now, institution)
            if done is not None and done.started_at is not None:
                applied.setdefault(copy.to, []).append(now - done.started_at)
    return [TargetRetention(target, min((r for r in found if r is not None), default=None),
                            min(applied[target]) if target in applied else None)
            for target, found in sorted(reaches.items())]


def _newer_rto(known: tuple[datetime, timedelta] | None, catalog: Catalog, plan: str,
               kind: str, now: datetime, institution: str | None
               ) -> tuple[datetime, timedelta] | None:
    """The newest successful restore test's (end, RTO) of this plan and kind, or `known`
    when that one is newer."""
    tested = catalog.latest(plan, kind, SUCCEEDED, now, institution)
    seconds = (tested.details or {}).get("rto_seconds") if tested else None
    if tested is None or tested.finished_at is None or not isinstance(seconds, int | float):
        return known
    if known is not None and known[0] >= tested.finished_at:
        return known
    return tested.finished_at, timedelta(seconds=seconds)


def _repository_env(config: MedarkConfig, repository: str) -> dict[str, str]:
    return {"MEDARK_REPO": config.repositories[repository].url,
            **repository_env(config, repository)}


def _offsite_ages(config: MedarkConfig, plan_name: str, repository: str, now: datetime,
                  launcher: Launcher) -> list[timedelta]:
    """Age at `now` of the newest point of the plan that `repository` holds: read from the
    offsite repository itself, so a copy that silently stopped cannot look current."""
    result = launcher(Step(f"snapshots of {repository}",
                           [*medark_command(), "--json", "--no-lock", "snapshots", "--tag",
                            f"plan={plan_name}"], _repository_env(config, repository)))
    try:
        snapshots = json.loads(result.stdout) if result.returncode == 0 else []
    except ValueError:
        return []
    times = [clock.parse_time(s["time"]) for s in snapshots
             if isinstance(s, dict) and isinstance(s.get("time"), str)]
    held = [t for t in times if t <= now]
    return [now - max(held)] if held else []


def _log_ages(config: MedarkConfig, plan_name: str, repository: str, now: datetime,
              launcher: Launcher) -> list[timedelta]:
    """Age at `now` of the newest WAL/binlog of each database source of the plan that
    `repository` holds (read now: as of a later `now`, that much older)."""
    plan = config.plans[plan_name]
    env = _repository_env(config, repository)
    late = max(now - clock.now(), timedelta(0))
    ages = []
    for source in config.systems[plan.system].sources:
        if source.type not in LOG_STATUS:
            continue
        command, variable = LOG_STATUS[source.type]
        result = launcher(Step(f"{command} status", [*medark_command(), "--json", command,
                                                      "status"],
                               {**env, variable: source.dsn or ""}))
        try:
            doc = json.loads(result.stdout.splitlines()[-1]) if result.stdout else {}
        except ValueError:
            continue
        seconds = doc.get("rpo_seconds") if isinstance(doc, dict) else None
        if isinstance(seconds, int | float):
            ages.append(timedelta(seconds=seconds) + late)
    return ages
