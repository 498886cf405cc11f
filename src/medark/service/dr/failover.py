"""`dr failover` (the primary is gone: promote the standby now) and `dr failback` (back
to the configured primary once it is repaired).

A failover cannot wait for the primary, so it decides from what it can still learn:
the standby's own position, and the old primary's WAL when its data directory is still
readable on this host (pg_waldump gives where its WAL ends and which commits the standby
never got). That is the data-loss window it reports, always, and what it holds against
`max_lag_bytes` / `max_lag` unless `--force`. When nothing can be learned it says
"unknown" rather than 0.

Fencing is best effort plus the hook: a reachable old primary is made read-only; one
whose data directory is here is stopped and gets a `standby.signal`, so a restart
brings it back read-only instead of as a second primary; the hook runs and must
succeed (exit 28 otherwise, before promotion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.dr import DrConf
from medark.config.plans import MedarkConfig
from medark.errors import (
    DatabaseUnavailable,
    LagOverLimit,
    MedarkError,
    StandbyNotReady,
    SwitchRefused,
)
from medark.service.dr import apps
from medark.service.dr.action import ActionState, DrOutcome, run_action
from medark.service.dr.clients import ClientSwitcher
from medark.service.dr.nodes import Member, members, one_line
from medark.service.dr.pair import Pair
from medark.service.dr.steps import Steps
from medark.service.dr.switchover import (
    PROMOTE_TIMEOUT,
    Switch,
    preflight,
    reinstate,
    supported,
)
from medark.util import clock

if TYPE_CHECKING:
    from medark.service.dr.repository_feed import ArchivedPoint
    from medark.sources.postgres.replication import NodeState

CATCH_UP_TIMEOUT = 60.0
"""A failover waits this long for the standby to replay what it already received."""
ARCHIVE_CATCH_UP = 300.0
"""A repository-fed standby replays one segment every few seconds (it asks the
repository every wal_retrieve_retry_interval): this long for the rest of the archive."""
STREAM_GRACE = 5.0
"""A failover waits this long for a standby still streaming from the fenced old primary
to receive the rest."""
FAILBACK_CATCH_UP = 1800.0
"""A failback waits this long for the reinstated node to catch up before switching."""
FAILOVER_HOLD = 2.0
"""Seconds a failover waits for the pooler's PAUSE (connections to a dead primary may
never finish) before it goes on without holding the clients."""
PROBE_CONNECT = 3
"""Seconds to wait for a node when the primary may be gone."""


def failover(config: MedarkConfig, system: str, catalog: Catalog, *, force: bool = False,
             requested_by: str | None = None,
             on_step: Callable[[DrStep], None] | None = None) -> DrOutcome:
    from medark.service.dr.status import selected

    conf = selected(config, system)[system]
    if conf.primary.kind == "mariadb" and conf.feed == "stream":
        from medark.service.dr import mariadb

        return mariadb.failover(system, conf, catalog, force=force,
                                requested_by=requested_by, on_step=on_step)
    if conf.primary.kind == "mariadb" and conf.feed == "repository":
        from medark.service.dr import mariadb_repository

        return mariadb_repository.failover(config, system, conf, catalog, force=force,
                                           requested_by=requested_by, on_step=on_step)
    supported(system, conf, "failover", repository_feed=True)
    return run_action(
        catalog, system, "failover",
        lambda steps, state: Failover(system, conf, steps, state, force, config).run(),
        requested_by=requested_by, on_step=on_step)


def failback(config: MedarkConfig, system: str, catalog: Catalog, *,
             requested_by: str | None = None,
             on_step: Callable[[DrStep], None] | None = None) -> DrOutcome:
    from medark.service.dr.status import selected

    conf = selected(config, system)[system]
    if conf.primary.kind == "mariadb" and conf.feed == "stream":
        from medark.service.dr import mariadb

        return mariadb.failback(system, conf, catalog, requested_by=requested_by,
                                on_step=on_step)
    if conf.primary.kind == "mariadb" and conf.feed == "repository":
        from medark.service.dr import mariadb_repository_switch

        return mariadb_repository_switch.failback(config, system, conf, catalog,
                                                  requested_by=requested_by, on_step=on_step)
    supported(system, conf, "failback", repository_feed=True)
    return run_action(catalog, system, "failback",
                      lambda steps, state: _failback(config, system, conf, steps, state),
                      requested_by=requested_by, on_step=on_step)


@dataclass
class Failover:
    system: str
    conf: DrConf
    steps: Steps
    state: ActionState
    force: bool = False
    config: MedarkConfig | None = None
    """For a repository feed: where the repository is."""
    old_end: int | None = None
    """The fenced old primary's final flush position, when it still answered."""
    archived: ArchivedPoint | None = None
    """For a repository feed: the newest WAL the repository holds."""

    def run(self) -> None:
        with ClientSwitcher(self.system, self.conf.client_switch) as clients:
            with self.steps.step("preflight") as note:
                old, new = self._roles()
                said = clients.preflight_noted()
                note.detail = (f"promote {new.address} (site {new.node.site}); old primary "
                               f"{old.address}: {old.role or 'unreachable'}; {said}")
            held_at = clock.monotonic()
            with self.steps.step("hold clients") as note:
                note.detail = clients.hold_if_possible(patience=FAILOVER_HOLD)
            self._fence(old)
            with self.steps.step("data-loss window") as note:
                window = self._window(old, new)
                self.state.data_loss = window
                note.detail = window["summary"]
                self._limits(window)
            with self.steps.step("promote standby") as note:
                from medark.sources.postgres.replication import promote

                after = promote(new.dsn, PROMOTE_TIMEOUT)
                note.detail = (f"{new.address} is the primary on timeline {after.timeline}"
                               + _no_inherited_sync(self.conf, new))
            self.state.new_primary = new.address
            switch = Switch(self.system, self.conf, self.steps, self.state)
            switch.redirect(new, old, clients, held_at)
            switch.start_and_check(new)
            switch.synchronous()

    def _roles(self) -> tuple[Member, Member]:
        a, b = members(self.conf, PROBE_CONNECT)
        standbys = [m for m in (a, b) if m.role == "standby"]
        if a.role == "primary" and b.role == "primary":
            raise StandbyNotReady(f"{self.system}: both nodes are primaries; nothing to "
                                  "fail over to (resolve the split by hand)")
        if len(standbys) != 1:
            found = ", ".join(f"{m.configured} {m.address}: {m.role or m.error}"
                              for m in (a, b))
            raise StandbyNotReady(f"{self.system}: no single standby to promote ({found})")
        new = standbys[0]
        return (b if new is a else a), new

    def _fence(self, old: Member) -> None:
        from medark.sources.postgres.fencing import fence_readonly, final_flush_lsn

        with self.steps.step("fence old primary") as note:
            done: list[str] = []
            if old.role == "primary":
                fence_readonly(old.dsn)
                # every commit it acknowledged ends at or before this: read it now,
                # before a stop below ends the connection
                self.old_end = final_flush_lsn(old.dsn)
                done.append("read-only, sessions ended")
            if old.datadir is not None and old.datadir.is_dir():
                done.append(_guard(old))
            fencing = self.conf.fencing
            if fencing.type == "hook":
                done.append(apps.fencing_hook(self.system, str(fencing.command),
                                              *old.host_port))
            if not done:
                done.append("unreachable, presumed down (no fencing hook configured: a "
                            "primary cut off by the network would still take writes)")
            note.detail = f"{old.address}: " + "; ".join(done)

    def _window(self, old: Member, new: Member) -> dict[str, Any]:
        """What the standby has, against what the old primary is known to have written."""
        from medark.sources.postgres.replication import node_state, wait_replayed
        from medark.sources.postgres.wal import format_lsn

        before = node_state(new.dsn)
        received = max(before.receive_lsn or 0, before.replay_lsn or 0)
        primary_end = self.old_end
        window: dict[str, Any] = {}
        try:
            if self.conf.feed == "repository":
                replayed = self._replay_archive(new, window)
            else:
                replayed = wait_replayed(new.dsn, received, CATCH_UP_TIMEOUT)
            if primary_end is not None and (replayed.replay_lsn or 0) < primary_end \
                    and self.conf.feed == "stream":
                # still streaming from the fenced primary: a moment to get the rest
                replayed = wait_replayed(new.dsn, primary_end, STREAM_GRACE)
        except StandbyNotReady:
            replayed = node_state(new.dsn)
        standby_end = replayed.replay_lsn or 0
        window.update({
            "standby_replayed_lsn": format_lsn(standby_end),
            "last_replayed_commit_at": _iso(replayed.last_replay_at),
            "primary_end_lsn": None, "bytes": None, "commits": None,
            "first_lost_commit_at": None, "primary_last_commit_at": None, "seconds": None})
        tail = None
        if old.datadir is not None and old.datadir.is_dir():  # stopped by now, or dead
            try:
                from medark.sources.postgres.waldump import wal_tail

                tail = wal_tail(old.datadir, standby_end, old.bin_dir)
                primary_end = tail.end_lsn
            except MedarkError as exc:
                window["basis_error"] = one_line(exc)
        if primary_end is None and self.archived is not None:
            window["basis"] = "the repository: the old primary cannot be read"
            window["summary"] = (
                f"the standby replayed {format_lsn(standby_end)}, the repository's newest "
                f"WAL ends at {format_lsn(self.archived.end_lsn)} (archived "
                f"{window['archived_at']}); what the old primary wrote after it is lost, "
                "how much is unknown")
            return window
        if primary_end is None:
            window["basis"] = "unknown: the old primary cannot be read"
            window["summary"] = (f"unknown beyond the standby's {format_lsn(standby_end)} "
                                 f"(last replayed commit {window['last_replayed_commit_at']})")
            return window
        lost = max(0, primary_end - standby_end)
        window.update(primary_end_lsn=format_lsn(primary_end), bytes=lost)
        if tail is not None:
            window["basis"] = "the old primary's WAL (pg_waldump)"
            window.update(commits=tail.commits,
                          first_lost_commit_at=_iso(tail.first_commit_at),
                          primary_last_commit_at=_iso(tail.last_commit_at))
            if tail.last_commit_at and replayed.last_replay_at and tail.commits:
                window["seconds"] = max(0.0, (tail.last_commit_at - replayed.last_replay_at)
                                        .total_seconds())
        else:
            window["basis"] = "the fenced old primary's flush position"
        commits = "" if window["commits"] is None else f", {window['commits']} commits"
        span = "" if not window["first_lost_commit_at"] else (
            f" committed {window['first_lost_commit_at']} .. {window['primary_last_commit_at']}")
        window["summary"] = (f"{lost} bytes{commits}{span} not on the standby "
                             f"(standby {format_lsn(standby_end)}, old primary "
                             f"{format_lsn(primary_end)}; {window['basis']})")
        return window

    def _replay_archive(self, new: Member, window: dict[str, Any]) -> NodeState:
        """A repository-fed standby: replay everything the repository holds first."""
        from medark.service.dr.repository_feed import (
            newest_archived_lsn,
            wait_replayed_archive,
        )
        from medark.sources.postgres.replication import node_state
        from medark.sources.postgres.wal import format_lsn

        assert self.config is not None and self.conf.repository is not None
        try:
            self.archived = newest_archived_lsn(self.config, self.conf.repository)
        except MedarkError as exc:
            window["basis_error"] = f"repository {self.conf.repository}: {one_line(exc)}"
            return node_state(new.dsn)
        if self.archived is None:
            return node_state(new.dsn)
        window.update(archive_end_lsn=format_lsn(self.archived.end_lsn),
                      archived_at=_iso(self.archived.archived_at))
        return wait_replayed_archive(new.dsn, self.archived.end_lsn, ARCHIVE_CATCH_UP)

    def _limits(self, window: dict[str, Any]) -> None:
        over = []
        if window["bytes"] is not None and window["bytes"] > self.conf.max_lag_bytes:
            over.append(f"{window['bytes']} bytes > max_lag_bytes {self.conf.max_lag_bytes}")
        limit = self.conf.max_lag.total_seconds()
        if window["seconds"] is not None and window["seconds"] > limit:
            over.append(f"{window['seconds']:.1f} s > max_lag {limit:g} s")
        if over and not self.force:
            raise LagOverLimit(f"{self.system}: failover refused, it would lose "
                               f"{'; '.join(over)} ({window['summary']}); --force takes "
                               "the loss")


def _no_inherited_sync(conf: DrConf, new: Member) -> str:
    """A standby copied from a synchronous primary carries its synchronous_standby_names;
    promoted with no standby behind it, every commit would wait for ever. Unless this
    system is synchronous (then `Switch.synchronous` decides), clear it."""
    from medark.sources.postgres.server import Dsn
    from medark.sources.postgres.sync import set_synchronous

    if conf.synchronous:
        return ""
    with Dsn.parse(new.dsn).connect() as conn:
        row = conn.execute("SELECT current_setting('synchronous_standby_names')").fetchone()
    if row is None or not row[0]:
        return ""
    set_synchronous(new.dsn, None)
    return f"; inherited synchronous_standby_names {row[0]!r} cleared (no standby yet)"


def _guard(old: Member) -> str:
    """Stop a local old primary (if it runs) and leave a standby.signal: restarted, it
    comes up in recovery, read-only, until `dr failback` reinstates it."""
    from medark.service.dr.servers import stop_server
    from medark.sources.postgres import control
    from medark.util.files import atomic_write

    assert old.datadir is not None
    said = []
    if control.is_running(old.datadir, old.bin_dir):
        said.append(stop_server(old))
    atomic_write(old.datadir / "standby.signal", b"", owner=control.owner(old.datadir))
    said.append("standby.signal placed (a restart comes up read-only)")
    return ", ".join(said)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else clock.format_time(value)


def _failback(config: MedarkConfig, system: str, conf: DrConf, steps: Steps,
              state: ActionState) -> None:
    """Reinstate the configured primary as a standby of the current one (unless it is one
    already, streaming or, for a repository feed, replaying), wait until it has caught
    up, then switch over to it."""
    with ClientSwitcher(system, conf.client_switch) as clients:
        with steps.step("find roles") as note:
            home, away = members(conf)
            if away.role != "primary":
                if home.role == "primary" and away.role == "standby":
                    note.detail = (f"{home.address} is the primary already: nothing to "
                                   "fail back")
                    return
                raise DatabaseUnavailable(
                    f"{system}: the configured standby {away.address} is not the primary "
                    f"({away.role or away.error}): nothing to fail back from")
            if home.role == "primary" and _writable(home):
                raise SwitchRefused(f"{system}: both {home.address} and {away.address} take "
                                    "writes; resolve the split by hand before a failback")
            note.detail = f"primary {away.address}; {home.address}: {home.role or home.error}"
        if home.role != "standby" or (conf.feed == "stream" and not _streams_from(home)):
            if home.datadir is None:
                raise StandbyNotReady(f"{system}: {home.address} is not a standby and its "
                                      "control is not a data directory: rebuild it by hand")
            with steps.step("reinstate configured primary") as note:
                note.detail = reinstate(system, conf, home, away)
        with steps.step("wait for catch-up") as note:
            note.detail = _catch_up(system, conf)
        pair = preflight(system, conf, steps, clients)
        if pair.standby.configured != "primary":
            raise StandbyNotReady(f"{system}: after reinstating, {pair.standby.address} is "
                                  "the standby, not the configured primary")
        Switch(system, conf, steps, state, config).switch(Pair(pair.primary, pair.standby),
                                                          clients)


def _writable(m: Member) -> bool:
    from medark.sources.postgres.server import Dsn

    try:
        with Dsn.parse(m.dsn).connect() as conn:
            row = conn.execute("SELECT current_setting('default_transaction_read_only')"
                               ).fetchone()
    except MedarkError:
        return False
    return row is not None and row[0] == "off"


def _streams_from(m: Member) -> bool:
    return m.state is not None and m.state.receiver_status == "streaming"


def _catch_up(system: str, conf: DrConf) -> str:
    from medark.service.dr.pair import find_pair
    from medark.sources.postgres.replication import replication_lag

    deadline = clock.monotonic() + FAILBACK_CATCH_UP
    while True:
        pair = find_pair(system, conf)
        lag = replication_lag(pair.primary.dsn, pair.standby.dsn)
        if lag.bytes <= conf.max_lag_bytes:
            return f"{pair.standby.address} is {lag.bytes} bytes behind"
        if clock.monotonic() >= deadline:
            raise LagOverLimit(f"{system}: {pair.standby.address} is still {lag.bytes} bytes "
                               f"behind after {FAILBACK_CATCH_UP:g} s")
        clock.sleep(1.0)
