"""Consistency groups as the CLI uses them (docs/pacs.md): a plan's group from the
configuration, the group point a restore wants, and the restore of both stores to it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medark.config.groups import groups_of
from medark.config.plans import MedarkConfig, Source
from medark.engine.group_tree import database_file, files_tree, group_snapshots
from medark.engine.pg_window import Target
from medark.engine.restore import RestoreOptions, restore
from medark.errors import IntegrityError, ObjectNotFound, TargetOutOfRange, UsageError
from medark.repo.repository import Repository
from medark.service import pg
from medark.snapshot.model import Snapshot
from medark.snapshot.store import SnapshotRepo, all_snapshots, find_snapshot
from medark.sources.pacs.sqlite_point import SIDE_FILES
from medark.sources.postgres.wal import parse_lsn
from medark.util import clock
from medark.util.progress import Progress


@dataclass(frozen=True)
class PlanGroup:
    plan: str
    system: str
    name: str
    database: Source
    files: Source

    @property
    def root(self) -> str:
        return self.files.paths[0]


def plan_group(config: MedarkConfig, plan: str, name: str | None) -> PlanGroup:
    """The plan's group `name` (or its only group)."""
    if plan not in config.plans:
        raise UsageError(f"no plan named {plan!r} (defined: {', '.join(sorted(config.plans))})")
    system = config.plans[plan].system
    sources = config.systems[system].sources
    groups = groups_of(sources)
    if not groups:
        raise UsageError(f"system {system!r} of plan {plan!r} has no consistency group "
                         "(set group = \"NAME\" on its database and files sources)")
    if name is None and len(groups) > 1:
        raise UsageError(f"system {system!r} has several groups "
                         f"({', '.join(g.name for g in groups)}): choose one with --group")
    chosen = next((g for g in groups if name is None or g.name == name), None)
    if chosen is None:
        raise UsageError(f"system {system!r} has no group {name!r} (groups: "
                         f"{', '.join(g.name for g in groups)})")
    return PlanGroup(plan, system, chosen.name, sources[chosen.database],
                     sources[chosen.files])


def choose_point(repo: Repository, ref: str | None, name: str | None,
                 time: datetime | None, plan: str | None = None) -> Snapshot:
    """A group snapshot by id (or `latest`), else the newest point of group `name` (of
    plan `plan`) at or before `time` (the newest without a time)."""
    if ref is not None and ref != "latest":
        snap = find_snapshot(repo, ref)
        if snap.source.get("kind") != "group":
            raise UsageError(f"snapshot {snap.short_id} is not a consistency group's point "
                             "(`medark snapshots --tag group` lists them)")
        return snap
    points = [p for p in group_snapshots(all_snapshots(repo), name)
              if plan is None or f"plan={plan}" in p.tags]
    if not points:
        raise ObjectNotFound(f"no point of group {name!r} in the repository (take one with "
                             "`medark group backup`)" if name else
                             "no consistency group's point in the repository")
    if time is not None:
        oldest = min(point_time(p) for p in points)
        points = [p for p in points if point_time(p) <= time]
        if not points:
            raise TargetOutOfRange(f"no point of the group at or before "
                                   f"{clock.format_time(time)}: the oldest is at "
                                   f"{clock.format_time(oldest)}")
    return max(points, key=point_time)


def point_time(snap: Snapshot) -> datetime:
    return clock.parse_time(str(snap.source["database"]["time"]))


@dataclass
class GroupRestoreRequest:
    database: pg.RestoreRequest
    """The target directory, --start, port and timeout for any kind of point."""
    files_target: str
    workers: int = 0
    os_user: str | None = None
    """As given (None: postgres, or mysql for a point on MariaDB)."""
    mysql_bin: str | None = None


def restore_group(repo: Repository, point: Snapshot, request: GroupRestoreRequest,
                  progress: Progress) -> dict[str, Any]:
    """The database to the point's LSN (never later than the files), or the copy of
    its SQLite index; then the files as the point holds them (the scan with the filled
    files)."""
    record = point.source
    database = record["database"]
    if database.get("kind") == "sqlite":
        if request.database.start:
            raise UsageError("this point's index is Orthanc's SQLite file: there is no "
                             "server to start (drop --start; start Orthanc on the "
                             "restored index and files)")
        db = write_index(repo, point, request.database.target_dir)
    elif database.get("kind") == "mariadb":
        db = _restore_mariadb(repo, database, request)
    else:
        lsn = parse_lsn(str(database["lsn"]))
        request.database.target = Target("lsn", lsn=lsn)
        request.database.system_id = str(database["system_id"])
        chosen, _system = pg.plan_restore(repo, request.database)
        db = pg.run_restore(repo, request.database, chosen)
    files = Snapshot(time=point.time, tree=files_tree(repo, point.tree),
                     paths=[str(record["root"])], hostname=point.hostname, id=point.id)
    target = os.path.abspath(request.files_target)
    summary = restore(repo, files, RestoreOptions(target=target, workers=request.workers),
                      progress)
    return {"message_type": "group_restore", "group": record["group"],
            "snapshot_id": point.id, "point": {"lsn": database.get("lsn"),
                                               "binlog": _binlog(database),
                                               "time": database["time"]},
            "database": db, "files": summary.public(), "counts": record["counts"],
            "files_root": os.path.join(target, str(record["root"]).lstrip("/")),
            "_summary": summary}


def _binlog(database: dict[str, Any]) -> str | None:
    if database.get("kind") != "mariadb":
        return None
    return f"{database['binlog_file']}:{database['binlog_position']}"


def _restore_mariadb(repo: Repository, database: dict[str, Any],
                     request: GroupRestoreRequest) -> dict[str, Any]:
    """The newest backup of the server at or before the point's binlog position, and the
    archived binlogs replayed exactly up to it (service/mysql.py)."""
    from medark.engine.mysql_restore import Target as MysqlTarget
    from medark.service import mysql

    given = request.database
    os_user = request.os_user or "mysql"
    mysql.check_user(os_user)
    target = MysqlTarget("position", file=str(database["binlog_file"]),
                         position=int(database["binlog_position"]))
    wanted = mysql.RestoreRequest(given.target_dir, target, str(database["archive_id"]),
                                  given.start, given.port, os_user, request.mysql_bin,
                                  given.timeout)
    chosen = mysql.plan(repo, wanted)
    return {"kind": "mariadb", **mysql.run_restore(repo, wanted, chosen)}


def write_index(repo: SnapshotRepo, point: Snapshot, target_dir: str) -> dict[str, Any]:
    """The point's copy of its SQLite index into `target_dir` under the index's own name:
    written beside as a temporary file, synced, then renamed (mode 0600: patient data).
    An index (or a -wal, -shm, -journal of one) already there is never replaced: SQLite
    would replay a stale -wal onto the restored file."""
    node = database_file(repo, point.tree)
    directory = os.path.abspath(target_dir)
    target = os.path.join(directory, node.name)
    for path in (target, *(target + suffix for suffix in SIDE_FILES)):
        if os.path.lexists(path):
            raise UsageError(f"{path} already exists: restore the index into another "
                             "--target-dir, or move it away first")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{node.name}.", dir=directory)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            for blob in node.content:  # one chunk at a time: an index of gigabytes
                data = repo.load_blob(blob)
                out.write(data)
                size += len(data)
            out.flush()
            os.fsync(out.fileno())
        if size != node.size:
            raise IntegrityError(f"the point's index copy holds {size} bytes, its tree "
                                 f"records {node.size}")
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {"kind": "sqlite", "index": target, "bytes": size,
            "source_path": point.source["database"].get("path")}
