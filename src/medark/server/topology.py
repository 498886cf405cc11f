"""The topology (GET /api/topology): institutions → sites → systems, repositories and
standbys as nodes; backups (system → repository), copies (repository → repository, per
plan: `offsite` when the target is on another site) and DR replication (system → its
standby) as links, each with a state (ok, lagging, broken, unknown) and its lag where
the server knows it.

Built from each institution's current configuration (the sites and repositories as
server/config_views.py shows them: URLs without their credentials) and the figures the
dashboard judges from (server/dashboard.py), so a link and the dashboard never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from medark.catalog.statuses import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.server import config_views
from medark.server import roles as R
from medark.server.accounts import Principal
from medark.server.dashboard import copies, judge
from medark.server.dashboard_facts import Facts, Inst, load, scoped, seconds_between
from medark.server.oversight import allowed
from medark.util import clock


def topology(catalog: Catalog, principal: Principal, institution: str | None
             ) -> dict[str, Any]:
    allowed(catalog, principal, R.TOPOLOGY_READ, "topology.read", institution, institution)
    facts = load(catalog, scoped(catalog, principal, institution, "topology.read"))
    now = clock.now()
    nodes: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for inst in facts.institutions:
        nodes.append(_node("institution", inst.name, inst.name, inst.title, None))
        if inst.config is not None:
            _institution(inst, inst.config, facts, now, nodes, links)
    return {"generated_at": clock.format_time(now), "institution": institution,
            "nodes": nodes, "links": links}


def _node(node_type: str, institution: str, name: str, title: str, parent: str | None,
          **extra: Any) -> dict[str, Any]:
    node = {"id": node_id(node_type, institution, name), "type": node_type,
            "institution": institution, "name": name, "title": title, "parent": parent,
            "status": None, "site": None, "location": None, "role": None, "url": None,
            "kind": None, "criticality": None}
    node.update(extra)
    return node


def node_id(kind: str, institution: str, name: str) -> str:
    return f"{kind}:{institution}" if kind == "institution" else f"{kind}:{institution}/{name}"


def _institution(inst: Inst, config: MedarkConfig, facts: Facts, now: datetime,
                 nodes: list[dict[str, Any]], links: list[dict[str, Any]]) -> None:
    name = inst.name
    current = [(name, config)]
    top = node_id("institution", name, name)
    for site in config_views.sites(current):
        nodes.append(_node("site", name, site["name"], site["title"], top,
                           location=site["location"], role=site["role"]))
    for repo in config_views.repositories(current):
        nodes.append(_node("repository", name, repo["name"], repo["name"],
                           node_id("site", name, repo["site"]), site=repo["site"],
                           url=repo["url"]))
    for system in sorted(config.systems):
        judged = judge(inst, system, facts, now)
        dr = judged["dr"]
        plans = judged["plans"]
        home = (dr["current_primary_site"] or dr["primary_site"]) if dr else (
            config.repositories[config.plans[plans[0]].repository].site if plans else None)
        nodes.append(_node("system", name, system, judged["title"],
                           node_id("site", name, home) if home else None,
                           status=judged["status"], site=home,
                           criticality=judged["criticality"]))
        source = node_id("system", name, system)
        for plan in plans:
            links.append(_backup(name, config, plan, system, facts, now))
        for copy in copies(name, config, plans, facts, now):
            origin = config.plans[copy["plan"]].repository
            links.append(_link("copy", name, node_id("repository", name, origin),
                               node_id("repository", name, copy["target"]),
                               f"{copy['plan']}>{copy['target']}", plan=copy["plan"],
                               system=system, offsite=copy["offsite"],
                               state=copy["state"], lag_seconds=copy["lag_seconds"],
                               last_at=copy["last_copy_at"]))
        if dr is not None:
            standby = node_id("standby", name, system)
            waiting = standing_by(dr)
            nodes.append(_node("standby", name, system, judged["title"],
                               node_id("site", name, waiting), site=waiting,
                               kind=dr["kind"], status=dr["state"]))
            links.append(_link("replication", name, source, standby, system,
                               system=system, offsite=dr["standby_site"] != dr[
                                   "primary_site"], state=dr["state"],
                               lag_seconds=dr["lag_seconds"], lag_bytes=dr["lag_bytes"],
                               last_at=dr["reported_at"]))


def standing_by(dr: dict[str, Any]) -> str:
    """The standby's site: the pair's site that is not serving. After a switch-over the
    agent reports the configured standby's node as the primary, so the old primary's
    site holds the standby; before any report (or one naming neither site) the
    configured standby's site."""
    serving, primary, standby = (dr["current_primary_site"], dr["primary_site"],
                                 dr["standby_site"])
    return str(primary if serving == standby and serving != primary else standby)


def _link(kind: str, institution: str, source: str, target: str, name: str,
          **extra: Any) -> dict[str, Any]:
    link = {"id": f"{kind}:{institution}/{name}", "type": kind, "institution": institution,
            "source": source, "target": target, "plan": None, "system": None,
            "offsite": False, "state": "unknown", "lag_seconds": None, "lag_bytes": None,
            "last_at": None}
    link.update(extra)
    return link


def _backup(institution: str, config: MedarkConfig, plan: str, system: str,
            facts: Facts, now: datetime) -> dict[str, Any]:
    """A plan's backups into its repository: broken when the newest failed and the RPO
    is out (or it never succeeded), lagging when one of the two, unknown before any."""
    done = facts.job("succeeded", institution, plan, "backup")
    newest = facts.job("newest", institution, plan, "backup")
    age = seconds_between(now, done.started_at) if done is not None else None
    over = age is None or age > config.plans[plan].rpo.total_seconds()
    failed = newest is not None and newest.status == FAILED
    if newest is None and done is None:
        state = "unknown"
    elif failed and over:
        state = "broken"
    elif failed or over:
        state = "lagging"
    else:
        state = "ok" if done is not None and done.status == SUCCEEDED else "unknown"
    repository = config.plans[plan].repository
    return _link("backup", institution, node_id("system", institution, system),
                 node_id("repository", institution, repository), plan, plan=plan,
                 system=system, state=state, lag_seconds=age,
                 last_at=clock.format_time(done.started_at) if done and done.started_at
                 else None)
