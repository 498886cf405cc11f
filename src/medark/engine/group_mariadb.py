"""A consistency group's database point on MariaDB (docs/pacs.md, "A group on MariaDB"):
phases 1 to 3 of engine/group_backup.py.

1. base backup: `mysql backup` (mariadb-backup) when the repository holds no backup of
   the server yet (or one is asked for);
2. the point: an InnoDB consistent snapshot, its binlog position and the index's file
   references in it (sources/pacs/mariadb_point.py), then FLUSH BINARY LOGS;
3. wait until the repository's binlog archive (fed by `mysql binlog-stream`) holds the
   point's file up to the point's offset.

A point restores from the newest backup of its server whose binlog coordinates are at or
before the point's, and the archived binlogs from that backup's file to the point's
(`point_base`: group restore, forget and copy choose it by the same rule)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from medark.engine.mysql_backup import MysqlBackupOptions, hot_backup
from medark.engine.mysql_binlog import BinlogArchive
from medark.engine.mysql_restore import backup_before, mysql_backups
from medark.errors import SourceError, WalGap
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots
from medark.sources.mysql.client import identify
from medark.sources.pacs.index import Placed, place_storages
from medark.sources.pacs.mariadb_point import index_conn, take_mariadb_point
from medark.util import clock
from medark.util.progress import Progress


def mariadb_point(repo: Repository, dsn: str, pacs: str, root: str, query: str | None,
                  tags: list[str], host: str, bin_dir: str | None, base: bool,
                  timeout: float, progress: Progress,
                  storages: Mapping[str, str] | None = None
                  ) -> tuple[Placed, dict[str, Any]]:
    """Phases 1 to 3; the references placed by `storages` (dcm4chee: a storage ID to its
    directory, index.place_storages) and the record's `database` document. Several
    storages without a map are refused before the wait, as on PostgreSQL."""
    conn, database = index_conn(dsn)
    identity = identify(conn, bin_dir)
    if not identity.log_bin:
        raise SourceError(f"binary logging is off on {conn.safe()}: a MariaDB group's "
                          "point is a binlog position (set log_bin and run `medark mysql "
                          "binlog-stream`)")
    base_id = None
    if base or not mysql_backups(all_snapshots(repo), identity.archive_id):
        backup, _summary = hot_backup(repo, MysqlBackupOptions(conn, tags, host,
                                                               bin_dir=bin_dir),
                                      progress, progress.warn)
        base_id = backup.id
    point = take_mariadb_point(conn, database, pacs, root, query, bin_dir)
    placed = place_storages(point.references, storages, root)  # refused before the wait
    if not point.flushed:
        progress.warn(f"FLUSH BINARY LOGS failed ({point.flush_error}): waiting for the "
                      "stream to archive the point's binlog as far as the point")
    wait_for_binlog(repo, identity.archive_id, point.file, point.position, timeout,
                    progress)
    chosen = point_base(all_snapshots(repo), identity.archive_id, point.file,
                        point.position)
    return placed, {
        "kind": "mariadb", "server_id": identity.server_id,
        "archive_id": identity.archive_id, "server_version": identity.version,
        "binlog_file": point.file, "binlog_position": point.position,
        "time": clock.format_time(point.time),
        "base_backup": chosen.id if chosen else base_id}


def point_base(every: list[Snapshot], archive_id: str, file: str, position: int
               ) -> Snapshot | None:
    """The backup a point at FILE:POSITION restores from (the newest at or before it)."""
    return backup_before(mysql_backups(every, archive_id), file, position)


def wait_for_binlog(repo: Repository, archive_id: str, file: str, position: int,
                    timeout: float, progress: Progress) -> None:
    """The archive holds `file` whole, or a streamed version of it reaching `position`."""
    archive = BinlogArchive(repo, archive_id)

    def reached() -> bool:
        inv = archive.inventory()
        if file in inv.complete:
            return True
        record = archive.newest(file, inv) if file in inv.versions else None
        return record is not None and record.size >= position

    wait_archived(reached, timeout, progress,
                  f"binlog {file} (the group's point {file}:{position})",
                  f"the binlog up to the group's point {file}:{position}",
                  "run `medark mysql binlog-stream` for this server")


def wait_archived(reached: Callable[[], bool], timeout: float, progress: Progress,
                  what: str, gap: str, hint: str) -> None:
    """Phase 3 of a group on either database (WAL or binlog): poll `reached` until true,
    saying once that it waits for `what`; past `timeout`, WalGap: `gap` did not reach the
    archive, then `hint`."""
    deadline = clock.monotonic() + timeout
    told = False
    while not reached():
        if not told:
            progress.warn(f"waiting up to {timeout:g} s for {what} to be archived")
            told = True
        if clock.monotonic() >= deadline:
            raise WalGap(f"{gap} did not reach the archive within {timeout:g} s; {hint}")
        clock.sleep(0.2)
