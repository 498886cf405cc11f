"""`dr switchover`: a planned switch of a PostgreSQL system to its standby, losing no
acknowledged write, with the old primary left as the new primary's standby.

The order, and why:

1. preflight: the roles as found, the standby streaming on the primary's timeline, the
   lag within the limits, the application healthy, the client switch usable. Anything
   wrong refuses the switch here, with nothing changed.
2. stop the services at the primary's site (reverse order), then hold the clients
   (pgbouncer PAUSE: requests wait in the pooler instead of failing).
3. fence the primary read-only and end its sessions; read the position that holds every
   commit it acknowledged; wait until the standby has replayed up to it. A configured
   `stop` or `hook` fence is applied on top, once the standby has everything.
4. promote the standby. Before this point every failure rolls back by itself: the fence
   lifted, the clients released to the old primary, its services started again. From
   here on nothing is undone, and nothing can leave two writable primaries: the old one
   stays fenced until it is a standby.
5. redirect and release the clients; start the services at the new site; wait until the
   health checks pass.
6. make the old primary a standby of the new one (pg_rewind where needed), so the
   reverse switch is ready.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.dr import DrConf
from medark.config.plans import MedarkConfig
from medark.errors import (
    HealthCheckFailed,
    LagOverLimit,
    MedarkError,
    StandbyNotReady,
    UsageError,
)
from medark.service.dr import apps
from medark.service.dr.action import ActionState, DrOutcome, run_action
from medark.service.dr.clients import ClientSwitcher
from medark.service.dr.health import run_check, wait_healthy
from medark.service.dr.nodes import Member, one_line
from medark.service.dr.pair import Pair, checks_for, find_pair, require_streaming
from medark.service.dr.rollback import Undo
from medark.service.dr.servers import start_server, stop_server
from medark.service.dr.steps import Steps
from medark.util import clock

REPLAY_TIMEOUT = 60.0
"""How long the clients may be held while the standby replays the last WAL."""
ARCHIVE_REPLAY_TIMEOUT = 300.0
"""A repository-fed standby gets the last segment through archive_command, the
repository (and the copy to it) and its own poll every wal_retrieve_retry_interval."""
PROMOTE_TIMEOUT = 60.0
REINSTATE_TIMEOUT = 300.0
PREFLIGHT_CHECK_SECONDS = 10.0


def supported(system: str, conf: DrConf, action: str, repository_feed: bool = False
              ) -> None:
    """What this release can do: PostgreSQL streaming (MariaDB is dispatched before), and
    a repository-fed PostgreSQL standby where `repository_feed`."""
    if conf.primary.kind != "postgres":
        raise UsageError(f"dr {action} {system}: {conf.primary.kind} is not supported yet "
                         "(PostgreSQL only in this release)")
    if conf.feed != "stream" and not repository_feed:
        raise UsageError(f"dr {action} {system}: a repository-fed standby is not supported "
                         "yet (feed = \"stream\" only in this release)")


def switchover(config: MedarkConfig, system: str, catalog: Catalog, *,
               requested_by: str | None = None,
               on_step: Callable[[DrStep], None] | None = None,
               replay_timeout: float = REPLAY_TIMEOUT) -> DrOutcome:
    """Switch `system` over to its standby; the outcome carries every step and the error
    the command exits with (none when it all went well)."""
    from medark.service.dr.status import selected

    conf = selected(config, system)[system]
    if conf.primary.kind == "mariadb" and conf.feed == "stream":
        from medark.service.dr import mariadb

        return mariadb.switchover(system, conf, catalog, requested_by=requested_by,
                                  on_step=on_step, replay_timeout=replay_timeout)
    if conf.primary.kind == "mariadb" and conf.feed == "repository":
        from medark.service.dr import mariadb_repository_switch

        return mariadb_repository_switch.switchover(config, system, conf, catalog,
                                                    requested_by=requested_by,
                                                    on_step=on_step,
                                                    replay_timeout=replay_timeout)
    supported(system, conf, "switchover", repository_feed=True)
    if conf.feed == "repository":
        replay_timeout = max(replay_timeout, ARCHIVE_REPLAY_TIMEOUT)
    return run_action(
        catalog, system, "switchover",
        lambda steps, state: Switch(system, conf, steps, state, config,
                                    replay_timeout).run(),
        requested_by=requested_by, on_step=on_step)


def preflight(system: str, conf: DrConf, steps: Steps, clients: ClientSwitcher,
              check_health: bool = True) -> Pair:
    """Step `preflight`: find the pair and refuse a switch that cannot go well."""
    from medark.sources.postgres.replication import replication_lag

    with steps.step("preflight") as note:
        pair = find_pair(system, conf)
        said = [require_streaming(system, pair, conf.feed)]
        lag = replication_lag(pair.primary.dsn, pair.standby.dsn)
        over = []
        if lag.bytes > conf.max_lag_bytes:
            over.append(f"{lag.bytes} bytes > max_lag_bytes {conf.max_lag_bytes}")
        if lag.seconds is not None and lag.seconds > conf.max_lag.total_seconds():
            over.append(f"{lag.seconds:.1f} s > max_lag {conf.max_lag.total_seconds():g} s")
        if over:
            paused = " with its replay paused" if pair.standby.pg.replay_paused else ""
            raise LagOverLimit(f"{system}: the standby is behind{paused} "
                               f"({'; '.join(over)}): the "
                               "clients would be held while it catches up; switch when "
                               f"medark dr status {system} shows it within its limits")
        if pair.standby.pg.replay_paused:
            raise StandbyNotReady(f"{system}: replay is paused on the standby "
                                  f"{pair.standby.address} (SELECT pg_wal_replay_resume())")
        said.append(f"lag {lag.bytes} bytes")
        if check_health:
            for check in checks_for(conf, pair.primary.node.site):
                result = run_check(check, pair.primary.dsn, PREFLIGHT_CHECK_SECONDS)
                if not result.ok:
                    raise HealthCheckFailed(
                        f"{system}: health check {result.name} fails before the switch "
                        f"({result.detail}); a planned switch-over starts from a healthy "
                        f"application (if the primary site is down: medark dr failover "
                        f"{system})")
        said.append(clients.preflight())
        note.detail = "; ".join(said)
    return pair


@dataclass
class Switch:
    system: str
    conf: DrConf
    steps: Steps
    state: ActionState
    config: MedarkConfig | None = None
    """Where a repository feed's repository is (None: the old primary is not reinstated
    from it)."""
    replay_timeout: float = REPLAY_TIMEOUT

    def run(self) -> None:
        with ClientSwitcher(self.system, self.conf.client_switch) as clients:
            pair = preflight(self.system, self.conf, self.steps, clients)
            self.switch(pair, clients)

    def _env(self, target: Member) -> dict[str, str]:
        return apps.hook_env(self.system, "NEW_PRIMARY", *target.host_port)

    def switch(self, pair: Pair, clients: ClientSwitcher) -> None:
        """Steps 2 to 6 of the module's list, from a preflighted pair."""
        old, new = pair.primary, pair.standby
        from medark.sources.postgres.fencing import unfence

        undo = Undo(old.address, clients, self._env(old), lambda: unfence(old.dsn),
                    lambda: start_server(old))
        try:
            self._stop_services(old, new, undo)
            with self.steps.step("hold clients") as note:
                held_at = clock.monotonic()
                note.detail = clients.hold(lambda: end_open_transactions(old))
            self._fence_and_catch_up(old, new, undo)
            self._promote(new)
        except MedarkError:
            self._roll_back(undo)
            raise
        self.state.new_primary = new.address
        self.redirect(new, old, clients, held_at)
        self.start_and_check(new)
        self._reinstate(old, new)
        self.synchronous()

    def _stop_services(self, old: Member, new: Member, undo: Undo) -> None:
        services = self.conf.services.get(old.node.site, [])
        if not services:
            return
        with self.steps.step(f"stop services at {old.node.site}") as note:
            undo.services = services
            note.detail = "stopped " + ", ".join(apps.stop_all(services, self._env(new)))

    def _fence_and_catch_up(self, old: Member, new: Member, undo: Undo) -> None:
        from medark.sources.postgres.fencing import fence_readonly, final_flush_lsn
        from medark.sources.postgres.replication import wait_replayed
        from medark.sources.postgres.wal import format_lsn

        with self.steps.step("fence primary read-only") as note:
            undo.readonly = True
            ended = fence_readonly(old.dsn)
            note.detail = f"{old.address}: writes refused, {ended} sessions ended"
        with self.steps.step("wait for standby") as note:
            final = final_flush_lsn(old.dsn)
            if self.conf.feed == "repository":
                _close_segment(old)  # so the last WAL is archived now, not at a timeout
            replayed = wait_replayed(new.dsn, final, self.replay_timeout)
            note.detail = (f"primary flushed {format_lsn(final)}, standby replayed "
                           f"{format_lsn(replayed.replay_lsn or 0)}"
                           + (f" from repository {self.conf.repository}"
                              if self.conf.feed == "repository" else ""))
        fencing = self.conf.fencing
        if fencing.type == "stop":
            with self.steps.step("fence primary: stop") as note:
                undo.stopped = True
                note.detail = stop_server(old)
        elif fencing.type == "hook":
            with self.steps.step("fence primary: hook") as note:
                note.detail = apps.fencing_hook(self.system, str(fencing.command),
                                                *old.host_port)

    def _promote(self, new: Member) -> None:
        from medark.sources.postgres.replication import node_state, promote

        with self.steps.step("promote standby") as note:
            try:
                after = promote(new.dsn, PROMOTE_TIMEOUT)
            except MedarkError:
                try:
                    still = node_state(new.dsn).role
                except MedarkError:
                    still = None
                if still == "primary":  # promoted after all: carry on
                    after = node_state(new.dsn)
                else:
                    raise
            note.detail = f"{new.address} is the primary on timeline {after.timeline}"

    def _roll_back(self, undo: Undo) -> None:
        """Undo what a failure before promotion left; the original error goes on up."""
        with self.steps.step("roll back") as note:
            note.detail = undo.run()
        self.state.rolled_back = True

    def redirect(self, new: Member, old: Member, clients: ClientSwitcher,
                  held_at: float) -> None:
        with self.steps.step("redirect clients") as note:
            try:
                note.detail = clients.redirect(new, old)
            finally:
                released = clients.release()
                self.state.switch_seconds = clock.monotonic() - held_at
            note.detail += f"; {released}"

    def start_and_check(self, new: Member) -> None:
        services = self.conf.services.get(new.node.site, [])
        if services:
            with self.steps.step(f"start services at {new.node.site}") as note:
                note.detail = "started " + ", ".join(apps.start_all(services, self._env(new)))
        checks = checks_for(self.conf, new.node.site)
        if not checks:
            return
        with self.steps.step("health checks") as note:
            results = wait_healthy(checks, new.dsn)
            failed = [r for r in results if not r.ok]
            if failed:
                raise HealthCheckFailed(
                    f"{self.system}: switched to {new.address}, but health check "
                    f"{failed[0].name} did not pass within its timeout ({failed[0].detail})")
            note.detail = ", ".join(f"{r.name} ok" for r in results)

    def synchronous(self) -> None:
        """A synchronous system: the new primary waits for its new standby from now on
        (or degrades, or blocks, as `on_sync_loss` says, when there is none yet)."""
        if not self.conf.synchronous:
            return
        from medark.service.dr.sync import enforce

        with self.steps.step("synchronous replication") as note:
            found = enforce(self.system, self.conf)
            note.detail = found.detail + (f" ({found.problem})" if found.problem else "")

    def _reinstate(self, old: Member, new: Member) -> None:
        """Step 6; a failure here does not undo the switch, it is reported (exit 26). A
        repository feed's old primary replays what the new one archives there."""
        if old.datadir is None:
            self.steps.skip("reinstate old primary",
                            "its control is not a data directory: make it a standby of "
                            f"{new.address} by hand"
                            + (" (medark pg restore --standby)"
                               if self.conf.feed == "repository" else ""))
            return
        try:
            with self.steps.step("reinstate old primary") as note:
                note.detail = reinstate(self.system, self.conf, old, new, self.config)
        except MedarkError as exc:
            self.state.afterwards = StandbyNotReady(
                f"{self.system}: switched to {new.address}, but the old primary "
                f"{old.address} is not its standby yet: {one_line(exc)}")


def _close_segment(old: Member) -> None:
    """pg_switch_wal on the fenced primary: its archive_command sends the segment holding
    the last commit to the repository the standby replays."""
    from medark.sources.postgres.server import Dsn

    with Dsn.parse(old.dsn).connect() as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("SELECT pg_switch_wal()")


def end_open_transactions(old: Member) -> str:
    """The pooler's PAUSE waits for transactions still open: end the sessions holding
    one on the old primary (they would be ended by the fence a moment later anyway)."""
    from medark.sources.postgres.server import Dsn

    with Dsn.parse(old.dsn).connect() as conn:
        ended = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
            "backend_type = 'client backend' AND pid <> pg_backend_pid() AND "
            "xact_start IS NOT NULL").fetchone()
    count = 0 if ended is None else int(str(ended[0]))
    return f"{count} sessions with a transaction still open ended on {old.address}"


def reinstate(system: str, conf: DrConf, old: Member, new: Member,
              config: MedarkConfig | None = None) -> str:
    """Make `old` (stopped, fenced or crashed) a standby streaming from `new`; with
    `config`, a repository feed's standby replaying the repository instead."""
    from medark.sources.postgres.reinstate import reinstate_as_standby

    # a repository feed has no slot of its own: a failback streams through the default
    slot = conf.slot_name(system) or f"medark_dr_{re.sub(r'[^a-z0-9_]', '_', system)}"[:63]
    assert old.datadir is not None
    _drop_own_slot(old, slot)
    if config is not None and conf.feed == "repository":
        from medark.service.dr.repository_feed import reinstate_from_repository

        assert conf.repository is not None
        return reinstate_from_repository(config, conf.repository, old, new,
                                         REINSTATE_TIMEOUT)
    done = reinstate_as_standby(old.datadir, new.dsn, slot, REINSTATE_TIMEOUT, old.bin_dir)
    return f"{old.address} streams from {new.address} through slot {slot} ({done.how()})"


def _drop_own_slot(old: Member, slot: str) -> None:
    """The slot the standby used on the old primary would keep WAL there for ever once it
    is a standby itself; drop it while the server still answers."""
    import psycopg

    from medark.sources.postgres.server import Dsn

    try:
        with Dsn.parse(old.dsn).connect() as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM "
                         "pg_replication_slots WHERE slot_name = %s AND NOT active", (slot,))
    except (MedarkError, psycopg.Error):
        pass  # down already (pg_rewind copies no slots), or kept: dr status shows it
