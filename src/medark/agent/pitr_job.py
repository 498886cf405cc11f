"""A point-in-time restore the server asks for (docs/server.md, "Point-in-time restore").

The server names a plan, a database source, a time and a restore target; the agent
works out the rest from its own configuration and repository: the target's directory
(one of its `[agent] restore_targets`, else refused), the cluster behind the source and
whether the time lies inside one of its windows now (agent/windows.py). It writes a
NEW subdirectory of the target, `SYSTEM-SOURCE-YYYYmmddTHHMMSSZ`, with `medark pg
restore --time T --target-dir DIR` / `medark mysql restore --time T --target-dir DIR`
as its child (the command's own checks and access audit apply as at the terminal), and
never starts the server: the operator does, once they have looked.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from medark.agent.remote_jobs import RESTORE, Done, KeepOutput, catalog_env, last_json
from medark.agent.windows import Window, plan_windows
from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.scheduler.runner import Launcher, Step, medark_command, repository_env, run_job
from medark.util import clock

ENGINES = {"wal": ("postgres", ["pg", "restore"], "--system-id"),
           "binlog": ("mariadb", ["mysql", "restore"], "--server")}
"""Window kind -> (what the result calls it, the command, how it names the cluster)."""
SOURCE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789:-_")


def refusal(details: dict[str, Any]) -> str | None:
    """Why the time or source is not one this agent would read, or None."""
    try:
        clock.parse_time(details.get("time"))
    except (TypeError, ValueError):
        return "the time is an ISO-8601 timestamp"
    source = details.get("source")
    if source is not None and (not isinstance(source, str) or not source
                               or len(source) > 100 or not set(source) <= SOURCE_CHARS):
        return "the source is a database source's name (postgres, mariadb)"
    return None


def run(config: MedarkConfig, catalog: Catalog, plan: str, details: dict[str, Any],
        launcher: Launcher) -> Done:
    moment = clock.parse_time(details["time"])
    when = clock.format_time(moment)
    target = str(details["target"])
    window, why = _window(config, plan, details.get("source"), moment)
    if window is None:
        return Done(FAILED, why, {}, [], [])
    kind, command, cluster_flag = ENGINES[window.kind]
    system = config.plans[plan].system
    name = (f"{system}-{window.source.replace(':', '-')}-"
            f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}")
    directory = os.path.join(config.agent.restore_targets[target], name)
    if os.path.lexists(directory):
        return Done(FAILED, f"{name} already exists in restore target {target}: a "
                            "point-in-time restore writes a new directory", {}, [], [])
    repository = config.plans[plan].repository
    env = {"MEDARK_REPO": config.repositories[repository].url,
           **repository_env(config, repository), **catalog_env(catalog)}
    argv = [*medark_command(), "--json", *command, "--time", when, "--target-dir",
            directory, cluster_flag, window.cluster]
    kept = KeepOutput(launcher)
    outcome = run_job(catalog, plan, RESTORE,
                      [Step(f"{kind} restore to {when} from {repository}", argv, env)],
                      None, 1, kept)
    printed = last_json(kept.stdout)
    given = printed.get("backup")
    backup: dict[str, Any] = given if isinstance(given, dict) else {}
    restored: dict[str, Any] = {
        "target": target, "time": when, "data_dir": name, "kind": kind,
        "source": window.source, "repository": repository,
        "base": str(backup.get("snapshot_id") or window.base)[:8],
        **{k: printed[k] for k in ("restore_seconds", "files") if k in printed}}
    ok = outcome.status == SUCCEEDED
    return Done(SUCCEEDED if ok else FAILED, None if ok else outcome.error,
                {"restore": restored},
                [outcome.job_id] if outcome.job_id is not None else [], [])


def _window(config: MedarkConfig, plan: str, source: object, moment: datetime
            ) -> tuple[Window | None, str]:
    """The window of the plan's `source` (any, when the plan has one) that holds
    `moment`, as the repository says now; (None, why) when there is none."""
    found = plan_windows(config, plan) or []
    names = sorted({w.source for w in found})
    if source is None and len(names) > 1:
        return None, (f"plan {plan} has several database sources ({', '.join(names)}): "
                      "name one")
    mine = [w for w in found if source is None or w.source == source]
    inside = [w for w in mine if w.covers(moment)]
    if inside:
        return inside[-1], ""
    spans = "; ".join(f"{clock.format_time(w.start)} .. {clock.format_time(w.end)}"
                      for w in mine) or "none"
    return None, (f"{clock.format_time(moment)} is outside the recoverable windows of plan "
                  f"{plan}{f' source {source}' if source else ''} (windows: {spans})")
