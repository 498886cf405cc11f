"""`dr status` and `dr history`: what the DR pairs look like now, and what was done.

Read-only: nothing here changes a server, the pooler or the catalog. A node that cannot
be reached is a finding (reported with its one-line reason), not an error, so one dead
site never hides the other systems' state. The exit code the command gives follows
`DrStatus.verdict`: a standby that cannot take over (26) outranks a lag over its limit
(27).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medark.catalog.dr_records import DrActionRecord
from medark.catalog.store import Catalog
from medark.config.dr import DrConf, Node
from medark.config.plans import MedarkConfig
from medark.errors import (
    DatabaseUnavailable,
    HealthCheckFailed,
    LagOverLimit,
    MedarkError,
    StandbyNotReady,
    UsageError,
)
from medark.service.dr.health import HealthResult, run_check
from medark.service.dr.nodes import node_dsn, one_line
from medark.service.dr.sync import COST, SyncOutcome, enforce
from medark.util import clock

SWITCH_KINDS = ("switchover", "failover", "failback")
GRAVITY = (StandbyNotReady.exit_code, DatabaseUnavailable.exit_code,
           LagOverLimit.exit_code, HealthCheckFailed.exit_code)
"""Exit codes, gravest first: of several systems' problems the command exits with the
first of these that occurs."""


@dataclass(frozen=True)
class NodeStatus:
    """A configured node (`primary` or `standby` in the file) as found now."""

    configured: str
    site: str
    address: str
    role: str | None = None
    """primary or standby as found; None when unreachable."""
    timeline: int | None = None
    replay_paused: bool = False
    receiver_status: str | None = None
    error: str | None = None

    def public(self) -> dict[str, Any]:
        return {"configured": self.configured, "site": self.site, "address": self.address,
                "role": self.role, "reachable": self.error is None,
                "timeline": self.timeline, "replay_paused": self.replay_paused,
                "receiver_status": self.receiver_status, "error": self.error}


@dataclass
class DrStatus:
    """One system's DR state. `supported` False: only `note` says anything."""

    system: str
    kind: str
    feed: str
    supported: bool = True
    note: str = ""
    nodes: list[NodeStatus] = field(default_factory=list)
    slot: str | None = None
    slot_active: bool | None = None
    streaming: bool | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    lag_basis: str | None = None
    lag_error: str | None = None
    max_lag_bytes: int = 0
    max_lag_seconds: float = 0.0
    over_limit: list[str] = field(default_factory=list)
    would_lose_data: bool | None = None
    health: list[HealthResult] = field(default_factory=list)
    pooler: dict[str, Any] | None = None
    pooler_error: str | None = None
    sync: SyncOutcome | None = None
    """synchronous = true: whether the primary waits for the standby now."""
    last_switch: DrActionRecord | None = None
    last_drill: DrActionRecord | None = None
    primary_down: str | None = None
    """Why no primary was found (the configured one unreachable and no other)."""
    not_ready: str | None = None
    """Why the standby could not take over now (exit 26); None: it could. A paused
    replay is not one: the standby still receives, and its growing lag says the rest."""
    repository: dict[str, Any] | None = None
    """A MariaDB repository feed: the positions (dr/mariadb_repository.py)."""

    def node(self, role: str) -> NodeStatus | None:
        return next((n for n in self.nodes if n.role == role), None)

    def verdicts(self) -> list[MedarkError]:
        """What is wrong, gravest first: a standby that cannot take over (26), a primary
        that cannot be reached (20), a lag over its limit (27), a failed health check
        (29). Empty: healthy and within its limits (an unsupported system too: nothing
        was checked)."""
        found: list[MedarkError] = []
        if self.not_ready is not None:
            found.append(StandbyNotReady(f"{self.system}: {self.not_ready}"))
        if self.primary_down is not None:
            found.append(DatabaseUnavailable(f"{self.system}: {self.primary_down}"))
        if self.over_limit:
            found.append(LagOverLimit(f"{self.system}: lag {'; '.join(self.over_limit)}"))
        failed = [h for h in self.health if not h.ok]
        if failed:
            found.append(HealthCheckFailed(
                f"{self.system}: health check {failed[0].name}: {failed[0].detail}"))
        return found

    def verdict(self) -> MedarkError | None:
        """The gravest of `verdicts`, the one the command exits with."""
        found = self.verdicts()
        return found[0] if found else None

    def public(self) -> dict[str, Any]:
        verdict = self.verdict()
        return {
            "system": self.system, "kind": self.kind, "feed": self.feed,
            "supported": self.supported, "note": self.note,
            "nodes": [n.public() for n in self.nodes],
            "replication": {"slot": self.slot, "slot_active": self.slot_active,
                            "streaming": self.streaming},
            "lag": {"bytes": self.lag_bytes, "seconds": self.lag_seconds,
                    "basis": self.lag_basis, "error": self.lag_error,
                    "max_lag_bytes": self.max_lag_bytes,
                    "max_lag_seconds": self.max_lag_seconds,
                    "over_limit": self.over_limit},
            "would_lose_data": self.would_lose_data,
            "health": [h.public() for h in self.health],
            "synchronous": None if self.sync is None else {
                **self.sync.public(), "cost": _cost(self.kind)},
            "pooler": self.pooler, "pooler_error": self.pooler_error,
            "repository_feed": self.repository,
            "last_switch": self.last_switch.public() if self.last_switch else None,
            "last_drill": self.last_drill.public() if self.last_drill else None,
            "healthy": verdict is None,
            "problems": [{"code": v.code, "exit_code": v.exit_code, "message": str(v)}
                         for v in self.verdicts()],
        }


def _cost(kind: str) -> str:
    """What synchronous mode costs, in the terms of the kind of server."""
    if kind == "mariadb":
        from medark.service.dr.mariadb_sync import COST as MARIADB_COST

        return MARIADB_COST
    return COST


def selected(config: MedarkConfig, system: str | None) -> dict[str, DrConf]:
    """The [dr] systems asked for; UsageError (exit 2) for a name without a [dr] table."""
    if system is None:
        return dict(config.dr)
    if system not in config.dr:
        known = ", ".join(sorted(config.dr)) or "none"
        raise UsageError(f"no DR system {system!r} in the configuration (DR systems: {known})")
    return {system: config.dr[system]}


def dr_status(config: MedarkConfig, system: str | None = None,
              catalog: Catalog | None = None, supervise: bool = False) -> list[DrStatus]:
    """The state of every [dr] system (or `system`); the last switch and drill come from
    `catalog` when given. `supervise`: first make each synchronous system's primary wait
    for its standby, or degrade (`on_sync_loss`): the daemon's periodic look."""
    found = []
    for name, conf in selected(config, system).items():
        # a switch in progress owns the settings: supervise again after it; a drill
        # changes nothing in production, so the standby keeps being fed through it
        running = None if catalog is None else catalog.running_dr_action(name)
        apply = supervise and (running is None or running.kind == "drill")
        status = _status(name, conf, apply, config)
        if catalog is not None:
            history = catalog.dr_history(name)
            status.last_switch = next((r for r in history if r.kind in SWITCH_KINDS), None)
            status.last_drill = next((r for r in history if r.kind == "drill"), None)
        found.append(status)
    return found


def dr_history(config: MedarkConfig, catalog: Catalog, system: str | None = None,
               limit: int = 100) -> list[DrActionRecord]:
    """DR actions, newest first, of `system` or every one."""
    if system is not None:
        selected(config, system)
    return catalog.dr_history(system, limit)


def _status(name: str, conf: DrConf, supervise: bool = False,
            config: MedarkConfig | None = None) -> DrStatus:
    status = DrStatus(name, conf.primary.kind, conf.feed,
                      max_lag_bytes=conf.max_lag_bytes,
                      max_lag_seconds=conf.max_lag.total_seconds())
    if conf.primary.kind == "mariadb" and conf.feed == "stream":
        from medark.service.dr.mariadb_status import status as mariadb_status

        return mariadb_status(name, conf, supervise)
    if conf.primary.kind == "mariadb" and conf.feed == "repository":
        from medark.service.dr.mariadb_repository import status as repository_status

        return repository_status(name, conf, config, supervise)
    if conf.primary.kind != "postgres":
        status.supported = False
        status.note = f"{conf.primary.kind} DR status is not supported yet"
        return status
    from medark.sources.postgres.replication import PRIMARY, STANDBY

    if conf.synchronous:
        status.sync = enforce(name, conf, apply=supervise)
    status.slot = conf.slot_name(name)
    dsns = {"primary": conf.primary.dsn, "standby": conf.standby.dsn}
    status.nodes = [_node(role, node, dsns)
                    for role, node in (("primary", conf.primary), ("standby", conf.standby))]
    by_role = {n.role: n for n in status.nodes if n.role is not None}
    primary, standby = by_role.get(PRIMARY), by_role.get(STANDBY)
    primary_dsn = dsns[primary.configured] if primary else None
    standby_dsn = dsns[standby.configured] if standby else None
    status.not_ready = _not_ready(status.nodes, standby, conf.feed)
    if primary is None:
        down = [n for n in status.nodes if n.error is not None and n is not standby]
        status.primary_down = (f"{down[0].configured} {down[0].address} unreachable: "
                               f"{down[0].error}"
                               if down else "no node is a primary")
    if primary_dsn is not None and conf.feed == "stream":
        _replication(status, primary_dsn, standby)
    if primary_dsn is not None and standby_dsn is not None:
        _lag(status, primary_dsn, standby_dsn)
    if conf.feed == "repository" and config is not None:
        _archive(status, config, str(conf.repository), standby_dsn)
    status.would_lose_data = (standby is None or status.lag_bytes is None
                              or status.lag_bytes > 0)
    primary_site = None if primary is None else primary.site
    status.health = [run_check(check, primary_dsn) for check in conf.health
                     if check.site is None or check.site == primary_site]
    _pooler(status, conf)
    return status


def _node(configured: str, node: Node, dsns: dict[str, str]) -> NodeStatus:
    """The node as found; its DSN with password goes into `dsns[configured]`."""
    from medark.sources.postgres.replication import node_state
    from medark.sources.postgres.server import Dsn

    address = Dsn.parse(node.dsn).safe()
    try:
        dsns[configured] = node_dsn(node)
        state = node_state(dsns[configured])
    except MedarkError as exc:
        return NodeStatus(configured, node.site, address, error=one_line(exc))
    return NodeStatus(configured, node.site, address, state.role, state.timeline,
                      state.replay_paused, state.receiver_status)


def _not_ready(nodes: list[NodeStatus], standby: NodeStatus | None,
               feed: str = "stream") -> str | None:
    if standby is None:
        down = [n for n in nodes if n.error is not None]
        if (down and down[-1].configured == "standby") or len(down) == 1:
            node = down[-1]
            return f"{node.configured} {node.address} unreachable: {node.error}"
        return "no node is in recovery: there is no standby (two primaries?)"
    if feed == "repository":
        return None  # no WAL receiver: it fetches from the repository
    if standby.receiver_status not in (None, "streaming"):
        return f"the standby {standby.address} is not streaming ({standby.receiver_status})"
    if standby.receiver_status is None:
        return f"the standby {standby.address} has no WAL receiver: it is not streaming"
    return None


def _archive(status: DrStatus, config: MedarkConfig, repository: str,
             standby_dsn: str | None) -> None:
    """A repository-fed standby: the newest WAL the repository holds, and how far the
    standby's replay is behind it (all it can reach while the primary is gone)."""
    from medark.service.dr.repository_feed import newest_archived_lsn
    from medark.sources.postgres.replication import node_state
    from medark.sources.postgres.wal import format_lsn

    try:
        point = newest_archived_lsn(config, repository)
    except MedarkError as exc:
        status.note = f"repository {repository}: {one_line(exc)}"
        return
    if point is None:
        status.note = f"repository {repository}: no WAL archived yet"
        return
    said = (f"repository {repository}: newest WAL {point.wal_name} ends at "
            f"{format_lsn(point.end_lsn)}, archived {clock.format_time(point.archived_at)}")
    if standby_dsn is not None:
        try:
            replay = node_state(standby_dsn).replay_lsn or 0
            said += f"; the standby replayed {format_lsn(replay)}, " + (
                "all of it" if replay >= point.end_lsn else
                f"{point.end_lsn - replay} bytes behind it")
        except MedarkError:
            pass
    status.note = said


def _replication(status: DrStatus, primary_dsn: str, standby: NodeStatus | None) -> None:
    from medark.sources.postgres.replication import replication_slots

    try:
        slots = replication_slots(primary_dsn)
    except MedarkError:
        return
    mine = next((s for s in slots if s.name == status.slot), None)
    status.slot_active = None if mine is None else mine.active
    status.streaming = bool(mine and mine.state == "streaming") and standby is not None


def _lag(status: DrStatus, primary_dsn: str, standby_dsn: str) -> None:
    from medark.sources.postgres.replication import replication_lag

    try:
        lag = replication_lag(primary_dsn, standby_dsn)
    except MedarkError as exc:
        status.lag_error = one_line(exc)
        return
    status.lag_bytes, status.lag_seconds, status.lag_basis = lag.bytes, lag.seconds, lag.basis
    if lag.bytes > status.max_lag_bytes:
        status.over_limit.append(f"{lag.bytes} bytes over max_lag_bytes "
                                 f"{status.max_lag_bytes}")
    if lag.seconds is not None and lag.seconds > status.max_lag_seconds:
        status.over_limit.append(f"{lag.seconds:.1f} s over max_lag "
                                 f"{status.max_lag_seconds:g} s")


def _pooler(status: DrStatus, conf: DrConf) -> None:
    switch = conf.client_switch
    if switch is None or switch.type != "pgbouncer" or switch.admin_dsn is None:
        return
    from medark.sources.postgres.pooler import PoolerConsole

    try:
        with PoolerConsole(switch.admin_dsn) as console:
            state = console.state()
    except MedarkError as exc:
        status.pooler_error = one_line(exc)
        return
    entry = state.database(str(switch.database))
    status.pooler = {"database": switch.database,
                     "host": None if entry is None else entry.host,
                     "port": None if entry is None else entry.port,
                     "paused": None if entry is None else entry.paused,
                     "clients_waiting": sum(p.cl_waiting for p in state.pools_of(
                         str(switch.database)))}
