"""What the management server tells about an institution's protection: its alerts and
its compliance (the evaluation `medark compliance` prints, over the institution's
current configuration and its own jobs and DR actions). Reports are server/reports.py.

The server judges from what the catalog holds: the jobs and DR actions the institution's
agents ran and reported. It never opens an institution's repositories or databases (it
holds none of their passwords, and a configuration's password command must not run on
the center's server), so the measurements `medark compliance` reads from them on the
hospital's own host (the offsite repository's newest point, the WAL or binlog age) are
"not measured" here. Reading these is not reading patient data: no grant is needed, and
only refusals are audited.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medark.catalog.store import AlertRecord, Catalog
from medark.errors import AccessDenied, Conflict, UsageError
from medark.policy.compliance import NOT_COVERED, failed_musts
from medark.scheduler.runner import Step
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.configs import ConfigVersion, current_config, in_scope
from medark.server.db import audit, transaction
from medark.service.compliance import compliance
from medark.util import clock

NOT_READ = ("medark: not read by the management server (it opens no repository or "
            "database; medark on the hospital's host measures it)")
MAX_ALERTS = 1000


def not_launched(step: Step) -> subprocess.CompletedProcess[str]:
    """The launcher the server gives compliance and the reports: it runs nothing, and
    every measurement that needs a child `medark` reads as not available."""
    return subprocess.CompletedProcess(step.argv, 1, "", NOT_READ + "\n")


def allowed(catalog: Catalog, principal: Principal, permission: str, action: str,
            target: str | None, institution: str | None) -> None:
    """The permission, else the refusal audited (`action`, denied) and raised."""
    try:
        principal.require(permission)
    except AccessDenied as exc:
        audit(catalog, principal.actor, principal.address, action, target, "denied",
              institution, {"reason": exc.code})
        raise


def scope(catalog: Catalog, principal: Principal, institution: str | None,
          action: str) -> str | None:
    """The institution a list is narrowed to: `institution` when it is in scope (403
    `out_of_scope` otherwise, audited; 404 unknown), else the caller's own, or None
    (every institution) for a regional center account."""
    if institution is not None:
        with transaction(catalog) as session:
            return in_scope(catalog, session, principal, institution, action).name
    return None if principal.center else principal.institution


def configured(catalog: Catalog, principal: Principal, institution: str,
               action: str) -> ConfigVersion:
    """The institution (in scope) and its current configuration; 409
    `no_configuration` before its first."""
    with transaction(catalog) as session:
        in_scope(catalog, session, principal, institution, action)
    found = current_config(catalog, institution)
    if found is None:
        raise Conflict(f"{institution} has no configuration yet: a system administrator "
                       f"saves one first (PUT /api/institutions/{institution}/config)",
                       "no_configuration")
    return found


# alerts


def alerts(catalog: Catalog, principal: Principal, institution: str | None,
           open_only: bool, limit: int) -> list[AlertRecord]:
    """The alerts of the institutions in scope, newest first."""
    allowed(catalog, principal, R.ALERTS_READ, "alerts.read", institution, institution)
    narrowed = scope(catalog, principal, institution, "alerts.read")
    return catalog.alerts(open_only, min(limit, MAX_ALERTS), narrowed)


def alert_view(record: AlertRecord) -> dict[str, Any]:
    delivery = record.delivery
    return {"id": record.id, "institution": record.institution, "key": record.key,
            "kind": record.kind, "severity": record.severity, "plan": record.plan,
            "summary": record.summary,
            "opened_at": clock.format_time(record.opened_at),
            "resolved_at": (clock.format_time(record.resolved_at)
                            if record.resolved_at else None),
            "open": record.resolved_at is None, "details": record.details,
            "delivery": delivery.status if delivery else None}


# compliance


@dataclass(frozen=True)
class Judging:
    """What to judge against; None: the configuration's [hospital] table."""

    profile: str | None = None
    level: int | None = None
    sichuan: bool | None = None
    at: datetime | None = None
    language: str = "en"


def institution_compliance(catalog: Catalog, principal: Principal, institution: str,
                           judging: Judging) -> dict[str, Any]:
    """The document `medark --json compliance` prints, for the institution's current
    configuration and its jobs, with the institution and the version judged."""
    allowed(catalog, principal, R.COMPLIANCE_READ, "compliance.read", institution,
            institution)
    version = configured(catalog, principal, institution, "compliance.read")
    config = version.config
    tier = judging.profile or config.hospital.tier
    level = judging.level or config.hospital.level
    sichuan = config.hospital.sichuan if judging.sichuan is None else judging.sichuan
    at = judging.at or clock.now()
    try:
        verdicts = compliance(config, catalog, tier, level, sichuan, at, not_launched,
                              institution)
    except ValueError as exc:  # an unknown tier or profile
        raise UsageError(str(exc).splitlines()[0]) from None
    counts = Counter(v.status for v in verdicts)
    language = judging.language
    return {"institution": institution, "config_version": version.version,
            "at": clock.format_time(at), "profile": tier, "level": level,
            "sichuan": sichuan, "lang": language, "compliant": not failed_musts(verdicts),
            "counts": dict(counts),
            "must_not_covered": sum(1 for v in verdicts
                                    if v.requirement.must and v.status == NOT_COVERED),
            "verdicts": [v.public(language) for v in verdicts]}
