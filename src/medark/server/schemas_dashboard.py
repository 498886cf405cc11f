"""Response bodies of the dashboard and the topology (routes/dashboard.py); the event
stream's frames are described in docs/server.md.

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Literal

from medark.server.schemas import Reply

State = Literal["ok", "warning", "critical", "unknown"]
LinkState = Literal["ok", "lagging", "broken", "unknown"]
Reason = Literal["not_protected", "no_backup", "rpo_breached", "standby_broken",
                 "backup_failed", "rpo_over_tier", "rpo_log_unmeasured", "restore_test_failed",
                 "restore_test_missing", "rto_exceeded", "offsite_broken",
                 "offsite_lagging", "standby_lagging", "standby_unknown", "drill_failed",
                 "drill_overdue", "alerts_open", "no_jobs"]


class Counts(Reply):
    systems: int
    ok: int
    warning: int
    critical: int
    unknown: int
    open_alerts: int


class AgentCounts(Reply):
    online: int
    offline: int


class InstitutionProblem(Reply):
    code: Literal["no_configuration", "invalid_configuration"]
    message: str


class InstitutionSummary(Reply):
    name: str
    title: str
    timezone: str | None
    """The hospital's time zone (its configuration's `timezone`): times are shown in it."""
    config_version: int | None
    problem: InstitutionProblem | None
    summary: Counts
    agents: AgentCounts


class Rpo(Reply):
    achieved_seconds: float | None
    """Age of the newest successful backup's recovery point; None: none known."""
    point_at: str | None
    target_seconds: float | None
    target_source: Literal["plan", "tier"] | None
    plan_seconds: float | None
    tier_seconds: float | None
    log_streamed: bool
    """A database source streams its WAL/binlog: the real point may be newer than the
    backup (measured on the hospital's host, not by the server)."""


class JobBrief(Reply):
    job_id: int
    plan: str
    status: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    snapshot_id: str | None


class RestoreTest(JobBrief):
    kind: str
    rto_seconds: float | None
    rto_target_seconds: float | None
    last_success_at: str | None


class Copy(Reply):
    plan: str
    target: str
    site: str
    offsite: bool
    continuous: bool
    schedule: str
    state: LinkState
    lag_seconds: float | None
    """How long ago the newest successful copy started (None: continuous, or none)."""
    last_copy_at: str | None
    last_job: JobBrief | None


class Drill(Reply):
    at: str | None
    status: str
    seconds: float | None
    job_id: int | None


class Dr(Reply):
    standby_site: str
    primary_site: str
    current_primary_site: str | None
    """Where the agent last found the primary (after a switch-over: the standby's site)."""
    kind: str
    feed: str
    state: LinkState
    lag_seconds: float | None
    lag_bytes: int | None
    problems: list[str]
    agent: str | None
    reported_at: str | None
    last_drill: Drill | None


class SystemState(Reply):
    institution: str
    name: str
    title: str
    criticality: str
    records: str
    plans: list[str]
    status: State
    reasons: list[Reason]
    rpo: Rpo
    last_backup: JobBrief | None
    restore_test: RestoreTest | None
    offsite: list[Copy]
    offsite_lag_seconds: float | None
    dr: Dr | None
    open_alerts: int


class Dashboard(Reply):
    generated_at: str
    institution: str | None
    summary: Counts
    institutions: list[InstitutionSummary]
    systems: list[SystemState]


class Node(Reply):
    id: str
    type: Literal["institution", "site", "system", "repository", "standby"]
    institution: str
    name: str
    title: str
    parent: str | None
    status: str | None
    """A system: its dashboard status; a standby: its link state; else None."""
    site: str | None
    location: str | None
    role: str | None
    url: str | None
    """A repository's URL without its credentials."""
    kind: str | None
    criticality: str | None


class Link(Reply):
    id: str
    type: Literal["backup", "copy", "replication"]
    institution: str
    source: str
    target: str
    plan: str | None
    system: str | None
    offsite: bool
    state: LinkState
    lag_seconds: float | None
    lag_bytes: int | None
    last_at: str | None


class Topology(Reply):
    generated_at: str
    institution: str | None
    nodes: list[Node]
    links: list[Link]
