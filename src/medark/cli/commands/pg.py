"""`medark pg backup|wal-push|wal-fetch|restore|status`: PostgreSQL hot backup and
point-in-time recovery.

archive_command and restore_command run as the database's OS user, from the data
directory: `medark pg wal-push %p` reads the cluster's system identifier from
global/pg_control there; `pg restore` writes a restore_command that names the repository
and a password *file*, never the password.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.context import Context
from medark.cli.output import stream_backup_totals
from medark.cli.parser import add_actions, add_new_tags, target_time
from medark.config import environment as env
from medark.errors import (
    ArchiveReadFailed,
    MedarkError,
    ObjectNotFound,
    RepositoryCorrupt,
    UsageError,
    WalGap,
)
from medark.sources.postgres.tools import find_program
from medark.sources.postgres.wal import parse_lsn
from medark.util.sizes import format_bytes, format_duration

if TYPE_CHECKING:
    from medark.engine.pg_window import Target
    from medark.service.access_audit import Access
    from medark.sources.postgres.server import Dsn

ACTIONS: dict[str, str] = {
    "backup": "take an online base backup over the replication protocol",
    "wal-push": "archive one WAL file (use as archive_command = 'medark pg wal-push %%p')",
    "wal-fetch": "restore one WAL file (restore_command; exit 1 if it is not archived)",
    "restore": "write a data directory that recovers to a time, an LSN or the newest WAL",
    "wal-stream": "stream WAL over a replication slot into the repository (RPO of seconds)",
    "check": "verify the WAL archive: every record readable, no gap in any window",
    "status": "newest backup, newest archived WAL and its age (RPO), recoverable windows",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    parsers = add_actions(p, ACTIONS)
    b = parsers["backup"]
    add_new_tags(b)
    b.add_argument("--host", default="", help="hostname recorded in the snapshot")
    b.add_argument("--archive-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="wait this long for the backup's WAL to be archived (0: do not check);"
                        " without an archive the backup streams that WAL itself")
    for name in ("push", "fetch"):
        w = parsers[f"wal-{name}"]
        w.add_argument("--system-id", default=None,
                       help="cluster's system identifier (default: read from "
                            "global/pg_control in the current directory)")
    parsers["wal-push"].add_argument("path", metavar="PATH", help="the WAL file (%%p)")
    parsers["wal-fetch"].add_argument("name", metavar="NAME", help="WAL file name (%%f)")
    parsers["wal-fetch"].add_argument("destination", metavar="PATH",
                                      help="where to write it (%%p)")
    parsers["wal-fetch"].add_argument("--spool", default=None, metavar="DIR",
                                      help="serve from the WAL `pg restore` fetched ahead "
                                           "(a miss means: not archived)")
    parsers["wal-fetch"].add_argument(
        "--standby", action="store_true",
        help="for a standby's restore_command: a failure to read the archive exits 1 "
             "(PostgreSQL retries later) instead of 126 (which stops the server)")
    s = parsers["wal-stream"]
    s.add_argument("--slot", required=True, help="physical replication slot to stream from")
    s.add_argument("--create-slot", action="store_true",
                   help="create the slot if it does not exist")
    s.add_argument("--spool", default=None, metavar="DIR",
                   help="local directory pg_receivewal writes to (default: in the cache "
                        "directory); keep it across restarts")
    s.add_argument("--interval", type=float, default=0.2, metavar="SECONDS",
                   help="how often to archive what arrived (default 0.2)")
    s.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: run until stopped)")
    s.epilog = ("With --json -v, one line per archived file gives the WAL position now "
                "durable in the repository (end_lsn) and when.")
    r = parsers["restore"]
    r.add_argument("--target-dir", required=True, metavar="DIR",
                   help="new (or empty) directory for the data directory")
    goal = r.add_mutually_exclusive_group()
    goal.add_argument("--time", metavar="TS", help="recover up to this moment (ISO 8601; "
                      "without a zone: UTC)")
    goal.add_argument("--lsn", metavar="LSN", help="recover up to this WAL position")
    goal.add_argument("--latest", action="store_true", help="recover all archived WAL")
    goal.add_argument("--backup-only", action="store_true",
                      help="recover only to the end of the base backup")
    r.add_argument("--standby", action="store_true",
                   help="a warm standby: replay all archived WAL, then keep replaying what "
                        "the repository receives until promoted (standby.signal, no "
                        "primary_conninfo); once promoted it archives into the same "
                        "repository (archive_mode on); implies --latest")
    r.add_argument("--start", action="store_true",
                   help="start the server and wait until recovery has finished and it "
                        "accepts connections (--standby: until it is consistent and "
                        "accepts read-only connections)")
    r.add_argument("--port", type=int, help="port for the restored server")
    r.add_argument("--os-user", default="postgres",
                   help="the database's OS user, when run as root (default: postgres)")
    r.add_argument("--medark-command", default=None,
                   help="how that user runs medark in restore_command (default: "
                        "$MEDARK_COMMAND or this medark)")
    r.add_argument("--archive-mode-off", action="store_true",
                   help="do not archive from the restored server (a test restore; with "
                        "--standby: not even once promoted)")
    r.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="with --start: how long recovery may take")
    add_access_audit_options(r)
    parsers["status"].add_argument(
        "--dsn", default=None,
        help="also report the replication slots' lag on this server (default: "
             "$MEDARK_PG_DSN if set)")
    for name in ("backup", "wal-stream"):
        parsers[name].add_argument("--dsn", default=None,
                                   help="libpq connection string or URI (default: "
                                        "$MEDARK_PG_DSN); a password in it is passed to "
                                        "PostgreSQL's programs by environment")
    for name in ("backup", "restore", "wal-stream"):
        parsers[name].add_argument("--pg-bin", default=None, metavar="DIR",
                                   help="directory of PostgreSQL's programs")
    parsers["check"].add_argument("--read-data", action="store_true",
                                  help="also read every archived WAL file and check its hash")
    for name in ("restore", "status", "check"):
        parsers[name].add_argument("--system-id", default=None,
                                   help="which cluster, when the repository holds several")


def run(ctx: Context) -> int:
    action: str = ctx.args.action
    handler = {"backup": _backup, "wal-push": _wal_push, "wal-fetch": _wal_fetch,
               "wal-stream": _wal_stream, "restore": _restore, "status": _status,
               "check": _check}[action]
    return handler(ctx)


def _dsn(args: argparse.Namespace) -> Dsn:
    from medark.sources.postgres.server import Dsn

    text = args.dsn or env.PG_DSN.get()
    if not text:
        raise UsageError("no database given: use --dsn or set MEDARK_PG_DSN")
    return Dsn.parse(text)


def _backup(ctx: Context) -> int:
    from medark.engine.pg_backup import PgBackupOptions, base_backup

    args = ctx.args
    options = PgBackupOptions(_dsn(args), args.tag, args.host or socket.gethostname(),
                              args.pg_bin, args.archive_timeout)
    with ctx.repository(lock="shared", command="pg backup") as repo:
        progress = ctx.progress("pg backup")
        try:
            snapshot, summary = base_backup(repo, options, progress)
        finally:
            progress.close()
    doc = {"message_type": "summary", **summary, "source": snapshot.source}
    doc["source"] = {k: v for k, v in snapshot.source.items() if k != "backup_label"}
    if ctx.out.as_json:
        ctx.out.json(doc)
        return 0
    src = snapshot.source
    ctx.out.prose(f"base backup of cluster {src['system_id']} (PostgreSQL "
                  f"{src['server_version']}), WAL {src['start_lsn']} .. {src['stop_lsn']} "
                  f"on timeline {src['timeline']}")
    ctx.out.prose(stream_backup_totals(summary))
    ctx.out.prose(f"snapshot {snapshot.short_id} saved")
    notes = summary.get("notes")
    for note in notes if isinstance(notes, list) else []:
        ctx.out.prose(f"note: {note}")
    return 0


def _system_id(ctx: Context) -> str:
    from medark.service import pg

    return str(ctx.args.system_id) if ctx.args.system_id else pg.system_id_of(os.getcwd())


def _wal_push(ctx: Context) -> int:
    from medark.service import pg

    system_id = _system_id(ctx)
    with ctx.repository(lock="shared", command="pg wal-push") as repo:
        doc = pg.wal_push(repo, ctx.args.path, system_id)
    if ctx.out.as_json:
        ctx.out.json(doc)
    elif ctx.args.verbose:
        state = "archived" if doc["stored"] else "already archived (identical)"
        ctx.out.prose(f"{doc['file']}: {state}")
    return 0


def _wal_fetch(ctx: Context) -> int:
    """Exit 1: not archived (PostgreSQL's end of recovery). Any failure to read the
    archive: exit 126, so PostgreSQL stops instead of promoting early (--standby: exit 1,
    a standby retries and never promotes on its own)."""
    try:
        return _fetch(ctx)
    except ObjectNotFound:
        if ctx.args.standby:  # a standby asks every wal_retrieve_retry_interval: no log line
            return 1
        raise
    except ArchiveReadFailed as exc:
        if not ctx.args.standby:
            raise
        # A standby never ends recovery on a missing file: "not available yet" (exit 1)
        # lets it retry, where 126 would stop it over a passing network failure.
        raise MedarkError(f"{exc}; the standby retries") from None


def _fetch(ctx: Context) -> int:
    from medark.service import pg

    if ctx.args.spool:
        # The spool holds everything archived when `pg restore` ran: a miss is the end of
        # the archive, and the repository (perhaps unreadable to this user) is not opened.
        if pg.fetch_from_spool(ctx.args.spool, ctx.args.name, ctx.args.destination):
            return 0
        raise ObjectNotFound(f"{ctx.args.name} is not in the archive (as of the restore)")
    try:
        system_id = _system_id(ctx)
        with ctx.repository(lock=None, command="pg wal-fetch") as repo:
            record = pg.wal_fetch(repo, ctx.args.name, ctx.args.destination, system_id)
    except UsageError:
        raise
    except MedarkError as exc:
        raise ArchiveReadFailed(f"cannot fetch {ctx.args.name}: {exc}") from None
    if record is None:
        raise ObjectNotFound(f"{ctx.args.name} is not in the archive")
    if ctx.out.as_json:
        ctx.out.json({"message_type": "wal_fetched", "file": ctx.args.name,
                      "served": record.name, "bytes": record.size})
    return 0


def _wal_stream(ctx: Context) -> int:
    from medark.engine.pg_stream import StreamOptions, WalStreamer, create_slot
    from medark.engine.pg_wal import WalArchive
    from medark.service.session import locked
    from medark.sources.postgres.server import identify, require_slot

    args = ctx.args
    dsn = _dsn(args)
    identity = identify(dsn)
    if args.create_slot and create_slot(dsn, args.slot):
        ctx.out.warn(f"created replication slot {args.slot!r}")
    require_slot(dsn, args.slot)
    cache = ctx.cache_dir
    spool = args.spool or str((cache or Path(tempfile.gettempdir())) / "wal-stream"
                              / identity.system_id / args.slot)
    receivewal = find_program("pg_receivewal", identity.version_num // 10000, args.pg_bin)
    events = ctx.out.json if ctx.out.as_json and args.verbose else None
    options = StreamOptions(dsn, args.slot, spool, receivewal, args.interval, args.duration,
                            identity.segment_size, events)
    with ctx.repository(lock=None, command="pg wal-stream") as repo:

        @contextmanager
        def sweep_lock() -> Iterator[None]:
            # Between sweeps a prune may have replaced index files and deleted packs:
            # refresh the index inside the lock before deduplicating against it.
            with locked(repo, False, "pg wal-stream", ctx.out.warn):
                repo.sync_index()
                yield

        streamer = WalStreamer(WalArchive(repo, identity.system_id), options, ctx.out.warn,
                               sweep_lock)
        previous = signal.signal(signal.SIGTERM, lambda *_: streamer.stop.set())
        try:
            stats = streamer.run()
        except KeyboardInterrupt:
            streamer.stop.set()
            stats = streamer.stats
        finally:
            signal.signal(signal.SIGTERM, previous)
    doc = {"message_type": "wal_stream", "system_id": identity.system_id, "slot": args.slot,
           "segments": stats.segments, "partial_versions": stats.partial_versions,
           "histories": stats.histories, "data_added_packed": stats.bytes_added,
           "restarts": stats.restarts, "last_push": stats.last_push}
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        ctx.out.prose(f"streamed WAL of cluster {identity.system_id} from slot {args.slot!r}: "
                      f"{stats.segments} segment(s), {stats.partial_versions} partial "
                      f"version(s), {format_bytes(stats.bytes_added)} stored")
    return 0


def _target(args: argparse.Namespace) -> Target:
    from medark.engine.pg_window import Target

    if args.time:
        return Target("time", time=target_time(args.time))
    if args.lsn:
        return Target("lsn", lsn=parse_lsn(args.lsn))
    return Target("immediate" if args.backup_only else "latest")


def _restore(ctx: Context) -> int:
    args = ctx.args
    if args.start and not args.port:
        raise UsageError("--start needs --port")
    if args.standby and (args.time or args.lsn or args.backup_only):
        raise UsageError("--standby replays the newest WAL: it takes no --time, --lsn or "
                         "--backup-only")
    if not (args.standby or args.time or args.lsn or args.latest or args.backup_only):
        raise UsageError("give a recovery target: --time, --lsn, --latest or --backup-only "
                         "(or --standby)")
    target = _target(args)
    location = ctx.location
    if "://" not in location and ":" not in location.split("/", 1)[0]:
        location = os.path.abspath(location)
    detail = {"engine": "postgresql", "target_dir": os.path.abspath(args.target_dir),
              "recovery_target": "standby" if args.standby else target.kind,
              "time": args.time, "lsn": args.lsn, "system_id": args.system_id}
    with audited_read(ctx, "db.restore", **detail) as access:
        result = _restore_audited(ctx, target, location, access)
    _print_restore(ctx, result)
    return 0


def _restore_audited(ctx: Context, target: Target, location: str, access: Access
                     ) -> dict[str, Any]:
    from medark.service import pg

    args = ctx.args
    password = ctx.repository_password()
    password_file = args.password_file or env.PASSWORD_FILE.get()
    request = pg.RestoreRequest(
        target_dir=args.target_dir, target=target, system_id=args.system_id,
        medark_command=args.medark_command or env.COMMAND.get()
        or pg.default_medark_command(),
        location=location,
        password_file=os.path.abspath(password_file) if password_file else None,
        password=password, start=args.start, port=args.port, os_user=args.os_user,
        pg_bin=args.pg_bin, archive_mode_off=args.archive_mode_off, timeout=args.timeout,
        standby=args.standby)
    with ctx.repository(lock="shared", command="pg restore") as repo:
        chosen, system = pg.plan_restore(repo, request)
        access.snapshot(chosen.id)
        access.note(system_id=system)
        return pg.run_restore(repo, request, chosen)


def _print_restore(ctx: Context, result: dict[str, Any]) -> None:
    if ctx.out.as_json:
        ctx.out.json(result)
        return
    backup = result["backup"]
    ctx.out.prose(f"restored base backup {str(backup['snapshot_id'])[:8]} "
                  f"({backup['time']}, {result['files']} files) to {result['target_dir']} "
                  f"in {format_duration(result['restore_seconds'])}")
    ctx.out.prose(f"recovery target: {result['recovery_target']}")
    for note in result["notes"]:
        ctx.out.prose(f"note: {note}")
    if result.get("started") and result.get("standby"):
        ctx.out.prose(f"standby started on port {result['port']}: consistent, accepting "
                      f"read-only connections after {format_duration(result['ready_seconds'])}"
                      f", replaying from the repository (log: {result['server_log']})")
    elif result.get("started"):
        ctx.out.prose(f"server started on port {result['port']}: recovery finished, accepting "
                      f"connections after {format_duration(result['ready_seconds'])} "
                      f"(log: {result['server_log']})")
    elif result.get("standby"):
        ctx.out.prose("start the server on it: it replays from the repository as a standby")
    else:
        ctx.out.prose("start the server on it to recover (or use --start)")


def _status(ctx: Context) -> int:
    from medark.service import pg
    from medark.sources.postgres.server import Dsn, slot_lag

    with ctx.repository(lock=None, command="pg status") as repo:
        doc = pg.status(repo, ctx.args.system_id)
    dsn_text = ctx.args.dsn or env.PG_DSN.get()
    if dsn_text:
        doc["slots"] = slot_lag(Dsn.parse(dsn_text))
    if ctx.out.as_json:
        ctx.out.json(doc)
        return 0
    nb = doc["newest_backup"]
    ctx.out.prose(f"cluster {doc['system_id']}: {doc['backups']} base backup(s); newest "
                  f"{str(nb['snapshot_id'])[:8]} at {nb['time']} (WAL {nb['start_lsn']}"
                  f"..{nb['stop_lsn']})")
    if doc["newest_wal"]:
        ctx.out.prose(f"newest archived WAL: {doc['newest_wal']} at "
                      f"{doc['newest_wal_archived']} ({format_duration(doc['rpo_seconds'])} "
                      "ago: the achieved RPO)")
    else:
        ctx.out.prose("no WAL archived yet")
    for slot in doc.get("slots", []):
        state = "streaming" if slot["active"] else "NOT streaming"
        lag = "?" if slot["lag_bytes"] is None else format_bytes(int(slot["lag_bytes"]))
        ctx.out.prose(f"slot {slot['slot']}: {state}, {lag} of WAL held for it")
    for window in doc["windows"]:
        gap = f", GAP after segment {window['gap_after']}" if window["gap_after"] else ""
        ctx.out.prose(f"  from backup {window['snapshot_id']}: recoverable from "
                      f"{window['from']} through WAL segment {window['wal_to']}{gap}")
    return 0


def _check(ctx: Context) -> int:
    from medark.service import pg

    with ctx.repository(lock="shared", command="pg check") as repo:
        doc = pg.check(repo, ctx.args.system_id, ctx.args.read_data)
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        what = "read and verified" if doc["read_data"] else "verified"
        ctx.out.prose(f"cluster {doc['system_id']}: {doc['records']} WAL records {what}, "
                      f"{len(doc['damaged'])} damaged, {len(doc['gaps'])} gap(s)")
        for line in doc["damaged"]:
            ctx.out.warn(f"damaged: {line}")
        for window in doc["windows"]:
            if window["gap_after"]:
                ctx.out.warn(f"gap: after segment {window['wal_to']} (window of backup "
                             f"{window['snapshot_id']} ends there)")
    if doc["damaged"]:
        error: MedarkError = RepositoryCorrupt(
            f"{len(doc['damaged'])} WAL record(s) damaged (listed above)")
    elif doc["gaps"]:
        error = WalGap(f"the WAL archive has {len(doc['gaps'])} gap(s): recovery cannot pass "
                       "them (listed above)")
    else:
        return 0
    error.in_output = ctx.out.as_json
    raise error


COMMAND = Command(name="pg", help="PostgreSQL: base backups, WAL archive, point-in-time "
                  "restore", add_arguments=add_arguments, run=run)
