"""Which catalog a command opens, and the job history it lists: apart from service/jobs
(which runs plans) so that `medark jobs`, `alerts`, `audit` or `compliance` do not import
the runner, the restore test's database clients and the metrics server to read a table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from medark.catalog.store import Catalog, JobRecord
from medark.config import environment as env
from medark.errors import UsageError

if TYPE_CHECKING:
    from medark.config.plans import MedarkConfig


@contextmanager
def opened_catalog(config: MedarkConfig | None, given: str | None) -> Iterator[Catalog]:
    """The catalog (see catalog_url), closed afterwards."""
    catalog = Catalog(catalog_url(config, given))
    try:
        yield catalog
    finally:
        catalog.close()


def catalog_url(config: MedarkConfig | None, given: str | None) -> str:
    """--catalog, else MEDARK_CATALOG, else the configuration's catalog.url."""
    url = given or env.CATALOG.get() or (config.catalog.url if config is not None else None)
    if not url:
        raise UsageError("no catalog: give --catalog URL, set MEDARK_CATALOG, or a "
                         "configuration file (--config)")
    return url


def job_history(catalog: Catalog, plan: str | None, status: str | None,
                limit: int) -> list[JobRecord]:
    return catalog.jobs(plan=plan, status=status, limit=limit)
