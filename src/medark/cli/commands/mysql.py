"""`medark mysql backup|binlog-stream|restore|status`: MariaDB/MySQL hot backup,
continuous binlog capture and point-in-time restore.

The connection comes from --dsn (or $MEDARK_MYSQL_DSN) and/or --host/--port/--user/
--socket; anything left unset comes from the MariaDB option files (~/.my.cnf), as for the
`mariadb` client. A password in the DSN reaches the MariaDB programs by environment
(MYSQL_PWD), never by argv. Times are UTC: a --time without a zone is UTC, and the tools
run with TZ=UTC.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.context import Context
from medark.cli.output import stream_backup_totals
from medark.cli.parser import add_actions, add_new_tags, target_time
from medark.config import environment as env
from medark.errors import UsageError
from medark.util.sizes import format_bytes, format_duration

if TYPE_CHECKING:
    from medark.engine.mysql_restore import Target
    from medark.sources.mysql.client import Conn

ACTIONS: dict[str, str] = {
    "backup": "take a hot backup (mariadb-backup; mariadb-dump with --logical)",
    "binlog-stream": "stream binary logs into the repository (RPO of seconds)",
    "restore": "restore a backup and replay binlogs to a time or the newest archived event"
               " (or, --backup-only, the backup as it is)",
    "status": "newest backup, newest archived binlog and its age (RPO), gaps",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    parsers = add_actions(p, ACTIONS)
    for name in ("backup", "binlog-stream"):
        c = parsers[name]
        c.add_argument("--dsn", default=None,
                       help="mysql://user:password@host:port/?socket=PATH or 'host=... "
                            "port=... user=... password=... socket=...' (default: "
                            "$MEDARK_MYSQL_DSN)")
        c.add_argument("--host", default=None, help="server host (overrides the DSN)")
        c.add_argument("--port", type=int, default=None, help="server port")
        c.add_argument("--user", default=None, help="database user")
        c.add_argument("--socket", default=None, help="server's Unix socket")
    b = parsers["backup"]
    b.add_argument("--logical", action="store_true",
                   help="mariadb-dump instead of mariadb-backup (also used when "
                        "mariadb-backup is not installed)")
    add_new_tags(b)
    b.add_argument("--hostname", default="", help="hostname recorded in the snapshot")
    s = parsers["binlog-stream"]
    s.add_argument("--spool", default=None, metavar="DIR",
                   help="local directory mariadb-binlog writes to (default: in the cache "
                        "directory); keep it across restarts")
    s.add_argument("--interval", type=float, default=0.2, metavar="SECONDS",
                   help="how often to archive what arrived (default 0.2)")
    s.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: run until stopped)")
    s.add_argument("--from-file", default=None, metavar="FILE",
                   help="first binlog file to fetch (default: after the newest archived, "
                        "else the oldest on the server)")
    s.add_argument("--replica-id", type=int, default=None,
                   help="server_id mariadb-binlog uses as a replica (unique per stream)")
    r = parsers["restore"]
    r.add_argument("--target-dir", required=True, metavar="DIR",
                   help="new (or empty) directory for the data directory")
    goal = r.add_mutually_exclusive_group(required=True)
    goal.add_argument("--time", metavar="TS", help="replay up to this moment (ISO 8601; "
                      "without a zone: UTC; binlog times have whole seconds, so "
                      "transactions in the same second are left out)")
    goal.add_argument("--position", metavar="FILE:POS",
                      help="replay up to this binlog position exactly (binlog.000012:4711, "
                           "e.g. a group point's): nothing at or after it")
    goal.add_argument("--latest", action="store_true",
                      help="replay every archived binlog event")
    goal.add_argument("--backup-only", action="store_true",
                      help="restore the newest backup as it is, replaying no binlog (the "
                           "only restore of a backup taken with binary logging off)")
    goal.add_argument("--standby", action="store_true",
                      help="a standby fed from the repository (`dr` feed = \"repository\"):"
                           " the newest physical backup plus every archived binlog, binary "
                           "logging on, read-only; `dr supervise` applies what is archived "
                           "later")
    r.add_argument("--server-id", type=int, default=None,
                   help="--standby: the standby's server_id (default: the backed-up "
                        "server's plus one)")
    r.add_argument("--start", action="store_true",
                   help="start the restored server on 127.0.0.1:PORT afterwards")
    r.add_argument("--port", type=int, help="port for the restored server")
    r.add_argument("--os-user", default="mysql",
                   help="the database's OS user, when run as root (default: mysql)")
    r.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="how long each step (prepare, replay, start) may take")
    add_access_audit_options(r)
    for name in ("restore", "status"):
        parsers[name].add_argument("--server", default=None,
                                   help="which server (UUID or server_id), when the "
                                        "repository holds several")
    for name in ("backup", "binlog-stream", "restore"):
        parsers[name].add_argument("--mysql-bin", default=None, metavar="DIR",
                                   help="directory of the MariaDB programs (default: PATH)")


def run(ctx: Context) -> int:
    handler = {"backup": _backup, "binlog-stream": _stream, "restore": _restore,
               "status": _status}[ctx.args.action]
    return handler(ctx)


def _conn(args: argparse.Namespace) -> Conn:
    from medark.sources.mysql.client import Conn

    text = args.dsn or env.MYSQL_DSN.get()
    conn = Conn.parse(text) if text else Conn()
    return conn.override(args.host, args.port, args.user, args.socket)


def _backup(ctx: Context) -> int:
    from medark.engine.mysql_backup import MysqlBackupOptions, hot_backup

    args = ctx.args
    options = MysqlBackupOptions(_conn(args), args.tag, args.hostname or socket.gethostname(),
                                 args.logical, args.mysql_bin)
    with ctx.repository(lock="shared", command="mysql backup") as repo:
        progress = ctx.progress("mysql backup")
        try:
            snapshot, summary = hot_backup(repo, options, progress, ctx.out.warn)
        finally:
            progress.close()
    if ctx.out.as_json:
        ctx.out.json({"message_type": "summary", **summary, "source": snapshot.source})
        return 0
    src = snapshot.source
    ctx.out.prose(f"{src['method']} backup of server {src['archive_id']} (MariaDB "
                  f"{src['server_version']}) {_backup_point(src)}")
    ctx.out.prose(stream_backup_totals(summary))
    ctx.out.prose(f"snapshot {snapshot.short_id} saved")
    return 0


def _backup_point(src: dict[str, Any]) -> str:
    """Where a backup sits in the binlog, in words (binary logging may have been off)."""
    if not src.get("binlog_file"):
        return "with no binlog position (binary logging was off)"
    gtid = f" (GTID {src['gtid']})" if src.get("gtid") else ""
    return f"at binlog {src['binlog_file']}:{src.get('binlog_position') or 0}{gtid}"


def _stream(ctx: Context) -> int:
    from medark.engine.mysql_binlog import BinlogArchive, BinlogStreamer
    from medark.service import mysql
    from medark.sources.mysql.client import find_program, identify
    from medark.sources.mysql.receiver import BinlogReceiver

    args = ctx.args
    conn = _conn(args)
    identity = identify(conn, args.mysql_bin)
    if not identity.log_bin:
        raise UsageError(f"binary logging is off on {conn.safe()}: set log_bin to stream")
    program = find_program("mariadb-binlog", "mysqlbinlog", bin_dir=args.mysql_bin)
    cache = ctx.cache_dir or Path(tempfile.gettempdir())
    spool = os.path.abspath(args.spool or str(cache / "binlog-stream" / identity.archive_id))
    os.makedirs(spool, mode=0o700, exist_ok=True)
    with ctx.repository(lock="shared", command="mysql binlog-stream") as repo:
        archive = BinlogArchive(repo, identity.archive_id)
        first = mysql.stream_start(conn, archive, args.from_file, args.mysql_bin,
                                   ctx.out.warn)
        receiver = BinlogReceiver(program, conn, spool, args.replica_id)
        streamer = BinlogStreamer(archive, receiver, first, args.interval, args.duration,
                                  ctx.out.warn)
        previous = signal.signal(signal.SIGTERM, lambda *_: streamer.stop.set())
        try:
            stats = streamer.run()
        except KeyboardInterrupt:
            streamer.stop.set()
            stats = streamer.stats
        finally:
            signal.signal(signal.SIGTERM, previous)
    doc = {"message_type": "binlog_stream", "server": identity.archive_id,
           "first_file": first, "files": stats.files, "versions": stats.versions,
           "newest_file": stats.newest_file, "newest_position": stats.newest_position,
           "data_added_packed": stats.bytes_added, "restarts": stats.restarts,
           "last_push": stats.last_push}
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        ctx.out.prose(f"streamed the binlogs of server {identity.archive_id} from {first}: "
                      f"{stats.files} complete file(s), {stats.versions} version(s) of the "
                      f"current one, {format_bytes(stats.bytes_added)} stored")
    return 0


def _target(args: argparse.Namespace) -> Target:
    from medark.engine.mysql_restore import Target

    if args.time:
        return Target("time", target_time(args.time))
    if args.position:
        from medark.engine.mysql_restore import parse_position

        file, position = parse_position(args.position)
        return Target("position", file=file, position=position)
    return Target("backup" if args.backup_only else "latest")


def _restore(ctx: Context) -> int:
    from medark.service import mysql

    args = ctx.args
    if args.start and not args.port:
        raise UsageError("--start needs --port")
    if args.server_id is not None and not args.standby:
        raise UsageError("--server-id belongs to --standby")
    mysql.check_user(args.os_user)
    request = mysql.RestoreRequest(args.target_dir, _target(args), args.server, args.start,
                                   args.port, args.os_user, args.mysql_bin, args.timeout,
                                   standby=args.standby, server_id=args.server_id)
    with audited_read(ctx, "db.restore", engine="mariadb",
                      target_dir=os.path.abspath(args.target_dir),
                      recovery_target=request.target.kind, time=args.time,
                      position=args.position,
                      server=args.server) as access, \
            ctx.repository(lock="shared", command="mysql restore") as repo:
        chosen = mysql.plan(repo, request)
        access.snapshot(chosen.backup.id)
        access.note(binlog_files=len(chosen.files))
        result = mysql.run_restore(repo, request, chosen)
    _print_restore(ctx, result)
    return 0


def _print_restore(ctx: Context, result: dict[str, Any]) -> None:
    if ctx.out.as_json:
        ctx.out.json(result)
        return
    backup = result["backup"]
    files = len(result["binlog_files"])
    replay = (f"and replayed {files} binlog file(s) to {result['recovery_target']}" if files
              else f"as of {result['recovery_target']}")
    ctx.out.prose(f"restored {backup['method']} backup {str(backup['snapshot_id'])[:8]} "
                  f"({backup['time']}) to {result['target_dir']} {replay} in "
                  f"{format_duration(result['restore_seconds'])}")
    standby = result.get("standby")
    if standby is not None:
        ctx.out.prose(f"standby (server_id {standby['server_id']}, read-only) at GTID "
                      f"{standby['gtid_binlog_pos'] or 'none'}: `medark dr supervise` "
                      "applies what the repository archives after it")
    if result["started"]:
        ctx.out.prose(f"server started on 127.0.0.1:{result['port']} (pid {result['pid']}, "
                      f"log: {result['server_log']})")
    else:
        ctx.out.prose(f"start it with: {result['start_command']}")


def _status(ctx: Context) -> int:
    from medark.service import mysql

    with ctx.repository(lock=None, command="mysql status") as repo:
        doc = mysql.status(repo, ctx.args.server)
    if ctx.out.as_json:
        ctx.out.json(doc)
        return 0
    nb = doc["newest_backup"]
    ctx.out.prose(f"server {doc['server']}: {doc['backups']} backup(s); newest "
                  f"{str(nb['snapshot_id'])[:8]} ({nb['method']}) at {nb['time']}, "
                  f"{_backup_point(nb)}")
    if doc["newest_binlog"]:
        ctx.out.prose(f"newest archived binlog: {doc['newest_binlog']}:"
                      f"{doc['newest_binlog_position']} at {doc['newest_binlog_archived']} "
                      f"({format_duration(doc['rpo_seconds'])} ago: the achieved RPO)")
    elif not nb["binlog_file"]:
        ctx.out.prose("no binlog archived: binary logging was off at the newest backup (set "
                      "log_bin in the server's config, then run `medark mysql binlog-stream`)")
    else:
        ctx.out.prose("no binlog archived yet (run `medark mysql binlog-stream`)")
    if doc["gaps"]:
        ctx.out.prose(f"GAPS: {', '.join(doc['gaps'])} missing from the archive")
    for w in doc["windows"]:
        if not w["binlog_from"]:
            ctx.out.prose(f"  from backup {w['snapshot_id']}: no binlog position (binary "
                          "logging was off): restore it as it is with --backup-only")
            continue
        gap = f", GAP at {w['gap_after']}" if w["gap_after"] else ""
        end = f"{w['binlog_to']}:{w['position_to']}" if w["binlog_to"] else "nothing archived"
        ctx.out.prose(f"  from backup {w['snapshot_id']}: recoverable from {w['from']} "
                      f"through {end}{gap}")
    return 0


COMMAND = Command(name="mysql", help="MariaDB/MySQL: hot backups, binlog stream, "
                  "point-in-time restore", add_arguments=add_arguments, run=run)
