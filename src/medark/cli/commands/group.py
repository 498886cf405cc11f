"""`medark group backup|restore|check`: a PACS's index database and file tree as one
restorable point (docs/pacs.md).

`group backup PLAN` takes the database point first (the WAL position, then the index's
file references), then the files, and saves a group snapshot tying them together;
`group restore` brings both back to that point (the database's recovery target is the
point's LSN, never later than the files); `group check` lists index rows without files
and files without index rows, for a point in the repository or a restored pair.
On Orthanc's SQLite index (`--sqlite`, a `sqlite` source) the point is a copy of the index
taken while Orthanc is stopped, and `group restore` writes that file back. On MariaDB
(`--mariadb`, a `mariadb` source) the point is the binlog position of an InnoDB consistent
snapshot, and `group restore` replays the archived binlogs exactly to it.
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import TYPE_CHECKING, Any

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.parser import add_actions, add_new_tags, target_time
from medark.cli.plan_options import add_config_option
from medark.config import environment as env
from medark.errors import GroupIncomplete, MedarkError, PartialBackup, SourceError, UsageError
from medark.util.sizes import format_duration

if TYPE_CHECKING:
    from medark.cli.context import Context
    from medark.engine.group_backup import GroupBackupOptions

ACTIONS: dict[str, str] = {
    "backup": "capture a plan's consistency group (database point first, then the files)",
    "restore": "restore a group's database and files to the same point",
    "check": "list index rows without files and files without index rows",
}
SHOWN = 20
"""Paths printed per list in prose (--json lists every one)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    parsers = add_actions(p, ACTIONS)
    b = parsers["backup"]
    b.add_argument("plan", nargs="?", default=None,
                   help="the plan whose system holds the group (from --config); without "
                        "it, the group is given by --name, --pacs, --root and --dsn")
    b.add_argument("--group", default=None, help="which group (default: the only one)")
    add_config_option(b)
    b.add_argument("--name", default=None, help="without PLAN: the group's name")
    b.add_argument("--pacs", choices=("orthanc", "dcm4chee", "sql"), default=None,
                   help="without PLAN: how the index names its files")
    b.add_argument("--root", default=None, metavar="DIR",
                   help="without PLAN: the PACS's storage root")
    b.add_argument("--index-query", default=None, help="without PLAN, pacs sql: the query")
    add_storage_option(b, "without PLAN, pacs dcm4chee: a storage ID and its directory "
                       "inside --root (repeat per storage; the plan's `storages`)")
    b.add_argument("--dsn", default=None, help="without PLAN: the index database "
                   "(default: $MEDARK_PG_DSN; with --mariadb: $MEDARK_MYSQL_DSN)")
    b.add_argument("--mariadb", action="store_true",
                   help="without PLAN: the index is MariaDB; --dsn names its database "
                        "(mysql://user:pw@host:port/DB)")
    b.add_argument("--sqlite", default=None, metavar="FILE",
                   help="without PLAN: Orthanc's SQLite index file instead of a DSN "
                        "(copied while Orthanc is stopped)")
    b.add_argument("--stop-command", default=None, metavar="COMMAND",
                   help="with --sqlite: shell command stopping the PACS before the copy")
    b.add_argument("--start-command", default=None, metavar="COMMAND",
                   help="with --sqlite: shell command starting it again (always run)")
    add_new_tags(b)
    b.add_argument("--host", default="", help="hostname recorded in the snapshots")
    b.add_argument("--base-backup", action="store_true",
                   help="take a base backup first even when the repository holds one")
    b.add_argument("--archive-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="wait this long for the WAL (MariaDB: the binlog) up to the point "
                        "to be archived")
    r = parsers["restore"]
    r.add_argument("snapshot", nargs="?", default=None, metavar="GROUP-SNAPSHOT",
                   help="the group's point (default: the newest, or the newest at or "
                        "before --time)")
    r.add_argument("--group", default=None, help="points of this group only")
    r.add_argument("--plan", default=None, help="points taken by this plan only")
    r.add_argument("--time", metavar="TS", help="the newest point at or before this "
                   "moment (ISO 8601; without a zone: UTC)")
    r.add_argument("--target-dir", required=True, metavar="DIR",
                   help="new (or empty) directory for the database's data directory "
                        "(a point on SQLite: the directory its index file is written to)")
    r.add_argument("--files-target", required=True, metavar="DIR",
                   help="directory the files are restored under (at their absolute paths)")
    r.add_argument("--start", action="store_true",
                   help="start the restored database and wait until recovery has finished")
    r.add_argument("--port", type=int, help="port for the restored server")
    r.add_argument("--os-user", default=None,
                   help="the database's OS user, when run as root (default: postgres, "
                        "or mysql for a point on MariaDB)")
    r.add_argument("--medark-command", default=None,
                   help="how that user runs medark in restore_command")
    r.add_argument("--archive-mode-off", action="store_true",
                   help="do not archive from the restored server (a test restore)")
    r.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="with --start: how long recovery may take")
    add_access_audit_options(r)
    c = parsers["check"]
    c.add_argument("snapshot", nargs="?", default=None, metavar="GROUP-SNAPSHOT",
                   help="the group's point to check (or, with --dsn, whose kind to use)")
    c.add_argument("--dsn", default=None, help="check this index database (a restored or "
                   "live one; MariaDB: mysql://user@host:port/DB) instead of the point's "
                   "record")
    c.add_argument("--index-sqlite", default=None, metavar="FILE",
                   help="check this Orthanc SQLite index instead")
    c.add_argument("--files-root", default=None, metavar="DIR",
                   help="with --dsn / --index-sqlite: the storage root to compare with")
    c.add_argument("--pacs", choices=("orthanc", "dcm4chee", "sql"), default=None,
                   help="the index's kind (default: the point's)")
    c.add_argument("--index-query", default=None, help="pacs sql: the query of the paths")
    add_storage_option(c, "with --dsn, pacs dcm4chee: a storage ID and its directory, "
                       "inside --files-root or relative to it (default: the point's)")
    c.add_argument("--mysql-bin", default=None, metavar="DIR",
                   help="directory of the MariaDB programs (a MariaDB index)")
    for name in ("backup", "restore"):
        parsers[name].add_argument("--pg-bin", default=None, metavar="DIR",
                                   help="directory of PostgreSQL's programs")
        parsers[name].add_argument("--mysql-bin", default=None, metavar="DIR",
                                   help="directory of the MariaDB programs")


def add_storage_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--storage", action="append", default=[], metavar="ID=DIR", help=what)


def storage_map(values: list[str]) -> dict[str, str] | None:
    """--storage ID=DIR, repeated: dcm4chee's storage IDs to their directories."""
    found: dict[str, str] = {}
    for value in values:
        storage, sep, directory = value.partition("=")
        storage, directory = storage.strip(), directory.strip()
        if not sep or not storage or not directory:
            raise UsageError(f"--storage {value!r}: give ID=DIR (e.g. fs1=/storage/fs1)")
        if storage in found:
            raise UsageError(f"--storage {storage} is given twice")
        found[storage] = directory
    return found or None


def run(ctx: Context) -> int:
    handler = {"backup": _backup, "restore": _restore, "check": _check}[ctx.args.action]
    return handler(ctx)


def _backup(ctx: Context) -> int:
    from medark.cli.commands.backup import alert
    from medark.engine.group_backup import group_backup

    options = _backup_options(ctx.args)
    if options.sqlite is not None and ctx.cache_dir is not None:
        options.tmp_dir = str(ctx.cache_dir / "tmp")  # the index copy, until it is stored
    with ctx.repository(lock="shared", command="group backup") as repo:
        progress = ctx.progress("group backup")
        try:
            done = group_backup(repo, options, progress)
        finally:
            progress.close()
    summary = done.summary
    if ctx.out.as_json:
        ctx.out.json(summary)
    else:
        counts, db = summary["counts"], summary["database"]
        where = (f"database point {db['lsn']} at {db['time']} (cluster {db['system_id']})"
                 if db["kind"] == "postgres" else
                 f"database point binlog {db['binlog_file']}:{db['binlog_position']} at "
                 f"{db['time']} (server {db['archive_id']})" if db["kind"] == "mariadb" else
                 f"SQLite index {db['path']} copied at {db['time']} ({db['size']} bytes"
                 + (", the PACS stopped)" if db.get("stopped") else ")"))
        ctx.out.prose(f"group {summary['group']}: {where}, files snapshot "
                      f"{summary['files_snapshot'][:8]}")
        ctx.out.prose(f"{counts['references']} index references: {counts['referenced']} "
                      f"present, {counts['filled']} filled from the previous snapshot, "
                      f"{counts['missing'] + counts['outside']} missing; "
                      f"{counts['after_point']} files after the point (kept, marked)")
        _not_covered(ctx, summary.get("not_covered") or {})
        _paths(ctx, "filled", summary["filled"])
        ctx.out.prose(f"group snapshot {summary['snapshot_id'][:8]} saved in "
                      f"{format_duration(summary['total_duration'])}")
    verdict = done.files.verdict
    if verdict is not None and verdict.suspicious:  # the scan looks like ransomware
        raise alert(ctx, done.files.snapshot, verdict, done.files.summary, done.files.errors)
    missing = summary["missing"] + summary["outside"]
    for path in missing[:SHOWN] if not ctx.out.as_json else []:
        ctx.out.warn(f"missing: {path}")
    if summary.get("start_error"):  # the point is saved, the PACS may be down: first
        restart = SourceError(f"the point was saved, but {summary['start_error']}: the "
                              "PACS may be down, start it by hand")
        restart.in_output = ctx.out.as_json
        raise restart
    if missing:
        error = GroupIncomplete(f"{len(missing)} file(s) the index references at the point "
                                "are in neither the scan nor the previous snapshot (the "
                                "point was saved; they are listed)")
        error.in_output = ctx.out.as_json
        raise error
    if summary["files_errors"]:
        for line in summary["files_errors"][:SHOWN] if not ctx.out.as_json else []:
            ctx.out.warn(f"error: {line}")
        partial = PartialBackup(f"{len(summary['files_errors'])} file(s) of the storage "
                                "could not be read (the point was saved)")
        partial.in_output = ctx.out.as_json
        raise partial
    return 0


def _backup_options(args: argparse.Namespace) -> GroupBackupOptions:
    """From the plan's configuration, or (as the daemon runs it) from the options."""
    from medark.engine.group_backup import GroupBackupOptions
    from medark.sources.postgres.server import Dsn

    host = args.host or socket.gethostname()
    if args.sqlite and (args.dsn or args.mariadb):
        raise UsageError("--sqlite and --dsn are two different index databases: give one")
    if (args.stop_command or args.start_command) and not args.sqlite:
        raise UsageError("--stop-command and --start-command go with --sqlite (the PACS "
                         "stopped while its SQLite index is copied)")
    if bool(args.stop_command) != bool(args.start_command):
        raise UsageError("--stop-command and --start-command go together (the PACS "
                         "stopped for the copy is started again)")
    storages = storage_map(args.storage)
    if storages and (args.pacs or "dcm4chee") != "dcm4chee":
        raise UsageError("--storage goes with --pacs dcm4chee (its storage IDs)")
    if args.plan is None:
        # --sqlite wins over $MEDARK_PG_DSN (a variable the environment may carry)
        dsn = None if args.sqlite else args.dsn or (env.MYSQL_DSN.get() if args.mariadb
                                                    else env.PG_DSN.get())
        missing = [flag for flag, value in (("--name", args.name), ("--pacs", args.pacs),
                                            ("--root", args.root),
                                            ("--dsn or $MEDARK_MYSQL_DSN" if args.mariadb
                                             else "--dsn or --sqlite", dsn or args.sqlite))
                   if not value]
        if missing:
            raise UsageError(f"give a PLAN (with --config), or {', '.join(missing)}")
        return GroupBackupOptions(
            args.name, Dsn.parse(dsn) if dsn and not args.mariadb else None, args.pacs,
            args.root, args.index_query, list(args.tag), host, args.pg_bin,
            args.base_backup, args.archive_timeout, sqlite=args.sqlite,
            stop_command=args.stop_command, start_command=args.start_command,
            mariadb=dsn if args.mariadb else None, mysql_bin=args.mysql_bin,
            storages=storages)
    if args.sqlite or args.dsn or args.mariadb:
        raise UsageError("with a PLAN the index comes from its configuration: drop "
                         "--sqlite / --dsn / --mariadb")
    if storages:
        raise UsageError("with a PLAN the storages come from its files source's "
                         "`storages`: drop --storage")
    from medark.service.groups import plan_group
    from medark.service.plans import config_path, load_plans

    config = load_plans(config_path(args.config))
    group = plan_group(config, args.plan, args.group)
    records = config.systems[group.system].records  # forget keeps the legal minimum
    tags = [f"plan={group.plan}", f"system={group.system}",
            *([f"records={records}"] if records != "none" else []), *args.tag]
    database = group.database
    sqlite = database.type == "sqlite"
    mariadb = database.type == "mariadb"
    return GroupBackupOptions(
        group.name, None if sqlite or mariadb else Dsn.parse(database.dsn or ""),
        group.files.pacs or "", group.root, group.files.index_query, tags, host,
        args.pg_bin, args.base_backup, args.archive_timeout,
        sqlite=database.paths[0] if sqlite else None,
        stop_command=(args.stop_command or database.stop_command) if sqlite else None,
        start_command=(args.start_command or database.start_command) if sqlite else None,
        mariadb=(database.dsn or "") if mariadb else None, mysql_bin=args.mysql_bin,
        storages=group.files.storages)


def _not_covered(ctx: Context, counts: dict[str, int]) -> None:
    """Objects on storages the group does not map: not backed up here, not missing."""
    if counts:
        each = ", ".join(f"{storage} {n}" for storage, n in sorted(counts.items()))
        ctx.out.prose(f"{sum(counts.values())} index objects on storages this group does "
                      f"not cover (not backed up here, not counted missing): {each}")


def _paths(ctx: Context, what: str, paths: list[str]) -> None:
    for path in paths[:SHOWN]:
        ctx.out.prose(f"  {what}: {path}")
    if len(paths) > SHOWN:
        ctx.out.prose(f"  ... and {len(paths) - SHOWN} more {what} (--json lists them)")


def _restore(ctx: Context) -> int:
    from medark.engine.pg_window import Target
    from medark.service import groups, pg

    args = ctx.args
    if args.start and not args.port:
        raise UsageError("--start needs --port")
    location = ctx.location
    if "://" not in location and ":" not in location.split("/", 1)[0]:
        location = os.path.abspath(location)
    when = target_time(args.time) if args.time else None
    password_file = args.password_file or env.PASSWORD_FILE.get()
    database = pg.RestoreRequest(
        target_dir=args.target_dir, target=Target("immediate"),  # the point's LSN replaces it
        system_id=None, medark_command=args.medark_command or env.COMMAND.get()
        or pg.default_medark_command(), location=location,
        password_file=os.path.abspath(password_file) if password_file else None,
        password=ctx.repository_password(), start=args.start, port=args.port,
        os_user=args.os_user or "postgres", pg_bin=args.pg_bin,
        archive_mode_off=args.archive_mode_off, timeout=args.timeout)
    detail = {"engine": "group", "target_dir": os.path.abspath(args.target_dir),
              "files_target": os.path.abspath(args.files_target), "time": args.time,
              "group": args.group, "plan": args.plan, "snapshot": args.snapshot}
    with audited_read(ctx, "group.restore", **detail) as access, \
            ctx.repository(lock="shared", command="group restore") as repo:
        point = groups.choose_point(repo, args.snapshot, args.group, when, args.plan)
        access.snapshot(point.id)
        progress = ctx.progress("group restore")
        try:
            result = groups.restore_group(
                repo, point, groups.GroupRestoreRequest(
                    database, args.files_target, os_user=args.os_user,
                    mysql_bin=args.mysql_bin), progress)
        finally:
            progress.close()
    summary = result.pop("_summary")
    if ctx.out.as_json:
        ctx.out.json(result)
    else:
        db, files = result["database"], result["files"]
        at = result["point"]["lsn"] or result["point"].get("binlog")
        ctx.out.prose(f"group {result['group']}, point "
                      + (f"{at} " if at else "")
                      + f"at {result['point']['time']} (snapshot {result['snapshot_id'][:8]})")
        if db.get("kind") == "sqlite":
            ctx.out.prose(f"database: SQLite index {db['index']} ({db['bytes']} bytes; "
                          "give it to the PACS's user and point IndexDirectory at it)")
        else:
            ctx.out.prose(f"database: base backup {str(db['backup']['snapshot_id'])[:8]} "
                          f"to {db['target_dir']}, recovery target {db['recovery_target']}"
                          + (f", started on port {db['port']}" if db.get("started") else
                             " (start the server on it to recover, or use --start)"))
        ctx.out.prose(f"files: {files['files_restored']} restored under "
                      f"{result['files_root']}")
    summary.raise_for_problems()
    return 0


def _check(ctx: Context) -> int:
    from medark.engine.group_check import check_pair, check_point
    from medark.sources.pacs.index import place_storages

    args = ctx.args
    if args.storage and not (args.dsn or args.index_sqlite):
        raise UsageError("--storage goes with --dsn and --files-root (a point's check "
                         "uses the storages it was taken with)")
    if (args.dsn or args.index_sqlite) and not args.files_root:
        raise UsageError("--dsn / --index-sqlite need --files-root (the storage root)")
    if not (args.dsn or args.index_sqlite) and not args.snapshot:
        raise UsageError("give a group snapshot, or --dsn (or --index-sqlite) with "
                         "--files-root for a restored pair")
    point = None
    if args.snapshot:
        from medark.service.groups import choose_point

        with ctx.repository(lock="shared", command="group check") as repo:
            point = choose_point(repo, args.snapshot, None, None)
            doc = None if (args.dsn or args.index_sqlite) else check_point(repo, point)
    if args.dsn or args.index_sqlite:
        kind = args.pacs or (str(point.source["pacs"]) if point else None)
        if kind is None:
            raise UsageError("give --pacs (or a group snapshot whose kind to use)")
        mariadb = point is not None and point.source["database"].get("kind") == "mariadb"
        root = os.path.abspath(args.files_root)
        if args.storage and kind != "dcm4chee":
            raise UsageError("--storage goes with pacs dcm4chee (its storage IDs)")
        storages = storage_map(args.storage) or (
            point.source.get("storages") if point is not None and kind == "dcm4chee"
            else None)
        placed = place_storages(_references(args, kind, mariadb), storages, root)
        doc = check_pair(placed.references, root, placed.not_covered)
    assert doc is not None
    return _report(ctx, doc)


def _references(args: argparse.Namespace, kind: str, mariadb: bool) -> list[Any]:
    from medark.sources.pacs.index import read_references
    from medark.sources.pacs.sqlite_point import sqlite_index_references
    from medark.sources.postgres.server import Dsn

    root = os.path.abspath(args.files_root)
    if args.index_sqlite:
        if kind == "dcm4chee":
            raise UsageError("--index-sqlite reads an SQLite index (--pacs orthanc or sql); "
                             "dcm4chee's is not one")
        if not os.path.isfile(args.index_sqlite):
            raise UsageError(f"{args.index_sqlite}: no such index file")
        return sqlite_index_references(args.index_sqlite, kind, root, args.index_query)
    if args.dsn.startswith(("mysql://", "mariadb://")) or mariadb:
        from medark.sources.pacs.mariadb_point import Session, index_conn

        server, database = index_conn(args.dsn)
        with Session(server, database, args.mysql_bin) as session:
            return read_references(session, kind, root, args.index_query)
    with Dsn.parse(args.dsn).connect() as conn, conn.cursor() as cur:
        return read_references(cur, kind, root, args.index_query)


def _report(ctx: Context, doc: dict[str, Any]) -> int:
    rows, files = doc["rows_without_files"], doc["files_without_rows"]
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        what = (f"group snapshot {doc['snapshot_id'][:8]}" if doc["of"] == "snapshot"
                else f"the index and {doc['root']}")
        ctx.out.prose(f"{what}: {doc['references']} index rows, {doc['files']} files; "
                      f"{len(rows)} rows without files, {len(files)} files without rows")
        _not_covered(ctx, doc.get("not_covered") or {})
        _paths(ctx, "row without file", rows)
        _paths(ctx, "file without row", files)
    if rows:
        error: MedarkError = GroupIncomplete(
            f"{len(rows)} index row(s) without their file (listed above)")
        error.in_output = ctx.out.as_json
        raise error
    return 0


COMMAND = Command("group", "PACS consistency groups: index and files as one point "
                  "(backup, restore, check)", add_arguments, run)
