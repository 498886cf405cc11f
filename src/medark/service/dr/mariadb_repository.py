"""A MariaDB system whose standby is fed from a Medark repository (`feed =
"repository"`): `dr status`/`dr supervise`, `dr failover`, and the old primary made a
repository-fed standby (the planned switches, `dr switchover` and `dr failback`:
mariadb_repository_switch.py; the drill: mariadb_drill.RepositoryDrill).

The standby (`medark mysql restore --standby`, service/mysql_standby.py) has no
replication connection: it is read-only, logs what it applies under the original GTIDs,
and its @@gtid_binlog_pos is the position it has applied. The roles are found as
mariadb_nodes.py finds them, except that the standby is the read-only node that does not
replicate (mariadb_nodes calls it "fenced"), the configured standby when both are.

Status: the standby's applied GTID, the repository's newest archived transaction (GTID,
file, when archived), and the lag in transactions and seconds (binlog commit times)
between them; when the primary answers, also how many transactions the standby lacks of
the primary's binlog (the repository's own delay included). `supervise` (the daemon's DR
watch and `dr supervise`) first applies what the repository holds: that is what keeps
the standby current. An apply that fails makes the standby "not ready" (exit 26, the
`dr_standby` alert) with its one-line reason.

Failover: fence the old primary (mariadb.MariaFailover's fence: read-only when it still
answers, the configured stop/hook on top); apply everything the repository holds (when
the old primary still answers, for up to ARCHIVE_GRACE until the repository holds its
final GTID: the binlog stream may still be delivering it); the data-loss window against
the old primary's final @@gtid_binlog_pos when it answered, else "unknown beyond" the
repository's newest archived GTID; refused without --force when it counts a loss, when
the standby could not apply what is archived, or when its lag is over `max_lag`; then
read_only off (proved by a write probe), and mariadb.finish: clients redirected, the DR
site's services started, the health checks waited for.

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

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.dr import DrConf
from medark.config.plans import MedarkConfig
from medark.errors import (
    LagOverLimit,
    MedarkError,
    StandbyNotReady,
    SwitchRefused,
)
from medark.service.dr.action import ActionState, DrOutcome, run_action
from medark.service.dr.health import MAX_SECONDS
from medark.service.dr.mariadb import (
    MariaFailover,
)
from medark.service.dr.mariadb_nodes import Maria, members, run_health
from medark.service.dr.nodes import one_line
from medark.service.dr.status import DrStatus, NodeStatus
from medark.service.dr.steps import Steps
from medark.service.mysql_standby import (
    ApplyResult,
    FeedView,
    NotCaptured,
    apply_new_binlogs,
    standby_state,
)
from medark.sources.mysql.replication import (
    FENCED,
    PRIMARY,
    STANDBY,
    behind,
    missing,
    read_state,
)
from medark.util import clock

ARCHIVE_GRACE = 10.0
"""A failover whose old primary still answers waits this long for the repository to hold
the primary's final GTID (the binlog stream archives every fraction of a second)."""
CONFIG_FILE = "medark-server.cnf"


def repository_pair(nodes: tuple[Maria, Maria]) -> tuple[Maria | None, Maria | None]:
    """(primary, standby) as found: the writable node, and the read-only one that does
    not replicate (the configured standby when both are read-only)."""
    primary = next((m for m in nodes if m.role == PRIMARY), None)
    candidates = [m for m in nodes if m.role == FENCED and m is not primary]
    standby = next((m for m in candidates if m.configured == "standby"),
                   candidates[0] if candidates else None)
    return primary, standby


def txns(n: int) -> str:
    return f"{n} transaction{'' if n == 1 else 's'}"


def status(name: str, conf: DrConf, config: MedarkConfig | None,
           supervise: bool = False) -> DrStatus:
    """status._status for a MariaDB repository feed; `supervise`: apply first."""
    found = DrStatus(name, conf.primary.kind, conf.feed, max_lag_bytes=conf.max_lag_bytes,
                     max_lag_seconds=conf.max_lag.total_seconds())
    nodes = members(conf)
    primary, standby = repository_pair(nodes)
    found.nodes = [_node(m, standby) for m in nodes]
    if standby is None:
        said = ", ".join(m.describe() for m in nodes)
        found.not_ready = f"no read-only standby that does not replicate ({said})"
    if primary is None:
        down = [m for m in nodes if m.error is not None]
        found.primary_down = (f"{down[0].configured} {down[0].address} unreachable: "
                              f"{down[0].error}" if down else
                              "no node is a writable primary: " + ", ".join(
                                  m.describe() for m in nodes))
    if standby is not None and config is not None and conf.repository is not None:
        _feed(found, conf, config, standby, primary, supervise)
    found.would_lose_data = (standby is None or found.lag_seconds is None
                             or found.lag_seconds > 0 or bool(found.lag_error))
    site = None if primary is None else primary.node.site
    checks = [c for c in conf.health if c.site is None or c.site == site]
    if primary is not None:
        found.health = [run_health(c, primary, MAX_SECONDS) for c in checks]
    return found


def _node(m: Maria, standby: Maria | None) -> NodeStatus:
    if m.state is None:
        return NodeStatus(m.configured, m.node.site, m.address, error=m.error)
    role = STANDBY if m is standby else m.st.role
    return NodeStatus(m.configured, m.node.site, m.address, role,
                      receiver_status="repository" if m is standby else None)


def _feed(found: DrStatus, conf: DrConf, config: MedarkConfig, standby: Maria,
          primary: Maria | None, supervise: bool) -> None:
    assert conf.repository is not None
    try:
        done = apply_new_binlogs(config, conf.repository, standby.node.dsn,
                                 standby.password, apply=supervise,
                                 primary=None if primary is None else archive_of(primary))
    except NotCaptured as exc:
        found.lag_error = one_line(exc)
        found.note = (f"repository {conf.repository}: {one_line(exc)}: the standby "
                      f"{standby.address} does not advance")
        found.not_ready = (f"the standby {standby.address} cannot advance: {one_line(exc)}"
                           + ("" if primary is None else
                              f"; {capture_hint(config, conf, primary)}"))
        return
    except MedarkError as exc:
        found.lag_error = one_line(exc)
        found.note = f"repository {conf.repository}: {one_line(exc)}"
        if supervise:
            found.not_ready = f"the standby {standby.address} cannot apply the repository: " \
                f"{one_line(exc)}"
        return
    view = done.feed
    if done.transactions:
        view.pending = []  # all applied now
    behind_repository = len(view.pending)
    seconds, basis = view.lag_seconds()
    primary_gtid = None
    if primary is not None:
        primary_gtid = primary.st.gtid_binlog_pos
    found.repository = {**view.public(), "standby_gtid": done.after,
                        "applied_now": done.transactions, "primary_gtid": primary_gtid}
    said = [f"{txns(behind_repository)} behind the repository ({basis})"]
    if primary_gtid is not None:
        short = sum(behind(primary_gtid, done.after).values())
        unarchived = sum(behind(primary_gtid, view.newest_gtid).values())
        found.repository.update(transactions_behind_primary=short,
                                transactions_not_archived=unarchived)
        said.append(f"{txns(short)} behind the primary's {primary_gtid or 'nothing'}"
                    + (f", {txns(unarchived)} of them not archived yet" if unarchived
                       else ""))
        if short and not behind_repository:
            seconds, basis = None, "unknown: the repository does not hold them yet"
    found.lag_seconds, found.lag_basis = seconds, "; ".join(said)
    if seconds is not None and seconds > found.max_lag_seconds:
        found.over_limit.append(f"{seconds:.1f} s over max_lag {found.max_lag_seconds:g} s")
    archived = "" if view.newest_archived is None else \
        f", archived {clock.format_time(view.newest_archived)}"
    newest = ("no binlog archived" if view.newest_file is None else
              f"newest GTID {view.newest_gtid or 'none'} in {view.newest_file}:"
              f"{view.newest_size} ({'complete' if view.newest_complete else 'being written'}"
              f"{archived})")
    found.note = (f"repository {conf.repository}: {newest}; the standby applied "
                  f"{done.after or 'nothing'}"
                  + (f" ({txns(done.transactions)} applied now)" if supervise else ""))


# ---- failover ------------------------------------------------------------------------


def failover(config: MedarkConfig, system: str, conf: DrConf, catalog: Catalog, *,
             force: bool = False, requested_by: str | None = None,
             on_step: Callable[[DrStep], None] | None = None) -> DrOutcome:
    return run_action(
        catalog, system, "failover",
        lambda steps, state: RepositoryFailover(system, conf, steps, state, force,
                                                config).run(),
        requested_by=requested_by, on_step=on_step)


@dataclass
class RepositoryFailover(MariaFailover):
    """MariaFailover's fence, limits and finish around the repository's last binlogs."""

    config: MedarkConfig | None = None
    applied: ApplyResult | None = None
    final: str | None = None
    """The fenced old primary's @@gtid_binlog_pos, when it answered."""
    apply_error: str | None = None

    def describe_standby(self, new: Maria) -> str:
        return (f"site {new.node.site}, at GTID {new.st.gtid_binlog_pos or 'none'}, fed "
                f"from repository {self.conf.repository}")

    def catch_up(self, old: Maria, new: Maria) -> None:
        with self.steps.step("apply repository") as note:
            note.detail = self._apply(old, new)

    def promote(self, new: Maria) -> str:
        return open_writes(new)

    def _roles(self) -> tuple[Maria, Maria]:
        a, b = members(self.conf)
        if a.role == PRIMARY and b.role == PRIMARY:
            raise StandbyNotReady(f"{self.system}: both nodes are primaries; nothing to "
                                  "fail over to (resolve the split by hand)")
        _primary, new = repository_pair((a, b))
        if new is None:
            raise StandbyNotReady(f"{self.system}: no read-only standby to promote "
                                  f"({a.describe()}, {b.describe()})")
        return (b if new is a else a), new

    def _apply(self, old: Maria, new: Maria) -> str:
        """Everything the repository holds; while the fenced old primary answers, until
        it holds the primary's final GTID or ARCHIVE_GRACE is up."""
        from medark.sources.mysql.fencing import final_gtid

        assert self.config is not None and self.conf.repository is not None
        if old.role is not None:
            try:
                self.final = final_gtid(old.node.dsn, old.password)
            except MedarkError:
                self.final = None
        deadline = clock.monotonic() + ARCHIVE_GRACE
        total = 0
        source = None if old.state is None else archive_of(old)
        try:
            while True:
                done = apply_new_binlogs(self.config, self.conf.repository, new.node.dsn,
                                         new.password, primary=source)
                total += done.transactions
                self.applied = done
                if self.final is None or not any(behind(self.final, done.after).values()) \
                        or clock.monotonic() >= deadline:
                    break
                clock.sleep(0.5)
        except MedarkError as exc:
            self.apply_error = one_line(exc)
            return f"the repository could not be applied: {self.apply_error}"
        assert self.applied is not None
        return (f"{txns(total)} applied, the standby is at "
                f"{self.applied.after or 'nothing'}")

    def _window(self, old: Maria, new: Maria) -> dict[str, Any]:
        after = read_state(new.conn).gtid_binlog_pos
        view: FeedView | None = None if self.applied is None else self.applied.feed
        newest = None if view is None else view.newest_gtid
        window: dict[str, Any] = {
            "standby_gtid": after, "repository_gtid": newest,
            "repository_file": None if view is None else view.newest_file,
            "archived_at": None if view is None or view.newest_archived is None
            else clock.format_time(view.newest_archived),
            "primary_gtid": self.final, "transactions": None, "domains": None,
            "standby_short_of_repository": None}
        error = self.apply_error
        if error is not None:
            window["basis_error"] = error
        elif newest is not None:
            window["standby_short_of_repository"] = sum(behind(newest, after).values())
        if self.final is not None:
            gaps = behind(self.final, after)
            lost = sum(gaps.values())
            window.update(transactions=lost, domains={str(d): n for d, n in gaps.items()},
                          basis="the fenced old primary's @@gtid_binlog_pos")
            window["summary"] = (
                f"{txns(lost)} not on the standby ({missing(self.final, after)}; standby "
                f"{after or 'none'}, old primary {self.final})" if lost else
                f"none: the standby has the old primary's {self.final or 'nothing'}")
            return window
        window["basis"] = "unknown: the old primary cannot be read"
        if newest is None:
            window["summary"] = (f"unknown beyond the standby's GTID {after or 'none'} (the "
                                 f"repository could not be read: {error})")
            return window
        short = window["standby_short_of_repository"]
        window["summary"] = (
            f"unknown beyond the repository's newest archived GTID {newest or 'none'} "
            f"({view.newest_file if view else '?'}, archived {window['archived_at']}): the "
            + ("standby applied all of it" if not short else
               f"standby lacks {txns(short)} of it, at {after or 'none'}")
            + "; whatever the old primary committed after that is lost")
        return window

    def _limits(self, window: dict[str, Any], new: Maria) -> None:
        short = window.get("standby_short_of_repository")
        if short and not self.force:
            raise LagOverLimit(f"{self.system}: failover refused, the standby could not "
                               f"apply {txns(short)} the repository holds "
                               f"({window['summary']}); --force takes the loss")
        super()._limits(window, new)


def open_writes(new: Maria) -> str:
    """Promote a repository-fed standby: read_only off, proved by a new session of an
    ordinary account (write_probe); read-only=1 in the option file `mysql restore
    --standby` wrote (the node's datadir) becomes 0, so a restart stays writable."""
    from medark.sources.mysql.replication import run, write_probe

    conn = new.conn
    run(conn, "SET GLOBAL read_only = 0")
    after = read_state(conn)
    if after.role != PRIMARY:
        raise MedarkError(f"{new.address} after promotion: {after.role} "
                          f"(read_only={int(after.read_only)}); expected a primary")
    if write_probe(conn) != "accepted":
        raise MedarkError(f"{new.address} after promotion: a new session's write is still "
                          "refused as read-only")
    return (f"{new.address} is the primary at GTID {after.gtid_binlog_pos or 'none'}"
            + persist_read_only(new, False))


def persist_read_only(m: Maria, on: bool) -> str:
    """read-only=1 (`on`) or 0 in the option file `mysql restore` wrote in the node's
    datadir (medark-server.cnf), so that a restart keeps the role; what it did, or what is
    left to do by hand when there is no such file."""
    datadir = m.node.control.datadir
    path = None if datadir is None else os.path.join(datadir, CONFIG_FILE)
    try:
        if path is None:
            raise FileNotFoundError
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return ("; set read_only=1 in its configuration so that a restart keeps it a standby"
                if on else "; if its option file sets read-only, remove it before the next "
                "restart")
    want, other = ("read-only=1", "read-only=0") if on else ("read-only=0", "read-only=1")
    if other in lines:
        lines = [want if ln == other else ln for ln in lines]
    elif on and want not in lines:  # write_config's file: one [mysqld] section
        at = lines.index("[mysqld]") + 1 if "[mysqld]" in lines else len(lines)
        lines.insert(at, want)
    else:
        return ""
    tmp = path + ".medark-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return f"; {want} in {path}"


def archive_of(m: Maria) -> str:
    """The archive id `mysql binlog-stream` gives a MariaDB server's binlogs: its
    server_id."""
    return str(m.st.server_id)


def capture_hint(config: MedarkConfig, conf: DrConf, primary: Maria) -> str:
    """What to run so that the repository receives `primary`'s binlogs."""
    from medark.service.plans import redact

    assert conf.repository is not None
    repo = config.repositories.get(conf.repository)
    url = "URL" if repo is None else redact(repo.url)
    return (f"stream {primary.address}'s binlogs into repository {conf.repository}: "
            f"`medark --repo {url} mysql binlog-stream --dsn {redact(primary.node.dsn)}` "
            "(or a plan whose mariadb source is that server, with stream = true), then "
            "`medark dr supervise`")


def as_repository_standby(config: MedarkConfig, conf: DrConf, old: Maria, new: Maria
                          ) -> tuple[str, str | None]:
    """Make the fenced `old` a standby fed from the repository with the binlogs of `new`,
    the primary now: read-only (persisted), no replication connection, gtid_strict_mode;
    its applied position is its own @@gtid_binlog_pos. SwitchRefused (30) when it holds
    transactions the new primary lacks. Then one apply: (what was done, the problem when
    the standby cannot advance: no capture of the new primary, or an apply that fails)."""
    from medark.sources.mysql.reinstate import errant_gtids
    from medark.sources.mysql.replication import run

    assert conf.repository is not None
    conn = old.conn
    state = read_state(conn)
    if not state.log_bin:
        raise StandbyNotReady(f"{old.address} has binary logging off, so the position it "
                              "applied would be unknown: restore it with `medark mysql "
                              "restore --standby`")
    theirs = read_state(new.conn)
    extra = errant_gtids(state, theirs.gtid_binlog_state, theirs.gtid_binlog_pos)
    if extra:
        raise SwitchRefused(f"{old.address} has transactions {new.address} lacks (errant "
                            f"GTIDs {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''})"
                            ": not made a standby; rebuild it (mysql restore --standby)")
    statements = ["SET GLOBAL read_only = 1", "SET GLOBAL gtid_strict_mode = 1"]
    if state.connections:
        statements += ["STOP ALL SLAVES", *(f"RESET SLAVE '{name}' ALL"
                                            for name in state.connections)]
    run(conn, "; ".join(statements))
    persisted = persist_read_only(old, True)
    at = standby_state(conn).gtid_binlog_pos
    said = (f"{old.address}: read-only, no replication, applied position its "
            f"@@gtid_binlog_pos {at or 'none'}{persisted}")
    try:
        done = apply_new_binlogs(config, conf.repository, old.node.dsn, old.password,
                                 primary=str(theirs.server_id))
    except NotCaptured as exc:
        return said, (f"it cannot advance, {one_line(exc)}: "
                      f"{capture_hint(config, conf, new)}")
    except MedarkError as exc:
        return said, f"it cannot apply repository {conf.repository}: {one_line(exc)}"
    return (said + f"; fed from repository {conf.repository} with {new.address}'s binlogs "
            f"({txns(done.transactions)} applied now, at {done.after or 'nothing'})", None)


def reinstate_old(system: str, conf: DrConf, config: MedarkConfig, steps: Steps,
                  state: ActionState, old: Maria, new: Maria) -> None:
    """Step "reinstate old primary" after a switch: `old` becomes a repository-fed standby
    of `new` (as_repository_standby). It does not undo the switch: a failure, or a standby
    that cannot advance (a warning step), is reported (exit 26)."""
    from medark.service.dr.steps import WARNING

    if conf.fencing.type == "stop":
        steps.skip("reinstate old primary",
                   f"stopped as its fence: start it with read_only=1 and gtid_strict_mode=1 "
                   f"and `medark dr supervise {system}` feeds it from repository "
                   f"{conf.repository}")
        return
    try:
        with steps.step("reinstate old primary") as note:
            note.detail, problem = as_repository_standby(config, conf, old, new)
            if problem is not None:
                note.detail += f"; {problem}"
                note.result = WARNING
                state.afterwards = StandbyNotReady(
                    f"{system}: switched to {new.address}; {old.address} is a standby fed "
                    f"from repository {conf.repository}, but {problem}")
    except MedarkError as exc:
        state.afterwards = StandbyNotReady(
            f"{system}: switched to {new.address}, but the old primary {old.address} is "
            f"not its standby: {one_line(exc)}")
