"""The size of a configured repository (what it would take without dedup and compression,
what it takes, and their ratio), read by a `medark stats` child: for reports and for the
metrics endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass

from medark.config.plans import MedarkConfig
from medark.scheduler.runner import Launcher, Step, launch, medark_command, repository_env


@dataclass
class RepositoryStats:
    name: str
    site: str
    raw_size: int | None
    stored_size: int | None
    dedup_ratio: float | None
    error: str | None = None


def repository_stats(config: MedarkConfig, name: str, launcher: Launcher = launch,
                     reader: bool = False) -> RepositoryStats:
    """`reader`: without a lock (--no-lock), for a background reader that must never make
    a prune or forget wait; a concurrent prune may then fail it (read again later)."""
    repo = config.repositories[name]
    env = {"MEDARK_REPO": repo.url, **repository_env(config, name)}
    argv = [*medark_command(), "--json", *(["--no-lock"] if reader else []), "stats"]
    result = launcher(Step(f"stats {name}", argv, env))
    try:
        doc = json.loads(result.stdout.splitlines()[-1])["repository"]
        return RepositoryStats(name, repo.site, int(doc["raw_size"]), int(doc["stored_size"]),
                               float(doc["dedup_ratio"]))
    except (ValueError, KeyError, IndexError, TypeError):
        lines = [ln.removeprefix("medark: ") for ln in result.stderr.splitlines() if ln]
        return RepositoryStats(name, repo.site, None, None, None,
                               lines[-1] if lines else f"exit {result.returncode}")
