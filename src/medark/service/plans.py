"""The protection configuration as the CLI, the daemon and the console use it: loaded and
checked (schema, references, site locations), and explained plan by plan (`plan show`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from medark.config.durations import format_config_duration
from medark.config.environment import config_path as config_path  # its callers' import
from medark.config.loader import Extra, load_config, load_text
from medark.config.plans import CopyConf, MedarkConfig, Plan, Source
from medark.config.plans import Path as KeyPath
from medark.config.records import RECORD_MINIMUM
from medark.config.schedule import Schedule
from medark.errors import UsageError
from medark.policy.residency import SiteLocation, residency

DATABASE_SOURCES = ("postgres", "mariadb")
NEXT_RUNS = 3
AFTER_BACKUP = "after each successful backup"
AFTER_COPY = "after each successful copy"
AFTER_BACKUP_FOLLOWING = "after each successful backup (the copy is continuous)"


def load_plans(path: Path) -> MedarkConfig:
    """The configuration, or ConfigInvalid (exit 15) listing every problem with file:line."""
    return load_config(path, _site_problems)


def load_plans_text(text: str, extra: Extra | None = None) -> MedarkConfig:
    """A configuration document (the management server's), checked exactly as
    `load_plans` checks a file, and by `extra` too; ConfigInvalid lists each problem as
    `line N: key: message`."""
    return load_text(text, "", lambda config: _site_problems(config)
                     + (extra(config) if extra is not None else []))


def _site_problems(config: MedarkConfig) -> list[tuple[KeyPath, str]]:
    found: list[tuple[KeyPath, str]] = []
    for name, site in config.sites.items():
        try:
            SiteLocation.parse(site.location)
        except UsageError as exc:
            found.append((("sites", name, "location"), str(exc)))
    return found


@dataclass
class PlanView:
    """What `plan show` says about one plan: what runs when, where it goes, what it
    promises, and what the schedule alone can deliver."""

    name: str
    system: str
    system_name: str
    owner: str
    sources: list[str]
    repository: str
    site: str
    location: str
    schedule: str
    next_runs: list[datetime]
    continuous_log: bool
    """A database source: WAL/binlog is archived continuously between base backups."""
    design_rpo: timedelta | None
    """The RPO the schedule allows: the longest gap between runs, or None when a
    continuous log bounds it instead."""
    rpo: timedelta
    rto: timedelta
    retention: dict[str, Any]
    retention_reach: timedelta | None
    record_minimum: timedelta | None
    interval: timedelta | None = None
    """The backup schedule's fixed interval, if it has one (times of a schedule under a
    minute are shown to the second)."""
    forget: str = AFTER_BACKUP
    """When the plan's retention runs in its repository."""
    prune: str | None = None
    """The repository's prune schedule (None: never scheduled)."""
    next_prune: datetime | None = None
    copies: list[dict[str, Any]] = field(default_factory=list)
    """Each copy target: where, when, its retention (own or the plan's) and when its
    forget and prune run."""
    restore_test: str | None = None
    next_restore_test: datetime | None = None
    offsite_restore_test: str | None = None
    offsite_restore_from: str | None = None
    next_offsite_restore_test: datetime | None = None
    residency_warnings: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        def span(value: timedelta | None) -> str | None:
            return None if value is None else format_config_duration(value)

        return {
            "plan": self.name, "system": self.system, "system_name": self.system_name,
            "owner": self.owner, "sources": self.sources, "repository": self.repository,
            "site": self.site, "location": self.location, "schedule": self.schedule,
            "next_runs": [t.isoformat() for t in self.next_runs],
            "continuous_log": self.continuous_log, "design_rpo": span(self.design_rpo),
            "rpo": span(self.rpo), "rto": span(self.rto), "retention": self.retention,
            "retention_reach": span(self.retention_reach) or "forever",
            "record_minimum": span(self.record_minimum), "forget": self.forget,
            "prune": self.prune,
            "next_prune": self.next_prune.isoformat() if self.next_prune else None,
            "copies": [{**c, "next_prune": c["next_prune"].isoformat()
                        if c["next_prune"] else None} for c in self.copies],
            "restore_test": self.restore_test,
            "next_restore_test": (self.next_restore_test.isoformat()
                                  if self.next_restore_test else None),
            "offsite_restore_test": self.offsite_restore_test,
            "offsite_restore_from": self.offsite_restore_from,
            "next_offsite_restore_test": (self.next_offsite_restore_test.isoformat()
                                          if self.next_offsite_restore_test else None),
            "residency_warnings": self.residency_warnings,
        }


def explain(config: MedarkConfig, now: datetime, names: list[str] | None = None
            ) -> list[PlanView]:
    wanted = names or sorted(config.plans)
    unknown = [n for n in wanted if n not in config.plans]
    if unknown:
        raise UsageError(f"no plan named {', '.join(unknown)} (defined: "
                         f"{', '.join(sorted(config.plans))})")
    return [_view(config, name, config.plans[name], now) for name in wanted]


def _view(config: MedarkConfig, name: str, plan: Plan, now: datetime) -> PlanView:
    tz = config.zone
    system = config.systems[plan.system]
    repo = config.repositories[plan.repository]
    site = config.sites[repo.site]
    schedule = plan.parsed_schedule()
    runs: list[datetime] = []
    after = now
    for _ in range(NEXT_RUNS):
        nxt = schedule.next_after(after, tz, name, runs[-1] if runs else None)
        if nxt is None:
            break
        runs.append(nxt.astimezone(tz))
        after = nxt
    continuous_log = any(s.type in DATABASE_SOURCES for s in system.sources)
    view = PlanView(
        name=name, system=plan.system, system_name=system.name or plan.system,
        owner=system.owner, sources=[describe_source(s) for s in system.sources],
        repository=plan.repository, site=repo.site, location=site.location,
        schedule=schedule.describe(), next_runs=runs, continuous_log=continuous_log,
        design_rpo=None if continuous_log else schedule.typical_gap(tz, now),
        rpo=plan.rpo, rto=plan.rto,
        retention=plan.retention.model_dump(exclude_defaults=True, mode="json"),
        retention_reach=plan.retention.reach(),
        record_minimum=RECORD_MINIMUM.get(system.records), interval=schedule.interval,
        prune=repo.prune, next_prune=_prune_after(config, plan.repository, now),
    )
    for target in [plan.repository, *(c.to for c in plan.copies)]:
        target_site = config.sites[config.repositories[target].site]
        verdict = residency(SiteLocation.parse(target_site.location))
        if not verdict.compliant:
            view.residency_warnings.append(f"{target}: {verdict.reason}")
    view.copies = [_copy_view(config, plan, copy, now) for copy in plan.copies]
    if plan.restore_test is not None:
        test = plan.restore_test
        view.restore_test = test.schedule
        view.next_restore_test = _first(test.schedule, tz, f"{name}/restore-test", now)
    if plan.offsite_restore_test is not None:
        offsite = plan.offsite_restore_test
        view.offsite_restore_test = offsite.schedule
        view.offsite_restore_from = offsite.repository
        view.next_offsite_restore_test = _first(offsite.schedule, tz,
                                                f"{name}/restore-test", now)
    return view


def _copy_view(config: MedarkConfig, plan: Plan, copy: CopyConf, now: datetime
               ) -> dict[str, Any]:
    """A copy target as `plan show` explains it: the retention it applies (its own, or
    the plan's when it has none) and when its forget and prune run."""
    repo = config.repositories[copy.to]
    retention = plan.copy_retention(copy.to)
    reach = retention.reach()
    continuous = Schedule.parse(copy.schedule).continuous
    return {"to": copy.to, "site": repo.site, "location": config.sites[repo.site].location,
            "schedule": copy.schedule,
            "retention": retention.model_dump(exclude_defaults=True, mode="json"),
            "retention_from": "plan" if copy.retention is None else "copy",
            "retention_reach": "forever" if reach is None else format_config_duration(reach),
            "forget": AFTER_BACKUP_FOLLOWING if continuous else AFTER_COPY,
            "prune": repo.prune, "next_prune": _prune_after(config, copy.to, now)}


def _prune_after(config: MedarkConfig, repository: str, now: datetime) -> datetime | None:
    """The repository's next scheduled prune (the daemon's slot seed), if it has one."""
    text = config.repositories[repository].prune
    return _first(text, config.zone, f"repository:{repository}/prune", now) if text else None


def _first(text: str, tz: ZoneInfo, seed: str, now: datetime) -> datetime | None:
    found = Schedule.parse(text).next_after(now, tz, seed)
    return found.astimezone(tz) if found else None


_SECRET_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]*@")
_SECRET_KV = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """A DSN or command line with any password replaced by ***."""
    return _SECRET_KV.sub(r"\1***", _SECRET_URL.sub(r"\1***@", text))


def describe_source(source: Source) -> str:
    if source.type in ("files", "sqlite"):
        return f"{source.type} " + ", ".join(source.paths)
    if source.type == "command":
        return f"command {redact(source.command or '')}"
    return f"{source.type} {redact(source.dsn or '')}"
