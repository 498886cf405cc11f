"""What compliance reads about the network devices (Sichuan 1.4.1,
policy/compliance_netconfig.py): each configured device's stored versions, its keep
count, and whether its newest fetch failed (its open `netconfig_unreachable` alert)."""

from __future__ import annotations

from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.errors import MedarkError
from medark.policy.compliance_netconfig import DeviceFacts, NetconfigFacts
from medark.service.netconfig import versions
from medark.service.session import open_configured
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots

UNREACHABLE = "netconfig_unreachable:"


def netconfig_facts(config: MedarkConfig, catalog: Catalog) -> NetconfigFacts | None:
    conf = config.netconfig
    if conf is None:
        return None
    failures = {a.key[len(UNREACHABLE):]: str((a.details or {}).get("error") or a.summary)
                for a in catalog.alerts(open_only=True, limit=10_000)
                if a.key.startswith(UNREACHABLE)}
    snapshots: list[Snapshot] = []
    unreadable = None
    try:
        repo = open_configured(config, conf.repository)
        try:
            snapshots = all_snapshots(repo)
        finally:
            repo.close()
    except MedarkError as exc:
        unreadable = f"repository {conf.repository}: {str(exc).splitlines()[0]}"
    devices = [DeviceFacts(name, len(versions(snapshots, name)), conf.keep_of(name),
                           failures.get(name))
               for name in sorted(conf.devices)]
    return NetconfigFacts(conf.schedule, devices, unreadable)
