"""The daemon's database audit collector (docs/dbaudit.md): one continuous child,
`dbaudit collect --follow`, for every source with an `audit` table, restarted with
back-off like a WAL stream; each run is a job `dbaudit` of plan `dbaudit`."""

from __future__ import annotations

from medark.config.environment import CATALOG
from medark.config.plans import MedarkConfig
from medark.scheduler.runner import Step, medark_command

PLAN = "dbaudit"
KIND = "dbaudit"


def dbaudit_children(config: MedarkConfig, config_file: str | None,
                     catalog_url: str | None, medark: list[str] | None = None
                     ) -> list[tuple[str, str, Step]]:
    """(plan, kind, step) of the collector, or none when no source is audited."""
    if not any(source.audit is not None for system in config.systems.values()
               for source in system.sources):
        return []
    argv = [*(medark or medark_command()), "--json", "dbaudit", "collect", "--follow"]
    if config_file:
        argv += ["--config", config_file]
    env = {CATALOG.name: catalog_url} if catalog_url else {}
    return [(PLAN, KIND, Step("dbaudit collect", argv, env))]
