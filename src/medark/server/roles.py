"""Roles, separation of duties (三员分立) and what each role may do. Pure: no I/O.

等保 level 3 wants the system, security and audit administrators to be separate people,
so no account may hold two of those three roles; the other roles combine freely.
"""

from __future__ import annotations

from collections.abc import Iterable

from medark.errors import SeparationOfDuties, UsageError

SYSADMIN = "sysadmin"
SECADMIN = "secadmin"
AUDITADMIN = "auditadmin"
OPERATOR = "operator"
VIEWER = "viewer"

ROLES = (SYSADMIN, SECADMIN, AUDITADMIN, OPERATOR, VIEWER)
ADMIN_ROLES = frozenset({SYSADMIN, SECADMIN, AUDITADMIN})
"""The three administrators: mutually exclusive, and each needs a TOTP second factor."""
TOKEN_ROLES = (OPERATOR, VIEWER)
"""Roles an API token may carry: an administrator signs in with a second factor, which a
token for automation would bypass."""

USERS_READ = "users.read"
USERS_WRITE = "users.write"
TOKENS_MANAGE = "tokens.manage"
INSTITUTIONS_READ = "institutions.read"
INSTITUTIONS_WRITE = "institutions.write"
GRANTS_READ = "grants.read"
GRANTS_REQUEST = "grants.request"
GRANTS_DECIDE = "grants.decide"
"""Approve or deny a grant: the data owner's security administrator (server/grants.py)."""
SNAPSHOTS_READ = "snapshots.read"
"""List, browse and search snapshots: patient data, so another institution's need a
grant (server/grants.py), a regional center's account too."""
PLANS_READ = "plans.read"
"""An institution's configuration: sites, systems, repositories, plans (no secrets)."""
PLANS_WRITE = "plans.write"
JOBS_READ = "jobs.read"
"""The jobs of the institutions in scope, their progress and events (server/jobs.py)."""
JOBS_RUN = "jobs.run"
"""Run a plan's job now, cancel one: operators and system administrators."""
AGENTS_READ = "agents.read"
AGENTS_MANAGE = "agents.manage"
"""Enrolment tokens and revoking agents (server/agents.py)."""
ALERTS_READ = "alerts.read"
COMPLIANCE_READ = "compliance.read"
"""Alerts and compliance: every role of the institution (no patient data in them)."""
REPORTS_READ = "reports.read"
AUDIT_READ = "audit.read"
"""Search, export and verify the audit trail: the audit administrator's alone
(server/audit_api.py)."""
REPORTS_GENERATE = "reports.generate"
"""The periodic reports carry the audit trail's access section (failed logins by address
and account, administrators' actions): the three administrators read them, the system
and the audit administrator have them made (server/reports.py)."""
OVERSIGHT = frozenset({ALERTS_READ, COMPLIANCE_READ})

PERMISSIONS: dict[str, frozenset[str]] = {
    SYSADMIN: frozenset({JOBS_READ, JOBS_RUN,
                         AGENTS_READ, AGENTS_MANAGE,
                        INSTITUTIONS_READ, INSTITUTIONS_WRITE, PLANS_READ, PLANS_WRITE,
                         GRANTS_READ, *OVERSIGHT, REPORTS_READ, REPORTS_GENERATE}),
    SECADMIN: frozenset({JOBS_READ,
                         USERS_READ, USERS_WRITE, TOKENS_MANAGE, INSTITUTIONS_READ,
                         GRANTS_READ, GRANTS_DECIDE, *OVERSIGHT, REPORTS_READ}),
    AUDITADMIN: frozenset({AUDIT_READ, JOBS_READ,
                           INSTITUTIONS_READ, GRANTS_READ, *OVERSIGHT, REPORTS_READ,
                           REPORTS_GENERATE}),
    OPERATOR: frozenset({JOBS_READ, JOBS_RUN,
                         AGENTS_READ, INSTITUTIONS_READ, PLANS_READ,
                         GRANTS_READ, GRANTS_REQUEST, SNAPSHOTS_READ, *OVERSIGHT}),
    VIEWER: frozenset({JOBS_READ,
                       AGENTS_READ, INSTITUTIONS_READ, PLANS_READ,
                       GRANTS_READ, GRANTS_REQUEST, SNAPSHOTS_READ, *OVERSIGHT}),
}
"""Role -> the permissions it grants; an account has the union of its roles'."""

RESTORES_RUN = "restores.run"
"""Ask the institution's agent to restore a snapshot into one of its declared restore
targets: operators (server/remote_ops.py); another institution's needs a grant."""
DR_READ = "dr.read"
"""The DR status the agents report: every role (no patient data in it)."""
DR_RUN = "dr.run"
"""Switchover, failover and drill through the institution's agent: operators and
system administrators."""
for _role, _granted in ((SYSADMIN, {DR_READ, DR_RUN}),
                        (OPERATOR, {RESTORES_RUN, DR_READ, DR_RUN}),
                        (SECADMIN, {DR_READ}), (AUDITADMIN, {DR_READ}),
                        (VIEWER, {DR_READ})):
    PERMISSIONS[_role] = PERMISSIONS[_role] | _granted


DASHBOARD_READ = "dashboard.read"
"""The dashboard and the live event stream of the institutions in scope (server/
dashboard.py, server/live_events.py): every role, as jobs, alerts and DR status are."""
TOPOLOGY_READ = "topology.read"
"""Sites, systems, repositories, copies and standbys with their live state
(server/topology.py): the configuration's readers (plans.read)."""
for _role in ROLES:
    _extra = {DASHBOARD_READ} | ({TOPOLOGY_READ} if PLANS_READ in PERMISSIONS[_role]
                                 else set())
    PERMISSIONS[_role] = PERMISSIONS[_role] | _extra


def checked_roles(roles: Iterable[str]) -> list[str]:
    """The roles, sorted and without repeats; UsageError for an unknown role, and
    SeparationOfDuties for two administrator roles on one account."""
    unique = sorted(set(roles))
    if not unique:
        raise UsageError("an account needs at least one role")
    unknown = [r for r in unique if r not in ROLES]
    if unknown:
        raise UsageError(f"unknown role {unknown[0]!r}: use one of {', '.join(ROLES)}")
    admins = [r for r in unique if r in ADMIN_ROLES]
    if len(admins) > 1:
        raise SeparationOfDuties(
            f"separation of duties: one account cannot hold both {admins[0]} and "
            f"{admins[1]}; give each administrator role to a different person")
    return unique


def needs_totp(roles: Iterable[str]) -> bool:
    return any(r in ADMIN_ROLES for r in roles)


def allowed(roles: Iterable[str], permission: str) -> bool:
    return any(permission in PERMISSIONS.get(r, frozenset()) for r in roles)
