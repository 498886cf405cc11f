"""A MariaDB standby fed only from the binlogs archived in a Medark repository (`[dr.X]
feed = "repository"`): made by `medark mysql restore --standby`, kept current by
`apply_new_binlogs` (`dr supervise`, the daemon's DR watch, a failover).

Where the standby stands is its own binlog's GTID state. The restore turns binary
logging on, runs RESET MASTER and seeds @@gtid_binlog_state with the backup's GTID
before replaying a single event; every archived transaction is then applied through
mariadb-binlog, whose output sets the session's GTID (domain, server_id, gtid_seq_no),
so the standby logs it under its original GTID. @@gtid_binlog_pos is therefore exactly
the last transaction applied in each domain, and it is as crash-safe as the data: the
binlog is the transaction coordinator, InnoDB commits what the binlog holds and rolls
back the rest on recovery (sync_binlog=1, innodb_flush_log_at_trx_commit=1 in the
standby's option file). A side file or table would be a second record that a crash can
leave disagreeing with the data; gtid_slave_pos is not updated by a client replay.

Applying: the archived files from the one whose starting GTID state (its Gtid_list
event) the standby has reached, the newest cut after its last complete transaction,
replayed with `mariadb-binlog --start-position=<applied GTIDs>` (exclusive: only later
transactions, supported since MariaDB 10.8) into the standby as the DR account (it needs
BINLOG REPLAY and READ ONLY ADMIN: the standby stays read_only=ON for everyone else).
Three guards keep a GTID from being applied twice: that start position; a session lock
(GET_LOCK) taken by the replaying session, which also re-checks the position under it,
so two supervisors never replay at once; and gtid_strict_mode on the standby, which
refuses an out-of-order GTID. Nothing new archived: nothing is run at all.

Cost of a pass (status or apply): the first block of a file or two (to find the file the
standby is in), then every archived file from that one to the newest, whole; with
`max_binlog_size` at its 1 GiB default that can be a large read per pass while the
primary writes a lot into one file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from medark.config.plans import MedarkConfig
from medark.engine.binlog_names import BINLOG_PREFIX
from medark.engine.mysql_binlog import BinlogArchive, BinlogRecord, Inventory
from medark.errors import (
    CommandFailed,
    DatabaseUnavailable,
    ObjectNotFound,
    StandbyNotReady,
    UsageError,
    WalGap,
)
from medark.repo.repository import Repository
from medark.service import session
from medark.service.session import default_cache_dir
from medark.sources.mysql.binlog import file_name, parse_file_name
from medark.sources.mysql.client import CONNECT_TIMEOUT, Conn, classify, find_program
from medark.sources.mysql.gtid_scan import Group, scan_gtids
from medark.sources.mysql.replication import (
    MariaNodeState,
    behind,
    by_domain,
    connect,
    merged,
    parse_gtids,
    read_state,
)
from medark.sources.mysql.server import RestoreServer
from medark.util import clock
from medark.util.files import atomic_write

LOCK_NAME = "medark_standby_apply"
APPLY_TIMEOUT = 3600.0
BINLOG_BASENAME = "standby-bin"
EXPIRE = 7 * 86400
"""The standby's own binlogs are purged after a week: its position is the GTID state,
which the newest file carries (its Gtid_list), not the old files."""


def standby_settings(server_id: int) -> list[str]:
    """The restored server's option-file lines that make it a repository-fed standby:
    its own binlog (the applied position) with GTIDs kept in order, read-only from its
    first start, and durable commits (the binlog and InnoDB agree after a crash)."""
    return [f"server-id={server_id}", f"log-bin={BINLOG_BASENAME}", "binlog-format=ROW",
            "gtid-strict-mode=1", "log-slave-updates=1", "read-only=1", "sync-binlog=1",
            "innodb-flush-log-at-trx-commit=1", f"binlog-expire-logs-seconds={EXPIRE}"]


def private_sql(server: RestoreServer, client: str, sql: str, timeout: float = 300) -> str:
    """Run `sql` in the restore's private server (socket, no grants); its batch output."""
    argv = [*server.client(client), "--batch", "--skip-column-names"]
    done = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()] or ["no output"]
        raise CommandFailed(f"the restored server refused {sql.split()[0]}: {lines[-1]}")
    return done.stdout.strip()


def seed_position(server: RestoreServer, client: str, gtid: str | None) -> None:
    """Before the replay: an empty binlog whose GTID state is the backup's, so that the
    replayed transactions continue it (RESET MASTER: nothing of the backup's own)."""
    if gtid:
        parse_gtids(gtid)  # a malformed one is refused before it reaches SQL
    private_sql(server, client, "RESET MASTER"
                + (f"; SET GLOBAL gtid_binlog_state = '{gtid}'" if gtid else ""))


def applied_position(data_dir: str) -> str:
    """@@gtid_binlog_pos of the stopped server in `data_dir`, read from its newest binlog
    file (its Gtid_list and groups): no login needed, which the private server stops
    allowing once the replay has loaded the grant tables."""
    index = os.path.join(data_dir, BINLOG_BASENAME + ".index")
    try:
        with open(index, encoding="utf-8") as f:
            files = [ln.strip() for ln in f if ln.strip()]
    except OSError as exc:
        raise CommandFailed(f"the standby's binlog index {index}: {exc.strerror}") from None
    if not files:
        raise CommandFailed(f"the standby's binlog index {index} lists no file")
    newest = os.path.join(data_dir, os.path.basename(files[-1]))
    with open(newest, "rb") as f:
        found = scan_gtids(f.read())
    return merged(*(str(g) for g in found.start_state or []),
                  *(str(g.gtid) for g in found.groups))


# ---- the repository's binlogs ------------------------------------------------------------


def open_configured(config: MedarkConfig, name: str) -> Repository:
    """Repository `name` of [repositories], opened with its password_file/command."""
    return session.open_configured(config, name)


class NotCaptured(ObjectNotFound):
    """The repository holds none of the binlogs of the server the standby must follow
    (no `mysql binlog-stream` of it into this repository): the standby cannot advance."""


def archive_id_for(repo: Repository, applied: str, own: int | None = None,
                   primary: str | None = None) -> str:
    """The server whose binlogs feed the standby. `primary` (the current primary's
    archive id, when the caller knows it): that one, NotCaptured when it is not archived.
    Otherwise, leaving out the standby's own server_id (its own binlog never brings it
    forward: after a switch-over the old primary's archive is its own): the only one
    left, else the one whose server_id wrote the standby's newest applied GTIDs."""
    ids = sorted({name[len(BINLOG_PREFIX):].split("/", 1)[0]
                  for name in repo.list_names(BINLOG_PREFIX)})
    if not ids:
        raise ObjectNotFound("the repository holds no archived binlog (run `medark mysql "
                             "binlog-stream` against the primary)")
    if primary is not None:
        if primary in ids:
            return primary
        raise NotCaptured(f"the repository holds no binlogs of the primary (server "
                          f"{primary}; it holds those of server {', '.join(ids)})")
    candidates = [i for i in ids if own is None or i != str(own)]
    if not candidates:
        raise NotCaptured(f"the repository holds only the standby's own binlogs (server "
                          f"{own}), none of a primary's")
    if len(candidates) == 1:
        return candidates[0]
    writers = [str(g.server_id) for g in sorted(by_domain(parse_gtids(applied)).values(),
                                                key=lambda g: g.seq, reverse=True)]
    chosen = next((w for w in writers if w in candidates), None)
    if chosen is None:
        raise UsageError(f"the repository holds the binlogs of several servers "
                         f"({', '.join(candidates)}) and the standby's GTIDs "
                         f"({applied or 'none'}) name none of them")
    return chosen


@dataclass
class FeedView:
    """What the repository holds after the standby's applied position."""

    archive_id: str
    applied: str
    files: list[str] = field(default_factory=list)
    """The archived files read, from the one the standby is in to the newest."""
    paths: list[str] = field(default_factory=list)
    """Their local copies (the newest cut after its last complete transaction)."""
    pending: list[Group] = field(default_factory=list)
    """Complete transactions the standby lacks, in binlog order."""
    newest_gtid: str = ""
    """The repository's newest complete transaction in each domain."""
    newest_file: str | None = None
    newest_size: int | None = None
    newest_archived: datetime | None = None
    newest_complete: bool | None = None
    newest_time: int | None = None
    """Event time of the newest complete transaction archived."""
    applied_time: int | None = None
    """Event time of the standby's last applied transaction, when it is in `files`."""

    @property
    def target(self) -> str:
        """The position the standby has once `pending` is applied."""
        return merged(self.applied, *(str(g.gtid) for g in self.pending))

    def lag_seconds(self) -> tuple[float | None, str]:
        """(seconds, basis): between the standby's last applied transaction and the
        newest archived one, by their binlog times; 0 when nothing is pending."""
        if not self.pending:
            return 0.0, "caught up with the repository"
        last = self.pending[-1].time
        if self.applied_time is not None:
            return float(max(0, last - self.applied_time)), "binlog commit times"
        return (float(max(0, last - self.pending[0].time)) or None,
                "binlog times since the first transaction it lacks")

    def public(self) -> dict[str, Any]:
        seconds, basis = self.lag_seconds()
        return {"archive_id": self.archive_id, "standby_gtid": self.applied,
                "newest_gtid": self.newest_gtid, "newest_file": self.newest_file,
                "newest_position": self.newest_size, "newest_complete": self.newest_complete,
                "newest_archived": None if self.newest_archived is None
                else clock.format_time(self.newest_archived),
                "newest_event_time": self.newest_time,
                "transactions_behind": len(self.pending), "seconds_behind": seconds,
                "seconds_basis": basis, "files": self.files}


def read_feed(repo: Repository, applied: str, spool: str | None,
              archive_id: str | None = None) -> FeedView:
    """The archived binlogs after `applied`; copied into `spool` when given (for
    mariadb-binlog). WalGap when the repository cannot bring the standby forward from
    where it is (a missing file, or binlogs that start after its position)."""
    archive = BinlogArchive(repo, archive_id or archive_id_for(repo, applied))
    view = FeedView(archive.archive_id, applied)
    inv = archive.inventory()
    names = inv.files()
    if not names:
        return view
    records = _from_position(archive, inv, applied)
    have = by_domain(parse_gtids(applied))
    state = list(have.values())
    for index, record in enumerate(records):
        data = archive.content(record)
        found = scan_gtids(data)
        if index == 0 and found.start_state:
            state = found.start_state
        for group in found.groups:
            reached = have.get(group.gtid.domain)
            if reached is not None and group.gtid.seq <= reached.seq:
                if group.gtid == reached:
                    view.applied_time = group.time
                continue
            view.pending.append(group)
        state += [g.gtid for g in found.groups]
        view.files.append(record.file)
        if spool is not None:
            path = os.path.join(spool, record.file)
            atomic_write(Path(path), data[:found.complete_end], 0o600, sync_dir=False)
            view.paths.append(path)
        if found.groups:
            view.newest_time = found.groups[-1].time
    newest = records[-1]
    view.newest_gtid = merged(*(str(g) for g in state))
    view.newest_file, view.newest_size = newest.file, newest.size
    view.newest_archived = clock.parse_time(newest.archived)
    view.newest_complete = newest.complete
    return view


def _from_position(archive: BinlogArchive, inv: Inventory, applied: str
                   ) -> list[BinlogRecord]:
    """The records from the newest file whose Gtid_list the standby has reached, to the
    newest archived one, without a gap (read backwards: usually one or two files)."""
    names = inv.files()
    basename = (parse_file_name(names[-1]) or ("", 0))[0]
    numbers = {p[1] for n in names if (p := parse_file_name(n)) and p[0] == basename}
    number = max(numbers)
    chosen: list[BinlogRecord] = []
    while True:
        record = archive.newest(file_name(basename, number), inv)
        if record is None:
            raise WalGap(f"binlog {file_name(basename, number)} of server "
                         f"{archive.archive_id} is not archived: the standby cannot be "
                         "brought forward past it (take a new backup and restore the "
                         "standby from it)")
        chosen.insert(0, record)
        start = _start_state(archive, record)
        if start is not None and not any(behind(start, applied).values()):
            return chosen
        if number - 1 not in numbers and any(n < number for n in numbers):
            raise WalGap(f"binlog {file_name(basename, number - 1)} of server "
                         f"{archive.archive_id} is not archived, and the standby "
                         f"({applied or 'empty'}) needs it: take a new backup and restore "
                         "the standby from it")
        if number - 1 not in numbers:
            raise WalGap(
                f"the repository's binlogs of server {archive.archive_id} start at "
                f"{record.file} (GTID {start or 'unknown'}), after the standby's "
                f"{applied or 'empty'} position: the transactions between are not "
                "archived (restore the standby again from a newer backup)")
        number -= 1


def _start_state(archive: BinlogArchive, record: BinlogRecord) -> str | None:
    """The file's Gtid_list (the GTID state before it), from its first block only."""
    if not record.blobs:
        return None
    found = scan_gtids(archive.repo.load_blob(record.blobs[0]), limit=1)
    if found.start_state is None:
        return None
    return merged(*(str(g) for g in found.start_state))


# ---- applying ----------------------------------------------------------------------------


@dataclass
class ApplyResult:
    standby: str
    """The standby's address (no password)."""
    before: str
    after: str
    transactions: int
    feed: FeedView

    def public(self) -> dict[str, Any]:
        return {"standby": self.standby, "gtid_before": self.before,
                "gtid_after": self.after, "transactions_applied": self.transactions,
                "repository": self.feed.public()}


def standby_state(conn: Conn) -> MariaNodeState:
    """The repository-fed standby's state; StandbyNotReady when it is not one (writable,
    replicating, or without the binlog that records its position)."""
    state = read_state(conn)
    if state.replicating:
        raise StandbyNotReady(f"{conn.safe()} replicates from a primary: not a "
                              "repository-fed standby")
    if not state.read_only:
        raise StandbyNotReady(f"{conn.safe()} is writable (read_only=OFF): not a standby "
                              "(promoted already?); nothing applied")
    if not state.log_bin:
        raise StandbyNotReady(f"{conn.safe()} has binary logging off, so the position it "
                              "applied is unknown: restore it with `medark mysql restore "
                              "--standby`")
    return state


def apply_new_binlogs(config: MedarkConfig, repository: str, dsn: str,
                      password: str | None = None, *, apply: bool = True,
                      bin_dir: str | None = None, timeout: float = APPLY_TIMEOUT,
                      primary: str | None = None) -> ApplyResult:
    """Apply to the standby at `dsn` every complete transaction repository `repository`
    (a key of [repositories]) holds after its applied position. Idempotent: with nothing
    new it runs nothing and reports 0. `apply=False`: only read what would be applied.
    `primary`: the archive id (server_id) of the current primary, when known: its binlogs
    are the ones applied (archive_id_for)."""
    conn = connect(dsn, password)
    state = standby_state(conn)
    before = state.gtid_binlog_pos
    repo = open_configured(config, repository)
    spool = None
    try:
        if apply:
            base = default_cache_dir() / "standby-feed"
            base.mkdir(parents=True, exist_ok=True, mode=0o700)
            spool = tempfile.mkdtemp(prefix="apply-", dir=base)
        view = read_feed(repo, before, spool,
                         archive_id_for(repo, before, state.server_id, primary))
        if not apply or not view.pending:
            return ApplyResult(conn.safe(), before, before, 0, view)
        reader_error = _replay(conn, view, bin_dir, timeout)
    finally:
        repo.close()
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
    after = read_state(conn).gtid_binlog_pos
    short = behind(view.target, after)
    if any(short.values()):
        raise CommandFailed(f"{conn.safe()} applied up to {after or 'nothing'}, short of the "
                            f"archived {view.target}"
                            + (f" (mariadb-binlog: {reader_error})" if reader_error else ""))
    return ApplyResult(conn.safe(), before, after, len(view.pending), view)


def _replay(conn: Conn, view: FeedView, bin_dir: str | None, timeout: float) -> str:
    """mariadb-binlog FILES | mariadb, behind a preamble that takes the apply lock and
    checks the position has not moved since it was read. A failed client is an error;
    mariadb-binlog's own failure is returned, for the caller to judge by the position
    reached: with a GTID start position it exits 1 ("Binary logs never reached expected
    GTID state of D-S-N") whenever a domain of that position has no later transaction,
    after printing everything else correctly (MariaDB 10.11)."""
    reader_argv = [find_program("mariadb-binlog", "mysqlbinlog", bin_dir=bin_dir),
                   "--no-defaults"]
    if view.applied:
        reader_argv.append(f"--start-position={view.applied}")
    client_argv = [find_program("mariadb", "mysql", bin_dir=bin_dir), *conn.args(),
                   f"--connect-timeout={CONNECT_TIMEOUT}", "--binary-mode", "--batch",
                   "--max-allowed-packet=1G"]
    preamble = (
        "DELIMITER //\n"
        f"IF COALESCE(GET_LOCK('{LOCK_NAME}', 0), 0) = 0 OR "
        f"@@global.gtid_binlog_pos <> '{view.applied}' THEN SIGNAL SQLSTATE '45000' SET "
        "MESSAGE_TEXT = 'medark: another apply is running or ran meanwhile'; END IF//\n"
        "DELIMITER ;\n").encode()
    env = conn.environment()
    with tempfile.TemporaryFile() as errors:
        client = subprocess.Popen(client_argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=errors, env=env)
        reader = subprocess.Popen([*reader_argv, *view.paths], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        assert client.stdin is not None and reader.stdout is not None
        assert reader.stderr is not None
        deadline = clock.monotonic() + timeout
        try:
            client.stdin.write(preamble)
            while chunk := reader.stdout.read(1 << 20):
                client.stdin.write(chunk)
                if clock.monotonic() > deadline:
                    raise CommandFailed(f"applying the archived binlogs took over "
                                        f"{timeout:g} s")
            client.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped at an error: reported below
        finally:
            reader.stdout.close()
            reader_err = reader.stderr.read().decode("utf-8", "replace")
            reader_status = reader.wait()
            if not client.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    client.stdin.close()
            try:
                status = client.wait(timeout=max(1.0, deadline - clock.monotonic()))
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
                status = -1
        errors.seek(0)
        client_err = errors.read().decode("utf-8", "replace")
    if status != 0:
        failure = classify(client_err, conn, "applying the archived binlogs")
        if isinstance(failure, DatabaseUnavailable):
            raise failure
        raise CommandFailed(f"applying the archived binlogs to {conn.safe()} failed: "
                            f"{_last(client_err)}")
    return _last(reader_err) if reader_status != 0 else ""


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["no output"])[-1][-300:]
