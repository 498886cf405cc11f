"""Jobs for the CLI and the daemon: which catalog, running a plan now, listing history."""

from __future__ import annotations

from medark.catalog.store import Catalog, JobRecord
from medark.config import environment as env
from medark.config.plans import MedarkConfig
from medark.errors import UsageError
from medark.scheduler.runner import Outcome, run_backup


def catalog_url(config: MedarkConfig | None, given: str | None) -> str:
    """--catalog, else MEDARK_CATALOG, else the configuration's catalog.url."""
    url = given or env.CATALOG.get() or (config.catalog.url if config is not None else None)
    if not url:
        raise UsageError("no catalog: give --catalog URL, set MEDARK_CATALOG, or a "
                         "configuration file (--config)")
    return url


def run_plan_now(config: MedarkConfig, plan: str, catalog: Catalog) -> Outcome:
    if plan not in config.plans:
        raise UsageError(f"no plan named {plan} (defined: {', '.join(sorted(config.plans))})")
    return run_backup(config, plan, catalog)


def job_history(catalog: Catalog, plan: str | None, status: str | None,
                limit: int) -> list[JobRecord]:
    return catalog.jobs(plan=plan, status=status, limit=limit)
