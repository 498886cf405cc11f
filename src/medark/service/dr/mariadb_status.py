"""`dr status` of a MariaDB system whose standby replicates by GTID, in status.py's
DrStatus so that the command, JSON and the daemon treat it as any other system.

Read-only, like status.py. MariaDB counts lag in transactions and seconds, never bytes:
`lag_bytes` stays None, `lag_basis` says how many transactions the standby lacks and
where the seconds come from, and only `max_lag` (seconds) is held against it. A node's
`receiver_status` is "streaming" when both replication threads run, else what they say;
`timeline` has no MariaDB meaning and stays None (the GTID positions are in `note`).
A synchronous system's `sync` is mariadb_sync.enforce's report (applied by supervise).
"""

from __future__ import annotations

from medark.config.dr import DrConf
from medark.errors import MedarkError
from medark.service.dr.health import MAX_SECONDS
from medark.service.dr.mariadb_nodes import Maria, follows, members, run_health
from medark.service.dr.nodes import one_line
from medark.service.dr.status import DrStatus, NodeStatus
from medark.sources.mysql.replication import PRIMARY, STANDBY, describe_threads


def status(name: str, conf: DrConf, supervise: bool = False) -> DrStatus:
    """The MariaDB branch of status._status (feed = "stream"). `supervise`: first make a
    synchronous system's primary wait for its standby (mariadb_sync.enforce), as
    `dr supervise` does; otherwise only report whether it does."""
    from medark.service.dr.mariadb_sync import enforce

    found = DrStatus(name, conf.primary.kind, conf.feed, max_lag_bytes=conf.max_lag_bytes,
                     max_lag_seconds=conf.max_lag.total_seconds())
    if conf.synchronous:
        found.sync = enforce(name, conf, apply=supervise)
    nodes = members(conf)
    found.nodes = [_node(m) for m in nodes]
    primary = next((m for m in nodes if m.role == PRIMARY), None)
    standby = next((m for m in nodes if m.role == STANDBY), None)
    found.not_ready = _not_ready(nodes, primary, standby)
    if primary is None:
        down = [m for m in nodes if m.error is not None and m is not standby]
        found.primary_down = (f"{down[0].configured} {down[0].address} unreachable: "
                              f"{down[0].error}" if down else
                              "no node is a writable primary: " + ", ".join(
                                  m.describe() for m in nodes))
    if primary is not None and standby is not None:
        found.streaming = standby.st.streaming and _follows(standby, primary)
        _lag(found, primary, standby)
    found.would_lose_data = (standby is None or found.lag_seconds is None
                             or found.lag_seconds > 0)
    positions = [f"{m.configured} {m.role}: binlog {m.st.gtid_binlog_pos or 'none'}"
                 + (f", applied {m.st.gtid_slave_pos or 'none'}" if m.role == STANDBY else "")
                 for m in nodes if m.state is not None]
    found.note = "GTID " + "; ".join(positions) if positions else ""
    site = None if primary is None else primary.node.site
    checks = [c for c in conf.health if c.site is None or c.site == site]
    if primary is not None:
        found.health = [run_health(c, primary, MAX_SECONDS) for c in checks]
    return found


def _node(m: Maria) -> NodeStatus:
    if m.state is None:
        return NodeStatus(m.configured, m.node.site, m.address, error=m.error)
    receiver = None if not m.st.replicating else (
        "streaming" if m.st.streaming else describe_threads(m.st))
    return NodeStatus(m.configured, m.node.site, m.address, m.st.role,
                      receiver_status=receiver)


def _follows(standby: Maria, primary: Maria) -> bool:
    try:
        return follows(standby, primary)
    except MedarkError:
        return False


def _not_ready(nodes: tuple[Maria, Maria], primary: Maria | None,
               standby: Maria | None) -> str | None:
    if standby is None:
        down = [m for m in nodes if m.error is not None]
        if down and (down[-1].configured == "standby" or len(down) == 1):
            return f"{down[-1].configured} {down[-1].address} unreachable: {down[-1].error}"
        return "no node replicates: there is no standby (" + ", ".join(
            m.describe() for m in nodes) + ")"
    if not standby.st.streaming:
        return (f"the standby {standby.address} is not replicating (threads "
                f"{describe_threads(standby.st)})")
    if primary is not None and not _follows(standby, primary):
        return (f"the standby {standby.address} replicates from {standby.st.master_host}:"
                f"{standby.st.master_port}, not from the primary {primary.address}")
    return None


def _lag(found: DrStatus, primary: Maria, standby: Maria) -> None:
    from medark.sources.mysql.replication import replication_lag

    try:
        lag = replication_lag(primary.node.dsn, standby.node.dsn, primary.password,
                              standby.password)
    except MedarkError as exc:
        found.lag_error = one_line(exc)
        return
    found.lag_seconds = lag.seconds  # never 0 while behind (MariaLag)
    found.lag_basis = (f"{lag.transactions} transaction{'' if lag.transactions == 1 else 's'}"
                       f" behind; {lag.basis}")
    if lag.seconds is not None and lag.seconds > found.max_lag_seconds:
        found.over_limit.append(f"{lag.seconds:.1f} s over max_lag "
                                f"{found.max_lag_seconds:g} s")
