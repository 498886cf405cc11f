"""`dr switchover`, `dr failover` and `dr failback` of a MariaDB system whose standby
replicates by GTID, with the steps, order and guarantees of the PostgreSQL ones
(switchover.py, failover.py).

The roles are found, not read from the file (mariadb_nodes.py): the node replicating is
the standby, the writable one without replication the primary.

A switch-over: preflight (one primary, one standby whose IO and SQL threads run and
follow it, lag within `max_lag`, the application healthy); stop the services at the
primary's site; hold the clients (HAProxy and hooks hold nothing); fence the primary
read-only and end its sessions; wait until the standby has applied the fenced primary's
@@gtid_binlog_pos (every acknowledged commit is at or before it); a `stop` or `hook`
fence on top; promote. A failure before promotion rolls back (fence lifted, clients
released, services started again); after it, the old primary stays read-only until it
replicates. Then redirect the clients, start the DR site's services, wait for health,
and make the old primary a GTID replica of the new one.

Limits. MariaDB counts replication lag in transactions (GTID sequence numbers) and
seconds, never bytes: `max_lag` (seconds, the standby's Seconds_Behind_Master) applies,
`max_lag_bytes` is not used. A switch-over refuses a standby over `max_lag`; transactions
behind are fine, the switch waits for them (at most `replay_timeout`). A failover refuses,
without --force, a standby over `max_lag` and any loss it can count: the old primary still
answers and holds transactions the standby has not received after CATCH_UP_TIMEOUT.
When the old primary cannot be read the window is "unknown" beyond the standby's
position (never 0), and nothing holds the failover back.

A failback: find roles (the configured standby must be the primary; a configured primary
that is writable too is a split brain, refused with exit 30; an unreachable one is 26);
unless the configured primary already streams from the current one, reinstate it (GTID,
as below: errant transactions are refused with exit 30 and named, to be rebuilt from a
backup or the new primary); wait until it has applied the primary's @@gtid_binlog_pos as
read then (0 transactions behind it; exit 27 after FAILBACK_CATCH_UP); then the
switch-over above, which must pick it as the standby.

`synchronous = true`: after a switch (once the old primary is reinstated) and a failover,
mariadb_sync.enforce makes the new primary semi-synchronous, or reports why not. A node
being reinstated gets semi-sync's master side off first (a replica with it on waits the
timeout on every transaction it applies) and, synchronous, its replica side on.

Replication account: the reinstated old primary replicates as the new primary's DSN user
with that node's password_file (the DR account, which holds REPLICATION SLAVE through
its grants); MariaDB keeps that password in the old primary's master.info.

Fencing: `readonly` is always applied; `stop` stops the server through its control (a
`datadir` node by SHUTDOWN; a stopped old primary is not reinstated: start it read-only
and point it at the new primary by hand); `hook` must exit 0. An unreachable old primary
that restarts comes up writable unless its configuration sets read_only: configure a
fencing hook, and keep the clients' entry point away from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.dr import DrConf
from medark.errors import (
    DatabaseUnavailable,
    HealthCheckFailed,
    LagOverLimit,
    MedarkError,
    StandbyNotReady,
    SwitchRefused,
    UsageError,
)
from medark.service.dr import apps
from medark.service.dr.action import ActionState, DrOutcome, run_action
from medark.service.dr.clients import ClientSwitcher
from medark.service.dr.mariadb_nodes import (
    Maria,
    env,
    find_pair,
    follows,
    members,
    run_health,
    stop,
    wait_healthy,
)
from medark.service.dr.nodes import one_line
from medark.service.dr.pair import checks_for
from medark.service.dr.rollback import Undo
from medark.service.dr.steps import Steps
from medark.service.dr.switchover import (
    PREFLIGHT_CHECK_SECONDS,
    PROMOTE_TIMEOUT,
    REINSTATE_TIMEOUT,
    REPLAY_TIMEOUT,
    Switch,
)
from medark.sources.mysql.client import Conn
from medark.sources.mysql.replication import (
    FENCED,
    PRIMARY,
    STANDBY,
    behind,
    describe_threads,
    merged,
    missing,
    read_state,
)
from medark.util import clock

CATCH_UP_TIMEOUT = 30.0
"""A failover waits this long for the standby to receive what a reachable old primary has."""
FAILBACK_CATCH_UP = 1800.0
"""A failback waits this long for the reinstated configured primary to catch up."""


def switchover(system: str, conf: DrConf, catalog: Catalog, *,
               requested_by: str | None = None,
               on_step: Callable[[DrStep], None] | None = None,
               replay_timeout: float = REPLAY_TIMEOUT) -> DrOutcome:
    return run_action(
        catalog, system, "switchover",
        lambda steps, state: MariaSwitch(system, conf, steps, state, replay_timeout).run(),
        requested_by=requested_by, on_step=on_step)


def failover(system: str, conf: DrConf, catalog: Catalog, *, force: bool = False,
             requested_by: str | None = None,
             on_step: Callable[[DrStep], None] | None = None) -> DrOutcome:
    return run_action(
        catalog, system, "failover",
        lambda steps, state: MariaFailover(system, conf, steps, state, force).run(),
        requested_by=requested_by, on_step=on_step)


def failback(system: str, conf: DrConf, catalog: Catalog, *,
             requested_by: str | None = None,
             on_step: Callable[[DrStep], None] | None = None,
             catch_up_timeout: float = FAILBACK_CATCH_UP) -> DrOutcome:
    return run_action(
        catalog, system, "failback",
        lambda steps, state: MariaFailback(system, conf, steps, state,
                                           catch_up_timeout).run(),
        requested_by=requested_by, on_step=on_step)


@dataclass
class MariaSwitch:
    system: str
    conf: DrConf
    steps: Steps
    state: ActionState
    replay_timeout: float = REPLAY_TIMEOUT
    target: str | None = None
    """A failback's: the configured node ("primary") the standby found must be."""

    def run(self) -> None:
        with ClientSwitcher(self.system, self.conf.client_switch) as clients:
            old, new = self.preflight(clients)
            undo = _undo(self.system, old, clients)
            try:
                services = self.conf.services.get(old.node.site, [])
                if services:
                    with self.steps.step(f"stop services at {old.node.site}") as note:
                        undo.services = services
                        stopped = apps.stop_all(services, env(self.system, new))
                        note.detail = "stopped " + ", ".join(stopped)
                with self.steps.step("hold clients") as note:
                    held_at = clock.monotonic()
                    note.detail = clients.hold()
                self._fence_and_catch_up(old, new, undo)
                with self.steps.step("promote standby") as note:
                    note.detail = self.promote(new)
            except MedarkError:
                with self.steps.step("roll back") as note:
                    note.detail = undo.run()
                self.state.rolled_back = True
                raise
            self.state.new_primary = new.address
            finish(self.system, self.conf, self.steps, self.state, new, old, clients, held_at)
            self._reinstate(old, new)
            synchronous(self.system, self.conf, self.steps)

    def preflight(self, clients: ClientSwitcher) -> tuple[Maria, Maria]:
        from medark.sources.mysql.replication import replication_lag

        with self.steps.step("preflight") as note:
            old, new = find_pair(self.system, self.conf)
            if self.target is not None and new.configured != self.target:
                raise StandbyNotReady(f"{self.system}: {new.address} is the standby, not the "
                                      f"configured {self.target}")
            if not new.st.streaming:
                raise StandbyNotReady(f"{self.system}: the standby {new.address} is not "
                                      f"replicating (threads {describe_threads(new.st)})")
            if not follows(new, old):
                raise StandbyNotReady(
                    f"{self.system}: the standby {new.address} replicates from "
                    f"{new.st.master_host}:{new.st.master_port}, not from the primary "
                    f"{old.address}")
            lag = replication_lag(old.node.dsn, new.node.dsn, old.password, new.password)
            limit = self.conf.max_lag.total_seconds()
            if lag.seconds is not None and lag.seconds > limit:
                raise LagOverLimit(
                    f"{self.system}: the standby is behind ({lag.transactions} transactions, "
                    f"{lag.seconds:.0f} s > max_lag {limit:g} s): the clients would be "
                    f"held while it catches up; switch when medark dr status {self.system} "
                    "shows it within its limits")
            self.require_healthy(old)
            note.detail = (f"{old.address} (site {old.node.site}) -> {new.address} (site "
                           f"{new.node.site}), GTID {old.st.gtid_binlog_pos or 'none'}, "
                           f"{_count(lag.transactions)} behind; {clients.preflight()}")
        return old, new

    def promote(self, new: Maria) -> str:
        return _promote(new, force=False)

    def require_healthy(self, old: Maria) -> None:
        """The preflight's health checks on the primary (HealthCheckFailed, exit 29)."""
        for check in checks_for(self.conf, old.node.site):
            result = run_health(check, old, PREFLIGHT_CHECK_SECONDS)
            if not result.ok:
                raise HealthCheckFailed(
                    f"{self.system}: health check {result.name} fails before the switch "
                    f"({result.detail}); a planned switch-over starts from a healthy "
                    f"application (if the primary site is down: medark dr failover "
                    f"{self.system})")

    def _fence_and_catch_up(self, old: Maria, new: Maria, undo: Undo) -> None:
        from medark.sources.mysql.fencing import fence_readonly, final_gtid
        from medark.sources.mysql.replication import wait_replayed

        with self.steps.step("fence primary read-only") as note:
            undo.readonly = True
            ended = fence_readonly(old.node.dsn, old.password)
            note.detail = f"{old.address}: writes refused, {ended} sessions ended"
        with self.steps.step("wait for standby") as note:
            final = final_gtid(old.node.dsn, old.password)
            done = wait_replayed(new.node.dsn, final, self.replay_timeout, new.password)
            note.detail = (f"primary wrote {final or 'nothing'}, standby applied "
                           f"{done.gtid_slave_pos or 'nothing'}")
        fence_on_top(self.system, self.conf, self.steps, old, undo)

    def _reinstate(self, old: Maria, new: Maria) -> None:
        """A failure here does not undo the switch, it is reported (exit 26)."""
        if self.conf.fencing.type == "stop":
            self.steps.skip("reinstate old primary", "stopped as its fence: start it "
                            f"read-only and make it a replica of {new.address} by hand")
            return
        try:
            with self.steps.step("reinstate old primary") as note:
                note.detail = reinstate(old, new, self.conf.synchronous)
        except MedarkError as exc:
            self.state.afterwards = StandbyNotReady(
                f"{self.system}: switched to {new.address}, but the old primary "
                f"{old.address} is not its replica yet: {one_line(exc)}")


def reinstate(old: Maria, new: Maria, synchronous: bool) -> str:
    """Make `old` a GTID replica of `new`, replicating as the new primary's DSN user
    (SwitchRefused, exit 30, naming its errant GTIDs when it has any); its semi-sync
    master side off first (a replica with it on has its SQL thread wait the timeout for
    acknowledgements), its replica side on when `synchronous`."""
    from medark.service.dr.mariadb_sync import as_replica
    from medark.sources.mysql.reinstate import ReplicationSource, reinstate_as_standby

    user = Conn.parse(new.node.dsn).user
    if user is None:
        raise UsageError(f"the DSN of {new.address} names no user to replicate as")
    as_replica(old, synchronous)
    source = ReplicationSource(*new.host_port, user, new.password,
                               check_dsn=new.node.dsn, check_password=new.password)
    after = reinstate_as_standby(old.node.dsn, source, old.password, REINSTATE_TIMEOUT)
    return f"{old.address} replicates from {new.address} as {user} (GTID {after.gtid_slave_pos})"


def synchronous(system: str, conf: DrConf, steps: Steps) -> None:
    """A synchronous system after a switch: the new primary waits for its standby's
    acknowledgement from now on (or degrades, or blocks, as `on_sync_loss` says)."""
    if not conf.synchronous:
        return
    from medark.service.dr.mariadb_sync import enforce

    with steps.step("synchronous replication") as note:
        found = enforce(system, conf)
        note.detail = f"{found.state}: {found.detail}" + (
            f" ({found.problem})" if found.problem else "")


def fence_on_top(system: str, conf: DrConf, steps: Steps, old: Maria,
                 undo: Undo | None = None) -> None:
    """A configured `stop` or `hook` fence, after read-only (FencingFailed, exit 28)."""
    if conf.fencing.type == "stop":
        with steps.step("fence primary: stop") as note:
            if undo is not None:
                undo.stopped = True
            note.detail = stop(old)
    elif conf.fencing.type == "hook":
        with steps.step("fence primary: hook") as note:
            note.detail = apps.fencing_hook(system, str(conf.fencing.command),
                                            *old.host_port)


def _undo(system: str, old: Maria, clients: ClientSwitcher) -> Undo:
    """The rollback of a MariaDB switch before promotion."""
    from medark.service.dr.servers import start_server
    from medark.sources.mysql.fencing import unfence

    def restart() -> str:
        if old.node.control.datadir is not None:
            raise MedarkError(f"{system}: {old.address} was stopped as its fence and has "
                              "no start command: start it by hand")
        return start_server(old.member())

    return Undo(old.address, clients, env(system, old),
                lambda: unfence(old.node.dsn, old.password), restart)


def _promote(new: Maria, force: bool) -> str:
    from medark.sources.mysql.replication import promote

    try:
        after = promote(new.node.dsn, new.password, PROMOTE_TIMEOUT, allow_unapplied=force)
    except MedarkError as exc:
        try:
            after = read_state(new.conn)
        except MedarkError:
            raise exc from None
        if after.role != PRIMARY:
            raise
        # promoted after all (only the write probe failed): carry on
    return f"{new.address} is the primary at GTID {after.gtid_binlog_pos or 'none'}"


def finish(system: str, conf: DrConf, steps: Steps, state: ActionState, new: Maria,
           old: Maria, clients: ClientSwitcher, held_at: float) -> None:
    """After promotion: redirect and release the clients, start the new site's services,
    wait until healthy."""
    Switch(system, conf, steps, state).redirect(new.member(), old.member(), clients, held_at)
    services = conf.services.get(new.node.site, [])
    if services:
        with steps.step(f"start services at {new.node.site}") as note:
            note.detail = "started " + ", ".join(apps.start_all(services, env(system, new)))
    checks = checks_for(conf, new.node.site)
    if checks:
        with steps.step("health checks") as note:
            results = wait_healthy(checks, new)
            failed = [r for r in results if not r.ok]
            if failed:
                raise HealthCheckFailed(
                    f"{system}: switched to {new.address}, but health check "
                    f"{failed[0].name} did not pass within its timeout ({failed[0].detail})")
            note.detail = ", ".join(f"{r.name} ok" for r in results)


@dataclass
class MariaFailover:
    system: str
    conf: DrConf
    steps: Steps
    state: ActionState
    force: bool = False

    def run(self) -> None:
        with ClientSwitcher(self.system, self.conf.client_switch) as clients:
            with self.steps.step("preflight") as note:
                old, new = self._roles()
                said = clients.preflight_noted()
                note.detail = (f"promote {new.address} ({self.describe_standby(new)}); old "
                               f"primary {old.address}: {old.role or 'unreachable'}; {said}")
            held_at = clock.monotonic()
            with self.steps.step("hold clients") as note:
                note.detail = clients.hold_if_possible()
            self._fence(old)
            self.catch_up(old, new)
            with self.steps.step("data-loss window") as note:
                window = self._window(old, new)
                self.state.data_loss = window
                note.detail = window["summary"]
                self._limits(window, new)
            with self.steps.step("promote standby") as note:
                note.detail = self.promote(new)
            self.state.new_primary = new.address
            finish(self.system, self.conf, self.steps, self.state, new, old, clients, held_at)
            synchronous(self.system, self.conf, self.steps)

    def describe_standby(self, new: Maria) -> str:
        return f"site {new.node.site}, threads {describe_threads(new.st)}"

    def catch_up(self, old: Maria, new: Maria) -> None:
        """Before the data-loss window is read: a replica's relay log is applied by the
        promotion itself."""

    def promote(self, new: Maria) -> str:
        return _promote(new, force=self.force)

    def _roles(self) -> tuple[Maria, Maria]:
        a, b = members(self.conf)
        if a.role == PRIMARY and b.role == PRIMARY:
            raise StandbyNotReady(f"{self.system}: both nodes are primaries; nothing to "
                                  "fail over to (resolve the split by hand)")
        standbys = [m for m in (a, b) if m.role == STANDBY]
        if len(standbys) != 1:
            raise StandbyNotReady(f"{self.system}: no single standby to promote "
                                  f"({a.describe()}, {b.describe()})")
        new = standbys[0]
        return (b if new is a else a), new

    def _fence(self, old: Maria) -> None:
        from medark.sources.mysql.fencing import fence_readonly

        with self.steps.step("fence old primary") as note:
            if old.role == PRIMARY:
                note.detail = (f"{old.address}: read-only, "
                               f"{fence_readonly(old.node.dsn, old.password)} sessions ended")
            elif old.role == FENCED:
                note.detail = f"{old.address}: read-only already"
            else:
                note.detail = (f"{old.address}: unreachable, presumed down" + (
                    "" if self.conf.fencing.type == "hook" else " (no fencing hook: a "
                    "primary cut off by the network would still take writes, and one that "
                    "restarts is writable unless its configuration sets read_only)"))
        if old.role is not None or self.conf.fencing.type == "hook":
            fence_on_top(self.system, self.conf, self.steps, old)

    def _window(self, old: Maria, new: Maria) -> dict[str, Any]:
        """What the promoted standby will have (all it applied, plus what it received
        when its SQL thread runs: promotion applies the relay log) against what the old
        primary wrote to its binlog, when it can still be read."""
        from medark.sources.mysql.fencing import final_gtid
        from medark.sources.mysql.replication import wait_replayed

        primary: str | None = None
        if old.role is not None:
            try:
                primary = final_gtid(old.node.dsn, old.password)
                if new.st.slave_io_running != "No":  # stopped: nothing more will come
                    wait_replayed(new.node.dsn, primary, CATCH_UP_TIMEOUT, new.password)
            except MedarkError:
                pass  # unreadable after all, or the standby could not catch up
        s = read_state(new.conn)
        kept = merged(s.gtid_slave_pos, s.gtid_io_pos) if s.slave_sql_running == "Yes" \
            else s.gtid_slave_pos
        window: dict[str, Any] = {
            "standby_gtid": kept, "standby_applied_gtid": s.gtid_slave_pos,
            "standby_seconds_behind": s.seconds_behind_master, "primary_gtid": primary,
            "transactions": None, "domains": None}
        if primary is None:
            window["basis"] = "unknown: the old primary cannot be read"
            window["summary"] = (f"unknown beyond the standby's GTID {kept or 'none'} (the "
                                 "old primary cannot be read: whatever it committed after "
                                 "that is lost)")
            return window
        gaps = behind(primary, kept)
        lost = sum(gaps.values())
        window.update(transactions=lost, domains={str(d): n for d, n in gaps.items()},
                      basis="the fenced old primary's @@gtid_binlog_pos")
        window["summary"] = (f"{_count(lost)} not on the standby ({missing(primary, kept)}; "
                             f"standby {kept or 'none'}, old primary {primary})" if lost else
                             f"none: the standby has the old primary's {primary or 'nothing'}")
        return window

    def _limits(self, window: dict[str, Any], new: Maria) -> None:
        over = []
        if window["transactions"]:
            over.append(f"{_count(window['transactions'])} the old primary holds")
        limit, seconds = self.conf.max_lag.total_seconds(), new.st.seconds_behind_master
        if seconds is not None and seconds > limit:
            over.append(f"{seconds} s > max_lag {limit:g} s")
        if over and not self.force:
            raise LagOverLimit(f"{self.system}: failover refused, it would lose "
                               f"{'; '.join(over)} ({window['summary']}); --force takes "
                               "the loss")


def _count(n: int) -> str:
    return f"{n} transaction{'' if n == 1 else 's'}"


@dataclass
class MariaFailback:
    """Back to the configured primary: reinstate it as a GTID replica of the current
    primary unless it streams from it already, wait until it has applied what the primary
    had written when the wait began, then a switch-over to it (MariaSwitch)."""

    system: str
    conf: DrConf
    steps: Steps
    state: ActionState
    catch_up_timeout: float = FAILBACK_CATCH_UP
    AT_HOME: ClassVar[tuple[str, ...]] = (STANDBY,)
    """The configured standby's roles once the system is back as configured."""

    def run(self) -> None:
        with self.steps.step("find roles") as note:
            home, away = members(self.conf)
            if away.role != PRIMARY:
                if home.role == PRIMARY and away.role in self.AT_HOME:
                    note.detail = (f"{home.address} is the primary already: nothing to "
                                   "fail back")
                    return
                raise DatabaseUnavailable(
                    f"{self.system}: the configured standby {away.address} is not the "
                    f"primary ({away.role or away.error}): nothing to fail back from")
            if home.role == PRIMARY or (home.state is not None and not home.st.read_only):
                raise SwitchRefused(
                    f"{self.system}: both {home.address} and {away.address} take writes "
                    "(split brain); resolve it by hand before a failback")
            if home.role is None:
                raise StandbyNotReady(
                    f"{self.system}: the configured primary {home.address} is unreachable "
                    f"({home.error}): start it read-only (read_only = 1 in its "
                    "configuration), then fail back")
            note.detail = f"primary {away.address}; {home.address}: {home.role}"
        if not (home.role == STANDBY and home.st.streaming and follows(home, away)):
            with self.steps.step("reinstate configured primary") as note:
                try:
                    note.detail = self.reinstate_home(home, away)
                except SwitchRefused as exc:
                    raise SwitchRefused(f"{self.system}: failback refused: {one_line(exc)}"
                                        ) from None
        with self.steps.step("wait for catch-up") as note:
            note.detail = self._catch_up(home, away)
        self.switch().run()

    def reinstate_home(self, home: Maria, away: Maria) -> str:
        return reinstate(home, away, self.conf.synchronous)

    def switch(self) -> MariaSwitch:
        """The switch-over back, which must pick the configured primary as the standby."""
        return MariaSwitch(self.system, self.conf, self.steps, self.state, target="primary")

    def _catch_up(self, home: Maria, away: Maria) -> str:
        """Until `home` has applied the primary's @@gtid_binlog_pos as read now: 0
        transactions behind that point; LagOverLimit (27) after `catch_up_timeout`."""
        from medark.sources.mysql.replication import wait_replayed

        target = read_state(away.conn).gtid_binlog_pos
        start = read_state(home.conn)
        before = sum(behind(target, start.gtid_slave_pos).values())
        try:
            done = wait_replayed(home.node.dsn, target, self.catch_up_timeout, home.password)
        except StandbyNotReady:
            now = read_state(home.conn)
            if not now.streaming:
                raise
            raise LagOverLimit(
                f"{self.system}: {home.address} is still behind after "
                f"{self.catch_up_timeout:g} s ({missing(target, now.gtid_slave_pos)}); "
                "fail back when medark dr status shows it caught up") from None
        return (f"{home.address} applied {done.gtid_slave_pos or 'nothing'}: 0 transactions "
                f"behind {away.address}'s {target or 'nothing'} ({_count(before)} to apply "
                "when the wait began)")
