"""Keeping a `synchronous = true` MariaDB system semi-synchronous (sync.py's counterpart),
and what happens when its standby is lost (`on_sync_loss`).

MariaDB 10.3+ has semi-synchronous replication built in. The primary as found gets
rpl_semi_sync_master_enabled with rpl_semi_sync_master_wait_point = AFTER_SYNC: a commit
is written and synced to the binlog, then waits until a replica says its relay log has
it, and only then is committed in InnoDB, seen by others and acknowledged; so a replica
promoted after a crash holds every acknowledged commit (the failover applies the relay
log). The standby gets rpl_semi_sync_slave_enabled, which its IO thread reads when it
starts (hence STOP/START SLAVE IO_THREAD), and rpl_semi_sync_master_enabled off: a
replica with it on makes its own SQL thread wait for acknowledgements no one sends (seen
on 10.11: every replicated commit waited the whole timeout).

When no acknowledgement comes in rpl_semi_sync_master_timeout, MariaDB itself goes on
asynchronously (Rpl_semi_sync_master_status OFF) and turns semi-sync back on once a
replica has caught up; rpl_semi_sync_master_wait_no_slave (ON) makes commits wait the
timeout even with no replica connected. So:

- `degrade`: the timeout is DEGRADE_TIMEOUT_MS; a lost standby costs the commits in
  flight at most that wait, once, then the primary replicates asynchronously until the
  standby is back (reported "degraded", with the problem, meanwhile). Semi-sync is on
  only while the standby's IO thread runs: supervise turns it off when none does (a
  failover's new primary does not wait for a standby that is gone) and on again, with
  the standby's IO thread restarted, once it is back;
- `block`: the timeout is MariaDB's maximum (2^64-1 ms, which it accepts: commits wait,
  measured, until a replica acknowledges). Commits hang, invisible to other sessions,
  until the standby reconnects; a client that gives up does not undo its commit (it is
  in the primary's binlog and becomes visible once acknowledged). Semi-sync that is OFF
  already (it timed out under `degrade` before) stays off until the standby catches up.

The settings are SET GLOBAL: a restart forgets them, and `dr supervise` (every 30 s in
the daemon) puts them back; put them in the servers' option files as well. Commits made
between a switch's promotion and its "synchronous replication" step are asynchronous.
A crashed old primary restarted with rpl_semi_sync_slave_enabled = 1 truncates from its
binlog what was never acknowledged (MariaDB's semi-sync crash recovery), so it can be
reinstated without errant transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medark.config.dr import DrConf
from medark.errors import MedarkError
from medark.service.dr.mariadb_nodes import Maria, follows, members
from medark.service.dr.nodes import one_line
from medark.service.dr.sync import SyncOutcome
from medark.sources.mysql.replication import PRIMARY, STANDBY, run, table
from medark.util import clock

DEGRADE_TIMEOUT_MS = 10_000
"""on_sync_loss = degrade: how long a commit waits for the standby before the primary
goes on asynchronously."""
BLOCK_TIMEOUT_MS = 18_446_744_073_709_551_615
"""on_sync_loss = block: MariaDB's largest rpl_semi_sync_master_timeout, never reached."""
WAIT_POINT = "AFTER_SYNC"
CONNECT_WAIT = 5.0
"""After restarting the standby's IO thread, or turning semi-sync on: how long to wait
for it to register as a semi-sync replica, and for the primary to wait for it."""
COST = ("every commit waits until the DR standby has written it to its relay log "
        "(MariaDB semi-sync, AFTER_SYNC)")

_READ = ("SELECT @@rpl_semi_sync_master_enabled AS master, "
         "@@rpl_semi_sync_master_timeout AS timeout, "
         "@@rpl_semi_sync_master_wait_point AS point, "
         "@@rpl_semi_sync_master_wait_no_slave AS no_slave, "
         "@@rpl_semi_sync_slave_enabled AS slave; "
         "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', "
         "'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_slave_status', "
         "'Rpl_semi_sync_master_no_tx', 'Rpl_semi_sync_master_yes_tx')")


@dataclass(frozen=True)
class SemiSync:
    """A server's semi-sync settings and status."""

    master_enabled: bool
    timeout_ms: int
    wait_point: str
    wait_no_slave: bool
    slave_enabled: bool
    master_status: bool
    """Rpl_semi_sync_master_status: commits wait for an acknowledgement now."""
    clients: int
    """Rpl_semi_sync_master_clients: semi-sync replicas connected."""
    slave_status: bool
    """Rpl_semi_sync_slave_status: this replica's IO thread acknowledges."""
    yes_tx: int
    no_tx: int


def _on(text: str) -> bool:
    return text in ("1", "ON")


def read(m: Maria) -> SemiSync:
    lines = run(m.conn, _READ, names=True)
    v = table(lines[:2])[0]
    status = dict(line.split("\t", 1) for line in lines[2:])
    return SemiSync(_on(v["master"]), int(v["timeout"]), v["point"], _on(v["no_slave"]),
                    _on(v["slave"]), status.get("Rpl_semi_sync_master_status") == "ON",
                    int(status.get("Rpl_semi_sync_master_clients", "0")),
                    status.get("Rpl_semi_sync_slave_status") == "ON",
                    int(status.get("Rpl_semi_sync_master_yes_tx", "0")),
                    int(status.get("Rpl_semi_sync_master_no_tx", "0")))


def _timeout(conf: DrConf) -> int:
    return BLOCK_TIMEOUT_MS if conf.on_sync_loss == "block" else DEGRADE_TIMEOUT_MS


def primary_changes(conf: DrConf, s: SemiSync, wait: bool) -> list[str]:
    """The SET GLOBAL assignments the primary lacks; `wait`: semi-sync on."""
    out = []
    if s.master_enabled != wait:
        out.append(f"rpl_semi_sync_master_enabled = {int(wait)}")
    if s.wait_point != WAIT_POINT:
        out.append(f"rpl_semi_sync_master_wait_point = '{WAIT_POINT}'")
    if s.timeout_ms != _timeout(conf):
        out.append(f"rpl_semi_sync_master_timeout = {_timeout(conf)}")
    if not s.wait_no_slave:
        out.append("rpl_semi_sync_master_wait_no_slave = 1")
    return out


def standby_changes(s: SemiSync) -> list[str]:
    out = []
    if not s.slave_enabled:
        out.append("rpl_semi_sync_slave_enabled = 1")
    if s.master_enabled:
        out.append("rpl_semi_sync_master_enabled = 0")
    return out


def as_replica(m: Maria, synchronous: bool) -> None:
    """Before `m` becomes a replica: semi-sync's master side off (on, its SQL thread waits
    the timeout on every transaction it applies, for acknowledgements no one sends), and
    with `synchronous` the replica side on, so its IO thread starts acknowledging. A
    server without the variables (before 10.3, no plugin) is left alone when not
    `synchronous`."""
    try:
        if read(m).master_enabled or synchronous:
            run(m.conn, "SET GLOBAL rpl_semi_sync_master_enabled = 0"
                + (", rpl_semi_sync_slave_enabled = 1" if synchronous else ""))
    except MedarkError:
        if synchronous:
            raise


def enforce(system: str, conf: DrConf, apply: bool = True) -> SyncOutcome:
    """Make the primary as found wait for its standby's acknowledgement, as `on_sync_loss`
    says; `apply` False only reports (`dr status` changes nothing).

    `degrade` turns semi-sync on only while a standby's IO thread runs from the primary
    (and off when none does, as sync.py resets synchronous_standby_names): a failover's
    new primary, whose standby is gone, does not make its first commits wait the timeout.
    `block` keeps it on whatever is found."""
    if not conf.synchronous:
        return SyncOutcome("off", "asynchronous (synchronous = false)")
    nodes = members(conf)
    primary = next((m for m in nodes if m.role == PRIMARY), None)
    if primary is None:
        return SyncOutcome("unknown", "no reachable primary",
                           f"{system}: semi-synchronous replication cannot be checked: no "
                           "reachable primary")
    standby = next((m for m in nodes if m.role == STANDBY), None)
    try:
        if standby is not None and not follows(standby, primary):
            standby = None
        return _enforce(system, conf, primary, standby, apply)
    except MedarkError as exc:
        return SyncOutcome("unknown", one_line(exc),
                           f"{system}: semi-synchronous replication: {one_line(exc)}")


def _enforce(system: str, conf: DrConf, primary: Maria, standby: Maria | None,
             apply: bool) -> SyncOutcome:
    p = read(primary)
    s = None if standby is None else read(standby)
    connected = standby is not None and standby.st.slave_io_running == "Yes"
    wait = connected or conf.on_sync_loss == "block"
    todo = [f"{primary.address}: {c}" for c in primary_changes(conf, p, wait)]
    restart = False
    if standby is not None and s is not None:
        todo += [f"{standby.address}: {c}" for c in standby_changes(s)]
        restart = connected and not s.slave_status
        if restart:
            todo.append(f"{standby.address}: restart the IO thread (semi-sync off in it)")
    if not apply:
        if todo and connected:
            return SyncOutcome("not set", "missing " + "; ".join(todo),
                               f"{system}: configured synchronous, but the primary does not "
                               "wait for the standby (medark dr supervise sets it)")
        return _verdict(system, conf, primary, standby, p, s, changed=False)
    if standby is not None and s is not None:
        if restart and p.master_enabled:
            # a commit waiting while the IO thread reconnects waits for an ack of what
            # the old connection received, which never comes: off during the restart
            run(primary.conn, "SET GLOBAL rpl_semi_sync_master_enabled = 0")
        changes = standby_changes(s)
        if changes:
            run(standby.conn, "SET GLOBAL " + ", ".join(changes))
        if restart:
            run(standby.conn, "STOP SLAVE IO_THREAD; START SLAVE IO_THREAD")
            _wait(primary, lambda found: found.clients > 0)
            s = read(standby)
        p = read(primary)
    changes = primary_changes(conf, p, wait)
    if changes:
        run(primary.conn, "SET GLOBAL " + ", ".join(changes))
    if todo:
        p = _wait(primary, lambda found: found.clients > 0 and found.master_status) \
            if connected else read(primary)
    return _verdict(system, conf, primary, standby, p, s, changed=bool(todo))


def _wait(primary: Maria, done: Callable[[SemiSync], bool]) -> SemiSync:
    """Until `done` holds for the primary's semi-sync state, at most CONNECT_WAIT; the
    last reading either way."""
    deadline = clock.monotonic() + CONNECT_WAIT
    while True:
        p = read(primary)
        if done(p) or clock.monotonic() >= deadline:
            return p
        clock.sleep(0.1)


def _verdict(system: str, conf: DrConf, primary: Maria, standby: Maria | None,
             p: SemiSync, s: SemiSync | None, changed: bool) -> SyncOutcome:
    waits = p.master_enabled and p.master_status
    if waits and p.clients > 0:
        detail = (f"{primary.address} waits for "
                  f"{standby.address if standby else 'a semi-sync replica'} on every "
                  f"commit ({WAIT_POINT}, timeout {_describe_timeout(conf)}); {COST}")
        return SyncOutcome("set" if changed else "synchronous", detail)
    why = ("no standby replicates from it" if standby is None else
           f"the standby {standby.address} is not acknowledging"
           + ("" if s is None or s.slave_status else " (semi-sync is off in its IO thread)"))
    if conf.on_sync_loss == "block" and waits:
        return SyncOutcome("blocked", f"{primary.address}: {why}; commits wait for it "
                           f"(rpl_semi_sync_master_timeout = {p.timeout_ms} ms)",
                           f"{system}: the semi-synchronous standby is not connected; commits "
                           "on the primary wait for it (on_sync_loss = block)")
    if not p.master_enabled:
        detail = f"{primary.address} replicates asynchronously (semi-sync off): {why}"
    elif not p.master_status:
        detail = (f"{primary.address} replicates asynchronously (Rpl_semi_sync_master_status "
                  f"OFF, {p.no_tx} commits not acknowledged): {why}")
    else:
        detail = (f"{primary.address}: {why}; the next commit waits "
                  f"{_describe_timeout(conf)}, then the primary goes on asynchronously")
    return SyncOutcome("degraded", detail,
                       f"{system}: the semi-synchronous standby is not acknowledging; "
                       "replication is asynchronous (on_sync_loss = "
                       f"{conf.on_sync_loss}) until it catches up: a failover now may lose "
                       "the commits since")


def _describe_timeout(conf: DrConf) -> str:
    return "none" if conf.on_sync_loss == "block" else f"{DEGRADE_TIMEOUT_MS / 1000:g} s"
