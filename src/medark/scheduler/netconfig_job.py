"""The daemon's fetch of network-device configurations (docs/netconfig.md).

On `[netconfig] schedule`, a child `medark netconfig fetch` fetches every device and
stores the versions that changed; it raises and resolves the devices' alerts itself
(`netconfig_unreachable:DEVICE`, `netconfig_changed:DEVICE`) in the catalog it is given,
so a fetch run by hand and one run by the daemon alert the same way. The job is `fetch`
of `netconfig` in the catalog, not retried (the next slot is the retry), holding a slot of
the repository it writes to.

With `[netconfig] copies`, each fetch slot is followed, for each copy target, by the job
`copy:TARGET` of `netconfig` (`copy --tag netconfig --no-archives` from the versions'
repository, in a slot of the target) and, when it succeeded, `forget:TARGET`: `forget
--tag netconfig --keep-last 3` per device, which policy/netconfig.py turns into "the
newest max(3, netconfig-keep) versions" since the tags travel with each version; so the
target holds what the versions' repository holds, and what it removed is not sent again
(the fetch removed it there first). A failure raises `job_failed:netconfig:copy:TARGET`
as a plan's copy does (scheduler/alerts.py).
"""

from __future__ import annotations

from datetime import datetime

from medark.catalog.models import SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.environment import CATALOG
from medark.config.plans import MedarkConfig
from medark.config.schedule import Schedule
from medark.scheduler.runner import (
    LOCK_WAIT,
    Launcher,
    Outcome,
    Step,
    medark_command,
    repository_env,
    run_job,
)

NETCONFIG_PLAN = "netconfig"
NETCONFIG_KIND = "fetch"
TAG = "netconfig"
MIN_KEEP = 3


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


def netconfig_copies(config: MedarkConfig) -> list[str]:
    return [] if config.netconfig is None else list(config.netconfig.copies)


def _target_env(config: MedarkConfig, target: str) -> dict[str, str]:
    return {"MEDARK_REPO": config.repositories[target].url, **repository_env(config, target)}


def copy_versions_step(config: MedarkConfig, target: str,
                       medark: list[str] | None = None) -> Step:
    """Every stored version (tag netconfig) not yet in `target`; no WAL/binlog archives
    (the versions' repository may hold a plan's, which that plan's copies carry)."""
    source = config.netconfig.repository if config.netconfig is not None else ""
    env = {**_target_env(config, target),
           "MEDARK_FROM_REPO": config.repositories[source].url,
           **repository_env(config, source, "MEDARK_FROM_")}
    return Step(f"copy to {target}", [*(medark or medark_command()), "--json", *LOCK_WAIT,
                                      "copy", "--tag", TAG, "--no-archives"], env)


def forget_versions_step(config: MedarkConfig, target: str,
                         medark: list[str] | None = None) -> Step:
    """The versions beyond each device's keep in `target`: `--keep-last 3`, raised to the
    device's `netconfig-keep` by the protection every forget applies."""
    return Step(f"forget {target}", [*(medark or medark_command()), "--json", "forget",
                                     "--tag", TAG, "--group-by", "host,paths",
                                     "--keep-last", str(MIN_KEEP)],
                _target_env(config, target))


def run_netconfig_copy(config: MedarkConfig, catalog: Catalog, target: str,
                       slot: datetime | None, launcher: Launcher) -> list[tuple[str, Outcome]]:
    """`copy:TARGET` then, when it succeeded, `forget:TARGET` (a busy target skips it:
    the next slot catches up), each a job of plan `netconfig`: (kind, outcome)."""
    kind = f"copy:{target}"
    copied = run_job(catalog, NETCONFIG_PLAN, kind,
                     [copy_versions_step(config, target)], slot, 1, launcher)
    done = [(kind, copied)]
    if copied.status == SUCCEEDED:
        kind = f"forget:{target}"
        done.append((kind, run_job(catalog, NETCONFIG_PLAN, kind,
                                   [forget_versions_step(config, target)], None, 1,
                                   launcher, busy_ok=True)))
    return done
