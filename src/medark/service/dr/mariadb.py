"""MariaDB switch-over and failover by GTID replication (being built)."""

from __future__ import annotations

from collections.abc import Callable

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.dr import DrConf
from medark.errors import UsageError
from medark.service.dr.action import DrOutcome


def switchover(system: str, conf: DrConf, catalog: Catalog, *,
               requested_by: str | None = None,
               on_step: Callable[[DrStep], None] | None = None,
               replay_timeout: float = 60.0) -> DrOutcome:
    raise UsageError(f"dr switchover {system}: mariadb is not supported yet")


def failover(system: str, conf: DrConf, catalog: Catalog, *, force: bool = False,
             requested_by: str | None = None,
             on_step: Callable[[DrStep], None] | None = None) -> DrOutcome:
    raise UsageError(f"dr failover {system}: mariadb is not supported yet")
