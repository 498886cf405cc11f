"""What the periodic reports say, gathered from the job catalog, the repositories'
statistics and the compliance engine: the monthly data-security analysis (Sichuan
smart-hospital item 1.5.2: at least monthly) and the quarterly report covering DR and
security events (item 1.6.2), each listing the period's DR drills and switches with their
switch times and data loss, and the access section from the audit trail
(report_access.py). Rendering is report_render.py's job."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog, JobRecord
from medark.config.plans import MedarkConfig
from medark.errors import UsageError
from medark.policy.compliance import Verdict
from medark.scheduler.runner import Launcher, launch
from medark.service.compliance import compliance
from medark.service.dbaudit import audited_sources
from medark.service.dbaudit_analysis import Analysis, month_analysis
from medark.service.dr_evidence import SWITCH_KINDS, switch_time
from medark.service.report_access import AccessSection, gather_access
from medark.service.repository_stats import RepositoryStats, repository_stats

SAMPLE = timedelta(hours=1)
"""Achieved RPO is charted at this interval."""


@dataclass(frozen=True)
class GroupCheck:
    """What a restore test's `group check` of a restored consistency group found."""

    group: str
    references: int
    rows_without_files: int
    files_without_rows: int
    not_covered: int
    """Objects on storages the group does not map (dcm4chee's nearline, say): neither
    restored nor missing; the auditor sees how many, and on which storages."""
    not_covered_by_storage: dict[str, int]

    @classmethod
    def of_steps(cls, steps: Any) -> list[GroupCheck]:
        """The checks of a restore test's steps (job details "restored")."""
        found = []
        for step in steps if isinstance(steps, list) else []:
            check = step.get("check") if isinstance(step, dict) else None
            if not isinstance(check, dict) or step.get("restore") != "group":
                continue
            by_storage = check.get("not_covered_by_storage") or {}
            found.append(cls(str(step.get("group")), int(check.get("references") or 0),
                             int(check.get("rows_without_files") or 0),
                             int(check.get("files_without_rows") or 0),
                             int(check.get("not_covered") or 0),
                             {str(k): int(v) for k, v in by_storage.items()}))
        return found


@dataclass
class SystemMonth:
    system: str
    name: str
    backups: int = 0
    succeeded: int = 0
    failed: int = 0
    rpo_series: list[tuple[datetime, float]] = field(default_factory=list)
    """(moment, achieved RPO in seconds) every SAMPLE; -1 before the first point."""
    worst_rpo: float | None = None
    restore_tests: list[tuple[datetime, str, float | None, str, list[GroupCheck]]] = field(
        default_factory=list)
    """(end, status, RTO seconds, repository restored from, its groups' checks)."""
    copies: int = 0
    copies_failed: int = 0
    worst_copy_gap: float | None = None
    bytes_added: int = 0

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.backups if self.backups else None


@dataclass(frozen=True)
class DrRow:
    """A DR action of the period, as the report lists it."""

    system: str
    """The system's name as the configuration gives it."""
    id: int
    kind: str
    """drill, switchover, failover or failback."""
    status: str
    started_at: datetime
    switch_seconds: float | None
    """The switch time (service/dr_evidence.py): a drill's time to healthy, a switch's
    business interruption."""
    held_seconds: float | None
    """A switch: the time writes were held (the database switch alone)."""
    data_loss: dict[str, Any] | None
    """A failover's data-loss window (bytes, commits, summary)."""
    error: str | None


@dataclass
class PeriodReport:
    kind: str
    """monthly or quarterly."""
    label: str
    """2026-11, or 2026-Q4."""
    hospital: str
    month: date
    """The first day of the period."""
    start: datetime
    end: datetime
    generated: datetime
    systems: list[SystemMonth]
    growth: list[tuple[date, int]]
    """(day, bytes added that day by backups)."""
    repositories: list[RepositoryStats]
    suspicious: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    verdicts: list[Verdict]
    profile: str
    dr_actions: list[DrRow] = field(default_factory=list)
    """Drills and switches begun in the period, oldest first."""
    access: AccessSection | None = None
    dbaudit: Analysis | None = None
    """The month's database audit analysis (docs/dbaudit.md); None: no audited source."""
    """Grants, failed logins and administrators' actions from the audit trail."""


def previous_period(kind: str, now: datetime, config: MedarkConfig) -> str:
    """The last whole month (`2026-10`) or quarter (`2026-Q3`) before `now`, in the
    configuration's time zone: the period a report is usually made for."""
    today = now.astimezone(config.zone).date()
    if kind == "quarterly":
        index = today.year * 4 + (today.month - 1) // 3 - 1
        return f"{index // 4}-Q{index % 4 + 1}"
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def period_bounds(kind: str, text: str, config: MedarkConfig) -> tuple[date, datetime, datetime]:
    """(first day, start, end) of `2026-11` (monthly) or `2026-Q4` (quarterly), in the
    configuration's time zone."""
    months = 1
    try:
        if kind == "quarterly":
            year, quarter = text.upper().split("-Q")
            if not 1 <= int(quarter) <= 4:
                raise ValueError(text)
            first, months = date(int(year), 3 * int(quarter) - 2, 1), 3
        else:
            first = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        spelling = "YYYY-QN, e.g. 2026-Q4" if kind == "quarterly" else "YYYY-MM, e.g. 2026-11"
        raise UsageError(f"{text!r}: give {spelling}") from None
    month_index = first.month - 1 + months
    following = date(first.year + month_index // 12, month_index % 12 + 1, 1)
    tz = config.zone
    return (first, datetime(first.year, first.month, 1, tzinfo=tz),
            datetime(following.year, following.month, 1, tzinfo=tz))


def gather_period(config: MedarkConfig, catalog: Catalog, kind: str, label: str,
                  now: datetime, launcher: Launcher = launch,
                  institution: str | None = None) -> PeriodReport:
    """`institution`: the report of that institution of a management server's catalog
    (its jobs, alerts and DR actions only); None, of everything in the catalog."""
    first, start, end = period_bounds(kind, label, config)
    upto = min(end, now)
    jobs = catalog.jobs_between(start, upto, institution)
    systems = [_system_month(config, name, jobs, start, upto, catalog, institution)
               for name in sorted(config.systems)]
    growth: dict[date, int] = {}
    for job in jobs:
        if job.kind == "backup" and job.status == SUCCEEDED and job.started_at:
            day = job.started_at.astimezone(config.zone).date()
            growth[day] = growth.get(day, 0) + (job.bytes_added or 0)
    alerts = [a.public() for a in catalog.alerts(limit=10_000, institution=institution)
              if start <= a.opened_at < upto]
    hospital = config.hospital
    return PeriodReport(
        kind=kind, label=label.upper(), hospital=hospital.name, month=first, start=start,
        end=end, generated=now,
        systems=systems, growth=sorted(growth.items()),
        repositories=[repository_stats(config, name, launcher)
                      for name in sorted(config.repositories)],
        suspicious=[a for a in alerts if a["kind"] == "suspicious"],
        alerts=alerts,
        verdicts=compliance(config, catalog, hospital.tier, hospital.level, hospital.sichuan,
                            upto, launcher, institution),
        profile=f"{hospital.tier} / 等保 {hospital.level}"
                + (" / 四川智慧医院" if hospital.sichuan else ""),
        dr_actions=_dr_actions(config, catalog, start, upto, institution),
        access=gather_access(catalog, start, upto, institution),
        dbaudit=month_analysis(config, catalog, label) if kind == "monthly"
        and audited_sources(config) else None)


DR_LIMIT = 10_000
"""DR actions read for one period: years of daily drills."""


def _dr_actions(config: MedarkConfig, catalog: Catalog, start: datetime,
                end: datetime, institution: str | None) -> list[DrRow]:
    """The drills and switches begun in [start, end) and finished, oldest first."""
    rows = []
    for record in catalog.dr_history(None, DR_LIMIT, institution):
        if not start <= record.started_at < end or record.finished_at is None:
            continue
        system = config.systems.get(record.system)
        rows.append(DrRow(
            (system.name if system is not None else "") or record.system, record.id,
            record.kind, record.status, record.started_at, switch_time(record),
            record.switch_seconds if record.kind in SWITCH_KINDS else None,
            record.data_loss, (record.error or "").strip().split("\n")[0] or None))
    return sorted(rows, key=lambda r: (r.started_at, r.id))


def _system_month(config: MedarkConfig, system: str, jobs: list[JobRecord],
                  start: datetime, end: datetime, catalog: Catalog,
                  institution: str | None) -> SystemMonth:
    plans = {n for n, p in config.plans.items() if p.system == system}
    month = SystemMonth(system, config.systems[system].name or system)
    points: list[datetime] = []
    for name in plans:  # the newest point before the month counts from its start
        before = catalog.latest(name, "backup", SUCCEEDED, start, institution)
        if before is not None and before.started_at is not None:
            points.append(before.started_at)
    copy_times: list[datetime] = []
    for job in (j for j in jobs if j.plan in plans):
        if job.kind == "backup" and job.status in (SUCCEEDED, FAILED):
            month.backups += 1
            if job.status == SUCCEEDED and job.started_at is not None:
                month.succeeded += 1
                month.bytes_added += job.bytes_added or 0
                points.append(job.started_at)
            else:
                month.failed += 1
        elif job.kind.startswith("restore_test") and job.finished_at is not None:
            details = job.details or {}
            rto = details.get("rto_seconds")
            source = str(details.get("repository") or config.plans[job.plan].repository)
            month.restore_tests.append((job.finished_at, job.status,
                                        float(rto) if isinstance(rto, int | float) else None,
                                        source, GroupCheck.of_steps(details.get("restored"))))
        elif job.kind.startswith(("copy:", "follow:")) and job.status in (SUCCEEDED, FAILED):
            month.copies += 1
            if job.status == FAILED:
                month.copies_failed += 1
            elif job.started_at is not None:
                copy_times.append(job.started_at)
    points.sort()
    moments = [start + n * SAMPLE for n in range(int((end - start) / SAMPLE) + 1)]
    i, newest = 0, None
    for moment in [*moments, end] if moments[-1] < end else moments:  # and the last moment
        while i < len(points) and points[i] <= moment:
            newest, i = points[i], i + 1
        age = (moment - newest).total_seconds() if newest is not None else -1.0
        month.rpo_series.append((moment, age))
    ages = [a for _t, a in month.rpo_series if a >= 0]
    month.worst_rpo = max(ages) if ages else None
    copy_times.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(copy_times)]
    month.worst_copy_gap = max(gaps) if gaps else None
    return month
