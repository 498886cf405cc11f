"""The planned switches of a MariaDB system fed from a repository: `dr switchover` and
`dr failback` (mariadb_repository.py has the feed itself, status and failover).

Switch-over (planned, nothing lost): preflight (a writable primary, a read-only standby
fed from the repository, the application healthy; what is archived applied first, the
standby's lag within `max_lag`); the primary site's services stopped, the clients held,
the primary fenced read-only (its sessions ended), FLUSH BINARY LOGS (the binlog stream
archives the closed file complete), then the repository's binlogs applied until the
standby has the fenced primary's final @@gtid_binlog_pos (at most `replay_timeout`,
exit 26 after it); the `stop`/`hook` fence on top; promotion. A failure before
promotion rolls back (mariadb.py's undo: fence lifted, clients released, services
started again). After it, as for a failover; then the old primary becomes the new
one's repository-fed standby (as_repository_standby: read-only, persisted in its option
file, no replication, its applied position its own @@gtid_binlog_pos). It can only
advance once the repository holds the new primary's binlogs: when it holds none, the
step is a warning naming the `mysql binlog-stream` to run and the action exits 26.

Which server's binlogs are applied: the writable node's when one is found (archive_of:
its server_id), else mysql_standby.archive_id_for's choice.

Failback: mariadb.MariaFailback (the configured primary a GTID replica of the DR node,
errant transactions refused, the catch-up), then its switch back over that replication
connection (RepositoryBack), the DR node left a repository-fed standby as above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.dr import DrConf
from medark.config.plans import MedarkConfig
from medark.errors import (
    DatabaseUnavailable,
    LagOverLimit,
    StandbyNotReady,
)
from medark.service.dr.action import DrOutcome, run_action
from medark.service.dr.clients import ClientSwitcher
from medark.service.dr.mariadb import (
    FAILBACK_CATCH_UP,
    MariaFailback,
    MariaSwitch,
    fence_on_top,
)
from medark.service.dr.mariadb_nodes import Maria, members
from medark.service.dr.mariadb_repository import (
    archive_of,
    capture_hint,
    open_writes,
    persist_read_only,
    reinstate_old,
    repository_pair,
    txns,
)
from medark.service.dr.nodes import one_line
from medark.service.dr.rollback import Undo
from medark.service.mysql_standby import (
    NotCaptured,
    apply_new_binlogs,
)
from medark.sources.mysql.replication import (
    FENCED,
    behind,
    missing,
)
from medark.util import clock

SWITCH_REPLAY_TIMEOUT = 60.0
"""How long a switch-over holds the clients while the last binlogs reach the repository
and the standby applies them."""


# ---- switch-over ---------------------------------------------------------------------


def switchover(config: MedarkConfig, system: str, conf: DrConf, catalog: Catalog, *,
               requested_by: str | None = None,
               on_step: Callable[[DrStep], None] | None = None,
               replay_timeout: float = SWITCH_REPLAY_TIMEOUT) -> DrOutcome:
    return run_action(
        catalog, system, "switchover",
        lambda steps, state: RepositorySwitch(system, conf, steps, state,
                                              replay_timeout=replay_timeout,
                                              config=config).run(),
        requested_by=requested_by, on_step=on_step)


@dataclass
class RepositorySwitch(MariaSwitch):
    """MariaSwitch (services, hold, rollback before promotion, redirect, health) with the
    repository as the feed: the standby applies the archived binlogs up to the fenced
    primary's final GTID, is promoted by turning read_only off, and the old primary is
    left its repository-fed standby (reinstate_old)."""

    replay_timeout: float = SWITCH_REPLAY_TIMEOUT
    config: MedarkConfig | None = None

    def promote(self, new: Maria) -> str:
        return open_writes(new)

    def _reinstate(self, old: Maria, new: Maria) -> None:
        assert self.config is not None
        reinstate_old(self.system, self.conf, self.config, self.steps, self.state, old, new)

    def preflight(self, clients: ClientSwitcher) -> tuple[Maria, Maria]:

        with self.steps.step("preflight") as note:
            nodes = members(self.conf)
            old, new = repository_pair(nodes)
            if old is None:
                raise DatabaseUnavailable(
                    f"{self.system}: no reachable writable primary ("
                    + ", ".join(m.describe() for m in nodes) + "; when the primary site is "
                    f"down: medark dr failover {self.system})")
            if new is None:
                raise StandbyNotReady(f"{self.system}: no read-only standby to switch to ("
                                      + ", ".join(m.describe() for m in nodes) + ")")
            assert self.config is not None and self.conf.repository is not None
            try:
                done = apply_new_binlogs(self.config, self.conf.repository, new.node.dsn,
                                         new.password, primary=archive_of(old))
            except NotCaptured as exc:
                raise StandbyNotReady(f"{self.system}: the standby cannot catch up: "
                                      f"{one_line(exc)}; "
                                      f"{capture_hint(self.config, self.conf, old)}"
                                      ) from None
            seconds = done.feed.lag_seconds()[0] if not done.transactions else 0.0
            limit = self.conf.max_lag.total_seconds()
            if seconds is not None and seconds > limit:
                raise LagOverLimit(f"{self.system}: the standby is {seconds:.0f} s behind the "
                                   f"repository (> max_lag {limit:g} s)")
            self.require_healthy(old)
            short = sum(behind(old.st.gtid_binlog_pos, done.after).values())
            note.detail = (f"{old.address} (site {old.node.site}) -> {new.address} (site "
                           f"{new.node.site}), GTID {old.st.gtid_binlog_pos or 'none'}, "
                           f"standby at {done.after or 'none'} ({txns(short)} behind, "
                           f"{txns(done.transactions)} applied now); {clients.preflight()}")
        return old, new

    def _fence_and_catch_up(self, old: Maria, new: Maria, undo: Undo) -> None:
        from medark.sources.mysql.fencing import fence_readonly, final_gtid
        from medark.sources.mysql.replication import run

        with self.steps.step("fence primary read-only") as note:
            undo.readonly = True
            ended = fence_readonly(old.node.dsn, old.password)
            run(old.conn, "FLUSH BINARY LOGS")
            note.detail = (f"{old.address}: writes refused, {ended} sessions ended, binary "
                           "log closed")
        with self.steps.step("wait for standby") as note:
            final = final_gtid(old.node.dsn, old.password)
            assert self.config is not None and self.conf.repository is not None
            deadline = clock.monotonic() + self.replay_timeout
            applied = 0
            while True:
                done = apply_new_binlogs(self.config, self.conf.repository, new.node.dsn,
                                         new.password, primary=archive_of(old))
                applied += done.transactions
                short = missing(final, done.after)
                if not short:
                    break
                if clock.monotonic() >= deadline:
                    raise StandbyNotReady(
                        f"{self.system}: the repository did not bring the standby to the "
                        f"fenced primary's {final} within {self.replay_timeout:g} s "
                        f"({short}; is `medark mysql binlog-stream` running?)")
                clock.sleep(0.3)
            note.detail = (f"primary wrote {final or 'nothing'}, the standby applied "
                           f"{done.after or 'nothing'} ({txns(applied)} from the "
                           "repository)")
        fence_on_top(self.system, self.conf, self.steps, old, undo)


# ---- failback ------------------------------------------------------------------------


def failback(config: MedarkConfig, system: str, conf: DrConf, catalog: Catalog, *,
             requested_by: str | None = None,
             on_step: Callable[[DrStep], None] | None = None,
             catch_up_timeout: float = FAILBACK_CATCH_UP) -> DrOutcome:
    return run_action(
        catalog, system, "failback",
        lambda steps, state: RepositoryFailback(system, conf, steps, state, catch_up_timeout,
                                                config).run(),
        requested_by=requested_by, on_step=on_step)


@dataclass
class RepositoryFailback(MariaFailback):
    """mariadb.MariaFailback (the configured primary a GTID replica of the DR node, the
    errant-transaction refusal, the catch-up) with RepositoryBack as its switch: once the
    configured primary is the primary again, the DR node is its repository-fed standby."""

    config: MedarkConfig | None = None
    AT_HOME = (FENCED,)

    def reinstate_home(self, home: Maria, away: Maria) -> str:
        if not home.st.log_slave_updates:
            raise StandbyNotReady(
                f"{self.system}: {home.address} runs without log_slave_updates: its binlog "
                "would lack what it replicates, so the DR node could not be fed from it "
                "after the failback (set log_slave_updates=1 and restart it)")
        return super().reinstate_home(home, away)

    def switch(self) -> MariaSwitch:
        assert self.config is not None
        return RepositoryBack(self.system, self.conf, self.steps, self.state,
                              target="primary", config=self.config)


@dataclass
class RepositoryBack(MariaSwitch):
    """The failback's switch-over: MariaSwitch to the configured primary, which replicates
    from the DR node (the fence, the wait for every GTID the DR node wrote, the rollback
    before promotion), then the DR node left a repository-fed standby (reinstate_old). The
    catch-up goes over that replication connection, not the repository: after a failover
    nothing may have streamed the DR node's binlogs into it."""

    config: MedarkConfig | None = None

    def promote(self, new: Maria) -> str:
        return super().promote(new) + persist_read_only(new, False)

    def _reinstate(self, old: Maria, new: Maria) -> None:
        assert self.config is not None
        reinstate_old(self.system, self.conf, self.config, self.steps, self.state, old, new)
