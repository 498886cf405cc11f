"""MariaDB/MySQL use cases shared by the CLI and (later) the API: where a binlog stream
starts, restoring to a target, and the recoverable window.

Restore replays (privately, see sources.mysql.server): the target directory ends up
cleanly shut down at the target, with its own option file. With the 'backup' target
(`--backup-only`, the only restore of a backup taken with binary logging off) nothing is
replayed: the backup as it is. `start` then starts it on
127.0.0.1:`port` with grants enforced; without it, start it yourself with
`mariadbd --defaults-file=<dir>/medark-server.cnf` (as the mysql OS user).

Physical backups: extract the xbstream (mbstream -x), `mariadb-backup --prepare`, replay.
Logical backups: a fresh data directory (mariadb-install-db), load the dump, replay.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from medark.engine.mysql_binlog import BinlogArchive
from medark.engine.mysql_restore import (
    Plan,
    Target,
    chain_from,
    describe_backup,
    fetch_binlogs,
    mysql_backups,
    newest_archived,
    plan_restore,
    stop_time,
    stored_stream,
)
from medark.engine.pg_restore import prepare_target
from medark.errors import ObjectNotFound, UsageError
from medark.repo.repository import Repository
from medark.service.mysql_standby import applied_position, seed_position, standby_settings
from medark.snapshot.store import all_snapshots
from medark.sources.mysql.binlog import file_name, parse_file_name
from medark.sources.mysql.client import Conn, find_program, query
from medark.sources.mysql.server import (
    CONFIG,
    RestoreServer,
    backup_settings,
    feed,
    run,
    run_as,
    write_config,
)
from medark.sources.mysql.xbstream import XbstreamGuard
from medark.util import clock
from medark.util.files import chown_tree


def stream_start(conn: Conn, archive: BinlogArchive, explicit: str | None,
                 bin_dir: str | None, warn: Callable[[str], None]) -> str:
    """The binlog file a new stream asks for first: the one after the newest complete
    archived file (or the one being written), else the oldest the server still has."""
    if explicit:
        if parse_file_name(explicit) is None:
            raise UsageError(f"--from-file {explicit!r} is not a binlog file name")
        return explicit
    on_server = [row[0] for row in query(conn, "SHOW BINARY LOGS", bin_dir) if row]
    if not on_server:
        raise UsageError(f"{conn.safe()} lists no binary logs: is log_bin on?")
    inv = archive.inventory()
    files = inv.files()
    if not files:
        return on_server[0]
    newest = files[-1]
    parsed = parse_file_name(newest)
    assert parsed is not None
    wanted = file_name(parsed[0], parsed[1] + 1) if newest in inv.complete else newest
    if wanted in on_server:
        return wanted
    if wanted == file_name(parsed[0], parsed[1] + 1) and on_server[-1] == newest:
        return newest
    warn(f"{wanted} is no longer on the server (purged?): streaming from {on_server[0]}; "
         "the archive has a gap there, take a new backup")
    return on_server[0]


# ---- restore ---------------------------------------------------------------------------


@dataclass
class RestoreRequest:
    target_dir: str
    target: Target
    archive_id: str | None
    start: bool = False
    port: int | None = None
    os_user: str | None = "mysql"
    bin_dir: str | None = None
    timeout: float = 3600.0
    workers: int = 2
    standby: bool = False
    """A repository-fed standby (service/mysql_standby.py): binlog on, read-only, its
    applied GTID position in its own binlog."""
    server_id: int | None = None
    """The standby's server_id; default the backed-up server's plus one."""


def plan(repo: Repository, request: RestoreRequest) -> Plan:
    return plan_restore(repo, request.target, request.archive_id)


def _program(request: RestoreRequest, *names: str) -> str:
    return find_program(*names, bin_dir=request.bin_dir)


def run_restore(repo: Repository, request: RestoreRequest, chosen: Plan) -> dict[str, Any]:
    t0 = clock.monotonic()
    programs = {
        "client": _program(request, "mariadb", "mysql"),
        "server": _program(request, "mariadbd", "mysqld"),
        "admin": _program(request, "mariadb-admin", "mysqladmin"),
    }
    if chosen.files:
        programs["binlog"] = _program(request, "mariadb-binlog", "mysqlbinlog")
    physical = chosen.backup.source.get("method") == "physical"
    if request.standby and not physical:
        raise UsageError(f"mysql restore --standby needs a physical backup (mariadb-backup); "
                         f"the newest, {chosen.backup.short_id}, is logical")
    if physical:
        programs["mbstream"] = _program(request, "mbstream")
        programs["backup"] = _program(request, "mariadb-backup")
    else:
        programs["install"] = _program(request, "mariadb-install-db", "mysql_install_db")
    target_dir = prepare_target(request.target_dir)
    user = request.os_user if os.geteuid() == 0 else None
    spool = target_dir.rstrip("/") + ".medark-binlog"
    with ThreadPoolExecutor(max_workers=request.workers, thread_name_prefix="mysql-restore"
                            ) as pool:
        if physical:
            guard = XbstreamGuard(stored_stream(repo, chosen.backup, pool))
            feed([programs["mbstream"], "-x", "-C", target_dir], guard, "mbstream -x")
            guard.check()  # an unsafe name ends the stream: refuse before going on
            run([programs["backup"], "--no-defaults", "--prepare",
                 f"--target-dir={target_dir}"], "mariadb-backup --prepare", request.timeout)
            with open(os.path.join(target_dir, "backup-my.cnf"), encoding="utf-8") as f:
                settings = backup_settings(f.read())
        else:
            argv = [programs["install"], "--no-defaults", f"--datadir={target_dir}",
                    "--auth-root-authentication-method=socket", "--skip-test-db"]
            run(argv + ([f"--user={user}"] if user else []), "mariadb-install-db",
                request.timeout)
            settings = []
        paths = fetch_binlogs(repo, chosen, spool) if chosen.files else []
        if request.standby:
            settings = settings + standby_settings(_standby_id(request, chosen))
        write_config(target_dir, settings, request.port)
        if user:
            chown_tree(target_dir, user)
        applied: str | None = None
        # a prepared physical backup alone needs no server yet, unless a standby's
        # position is to be seeded
        if paths or not physical or request.standby:
            server = RestoreServer(programs["server"], programs["admin"], target_dir, user)
            server.start(private=True, timeout=request.timeout)
            try:
                if request.standby:
                    seed_position(server, programs["client"],
                                  str(chosen.backup.source.get("gtid") or "") or None)
                if not physical:
                    server.load(programs["client"], stored_stream(repo, chosen.backup, pool),
                                "loading the dump")
                if paths:
                    server.replay(programs["binlog"], programs["client"], paths,
                                  chosen.start_position, chosen.stop, request.timeout)
            finally:
                server.stop()
        if request.standby:
            applied = applied_position(target_dir)
    shutil.rmtree(spool, ignore_errors=True)
    config = os.path.join(target_dir, CONFIG)
    result: dict[str, Any] = {
        "message_type": "mysql_restore", "target_dir": target_dir,
        "backup": describe_backup(chosen.backup), "recovery_target": request.target.describe(),
        "stop_datetime_utc": chosen.stop, "binlog_files": [r.file for r in chosen.files],
        "config": config, "restore_seconds": round(clock.monotonic() - t0, 3),
        "start_command": f"mariadbd --defaults-file={config}"
                         + (f" (as the OS user {user})" if user else ""),
        "started": False,
    }
    if request.standby:
        result["standby"] = {"server_id": _standby_id(request, chosen), "read_only": True,
                             "gtid_binlog_pos": applied}
    if request.start:
        if request.port is None:
            raise UsageError("--start needs --port")
        final = RestoreServer(programs["server"], programs["admin"], target_dir, user)
        final.start(private=False, timeout=request.timeout)
        result.update(started=True, port=request.port, pid=final.pid, server_log=final.log,
                      socket=final.socket, ready_seconds=round(clock.monotonic() - t0, 3))
    return result


def _standby_id(request: RestoreRequest, chosen: Plan) -> int:
    if request.server_id is not None:
        return request.server_id
    return int(chosen.archive_id) + 1 if chosen.archive_id.isdigit() else 2


def check_user(user: str | None) -> None:
    if user and os.geteuid() == 0:
        try:
            run_as(user)
        except KeyError:
            raise UsageError(f"no OS user {user!r} to run the restored server as "
                             "(--os-user)") from None


# ---- status ----------------------------------------------------------------------------


def status(repo: Repository, archive_id: str | None) -> dict[str, Any]:
    backups = mysql_backups(all_snapshots(repo), archive_id)
    if not backups:
        raise ObjectNotFound("no MariaDB/MySQL backup in the repository")
    archive_id = str(backups[-1].source["archive_id"])
    archive = BinlogArchive(repo, archive_id)
    inv = archive.inventory()
    newest = newest_archived(archive, inv)
    windows = []
    for backup in backups:
        first = backup.source.get("binlog_file")
        chain = chain_from(archive, inv, str(first)) if first else None
        last = chain.records[-1] if chain and chain.records else None
        windows.append({
            "snapshot_id": backup.short_id, "backup_time": clock.format_time(backup.time),
            "from": clock.format_time(stop_time(backup)), "binlog_from": first,
            "binlog_to": last.file if last else None,
            "position_to": last.size if last else None,
            "gap_after": chain.gap_at if chain else None,
            "recoverable": bool(last),
        })
    archived = clock.parse_time(newest.archived) if newest else None
    return {
        "message_type": "mysql_status", "server": archive_id,
        "newest_backup": describe_backup(backups[-1]), "backups": len(backups),
        "newest_binlog": newest.file if newest else None,
        "newest_binlog_position": newest.size if newest else None,
        "newest_binlog_complete": newest.complete if newest else None,
        "newest_binlog_archived": clock.format_time(archived) if archived else None,
        "rpo_seconds": round((clock.now() - archived).total_seconds(), 1) if archived
        else None,
        "binlog_files": len(inv.files()), "gaps": _gaps(inv.files()), "windows": windows,
    }


def _gaps(files: list[str]) -> list[str]:
    """Files missing between the oldest and the newest archived one."""
    numbers: dict[str, set[int]] = {}
    for name in files:
        parsed = parse_file_name(name)
        if parsed:
            numbers.setdefault(parsed[0], set()).add(parsed[1])
    return [file_name(base, n) for base, present in sorted(numbers.items())
            for n in range(min(present), max(present) + 1) if n not in present]
