"""The daemon's fetch of network-device configurations (docs/netconfig.md).

On `[netconfig] schedule`, a child `medark netconfig fetch` fetches every device and
stores the versions that changed; it raises and resolves the devices' alerts itself
(`netconfig_unreachable:DEVICE`, `netconfig_changed:DEVICE`) in the catalog it is given,
so a fetch run by hand and one run by the daemon alert the same way. The job is `fetch`
of `netconfig` in the catalog, not retried (the next slot is the retry), holding a slot of
the repository it writes to.
"""

from __future__ import annotations

from datetime import datetime

from medark.catalog.store import Catalog
from medark.config.environment import CATALOG
from medark.config.plans import MedarkConfig
from medark.config.schedule import Schedule
from medark.scheduler.runner import Launcher, Outcome, Step, medark_command, run_job

NETCONFIG_PLAN = "netconfig"
NETCONFIG_KIND = "fetch"


def netconfig_schedule(config: MedarkConfig) -> Schedule | None:
    return None if config.netconfig is None else Schedule.parse(config.netconfig.schedule)


def netconfig_step(config_file: str | None, catalog_url: str | None,
                   medark: list[str] | None = None) -> Step:
    argv = [*(medark or medark_command()), "--json", "netconfig", "fetch"]
    if config_file:
        argv += ["--config", config_file]
    env = {CATALOG.name: catalog_url} if catalog_url else {}
    return Step("netconfig fetch", argv, env)  # the catalog URL may hold a password:
    # the environment, never argv


def run_netconfig(catalog: Catalog, config_file: str | None, slot: datetime | None,
                  launcher: Launcher) -> Outcome:
    step = netconfig_step(config_file, catalog.url)
    return run_job(catalog, NETCONFIG_PLAN, NETCONFIG_KIND, [step], slot, 1, launcher)
