"""Read views across the institutions in a caller's scope: the sites, systems,
repositories and plans of each institution's current configuration (server/configs.py),
each item carrying its institution. The regional center sees every institution, a
hospital its own; credentials are never shown (URLs and DSNs redacted).

A stored version that no longer passes the checks (a rule a newer Medark added) does
not hide the others: it is listed under `invalid` with its first problem.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from medark.catalog.store import Catalog, redacted
from medark.config.durations import format_config_duration
from medark.config.plans import MedarkConfig
from medark.server.accounts import Principal
from medark.server.configs import ConfigRejected, check_document, checked_read, in_scope
from medark.server.db import transaction
from medark.server.tables import Institution
from medark.server.tables_configs import ConfigVersionRow
from medark.service.plans import describe_source

Current = list[tuple[str, MedarkConfig]]


def current_configs(catalog: Catalog, principal: Principal, institution: str | None,
                    what: str) -> tuple[Current, list[dict[str, Any]]]:
    """((institution, configuration) of each institution in scope that has one, by name;
    the versions that no longer check). `institution` narrows to one (403 out_of_scope
    outside the scope)."""
    checked_read(catalog, principal, what, institution)
    latest = (select(ConfigVersionRow.institution_id,
                     func.max(ConfigVersionRow.version).label("version"))
              .group_by(ConfigVersionRow.institution_id).subquery())
    query = (select(Institution.name, ConfigVersionRow)
             .join(latest, latest.c.institution_id == Institution.id)
             .join(ConfigVersionRow, (ConfigVersionRow.institution_id == Institution.id)
                   & (ConfigVersionRow.version == latest.c.version))
             .order_by(Institution.name))
    with transaction(catalog) as session:
        if institution is not None:
            row = in_scope(catalog, session, principal, institution, "config.read", what)
            query = query.where(Institution.id == row.id)
        elif not principal.center:
            query = query.where(Institution.id == principal.institution_id)
        rows = [(name, row.version, row.document) for name, row in session.execute(query)]
    found: Current = []
    invalid: list[dict[str, Any]] = []
    for name, version, document in rows:
        try:
            found.append((name, check_document(document)))
        except ConfigRejected as exc:
            invalid.append({"institution": name, "version": version,
                            "message": exc.problems[0]})
    return found, invalid


def sites(configs: Current) -> list[dict[str, Any]]:
    return [{"institution": inst, "name": name, "title": site.name or name,
             "location": site.location, "role": site.role}
            for inst, config in configs for name, site in sorted(config.sites.items())]


def systems(configs: Current) -> list[dict[str, Any]]:
    return [{"institution": inst, "name": name, "title": system.name or name,
             "owner": system.owner, "criticality": system.criticality,
             "records": system.records,
             "sources": [describe_source(s) for s in system.sources],
             "plans": sorted(p for p, plan in config.plans.items() if plan.system == name)}
            for inst, config in configs for name, system in sorted(config.systems.items())]


def repositories(configs: Current) -> list[dict[str, Any]]:
    return [{"institution": inst, "name": name, "site": repo.site,
             "url": redacted(repo.url), "max_jobs": repo.max_jobs, "prune": repo.prune}
            for inst, config in configs
            for name, repo in sorted(config.repositories.items())]


def plans(configs: Current) -> list[dict[str, Any]]:
    return [{"institution": inst, "name": name, "system": plan.system,
             "repository": plan.repository, "schedule": plan.schedule,
             "rpo": format_config_duration(plan.rpo), "rto": format_config_duration(plan.rto),
             "retention": plan.retention.model_dump(exclude_defaults=True, mode="json"),
             "copies": [{"to": c.to, "schedule": c.schedule} for c in plan.copies],
             "restore_test": plan.restore_test.schedule if plan.restore_test else None}
            for inst, config in configs for name, plan in sorted(config.plans.items())]
