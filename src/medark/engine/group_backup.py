"""`group backup`: a PACS's index database and its file tree as one restorable point
(docs/pacs.md). Phases, in this order (docs/architecture.md, convention 9):

1. base backup: only when the repository holds none of the cluster (or one is asked for);
2. the database point: the WAL position and the index's file references in one snapshot
   taken under the index table's lock (sources/pacs/point.py), then a WAL switch;
3. wait until the WAL up to the point is in the repository's archive;
4. the files: the storage root backed up as any files source (engine/backup.py);
5. reconcile each reference with the scan: present, filled from the previous snapshot
   (same path and size: PACS files are write-once), or missing; files not referenced
   are kept and listed as after the point;
6. the group snapshot (tags group, group=NAME), written last: an interrupted run leaves
   at most a base backup and a files snapshot, each valid on its own.

On MariaDB (options.mariadb) phases 1 to 3 are engine/group_mariadb.py's: a mysql backup
if none, the point as a binlog position, that binlog archived.
On Orthanc's SQLite index (options.sqlite) phases 1 to 3 are one: the PACS stopped, its
index copied, the PACS started again (sources/pacs/sqlite_point.py); the copy is stored
in the group's own tree (database/), so the point needs no base backup nor WAL.
"""

from __future__ import annotations

import os
import posixpath
import socket
from dataclasses import dataclass, field
from typing import Any

from medark import __version__
from medark.config.groups import storage_dirs
from medark.engine.backup import Backup
from medark.engine.backup_model import BackupOptions, BackupResult
from medark.engine.dicom_catalog import CatalogBuilder
from medark.engine.group_mariadb import mariadb_point, wait_archived
from medark.engine.group_tree import (
    DIR_MODE,
    FILES,
    KIND,
    TreeReader,
    database_node,
    files_tree,
    graft,
    group_snapshots,
    list_node,
    parts_of,
)
from medark.engine.pg_backup import PgBackupOptions, base_backup
from medark.engine.pg_wal import WalArchive
from medark.engine.pg_window import pg_base_backups
from medark.errors import UsageError
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import all_snapshots, load_snapshot, save_snapshot, save_tree
from medark.sources.files.excludes import Excluder
from medark.sources.pacs.index import Reference, place_storages
from medark.sources.pacs.point import take_point
from medark.sources.pacs.sqlite_point import SIDE_FILES, take_sqlite_point
from medark.sources.postgres.server import Dsn, identify
from medark.sources.postgres.wal import format_lsn, parse_lsn, segment_name, segment_of
from medark.util import clock
from medark.util.progress import Progress

GROUP_TAG = "group"


@dataclass
class GroupBackupOptions:
    name: str
    dsn: Dsn | None
    """The PostgreSQL index (None: the index is `sqlite`)."""
    pacs: str
    root: str
    index_query: str | None = None
    tags: list[str] = field(default_factory=list)
    host: str = ""
    pg_bin: str | None = None
    base_backup: bool = False
    """Take a base backup first even when the repository holds one."""
    archive_timeout: float = 60.0
    sqlite: str | None = None
    """Orthanc's SQLite index file (instead of a PostgreSQL DSN)."""
    stop_command: str | None = None
    start_command: str | None = None
    tmp_dir: str | None = None
    """Where the SQLite index is copied before it is stored (the cache's tmp/)."""
    mariadb: str | None = None
    """The MariaDB index's DSN, naming its database (instead of a PostgreSQL DSN)."""
    mysql_bin: str | None = None
    storages: dict[str, str] | None = None
    """dcm4chee: storage ID -> its directory inside the root (absolute or relative to
    it); objects on an ID not in it are counted as not covered (docs/pacs.md)."""


@dataclass
class TakenPoint:
    """The database point, whichever the database: what the record, the tree and the
    scan need of it."""

    references: list[Reference]
    database: dict[str, Any]
    """The record's `database` document."""
    nodes: list[Node] = field(default_factory=list)
    """More nodes of the group's tree (the SQLite copy)."""
    excludes: list[str] = field(default_factory=list)
    """Paths the scan leaves out (the live SQLite index when under the storage root)."""
    warning: str = ""
    """The PACS's start_command failed (the point is good; the PACS may be down)."""
    not_covered: dict[str, int] = field(default_factory=dict)
    """Objects on storages the group does not map (dcm4chee), counted per storage ID."""


@dataclass
class Reconciled:
    referenced: int = 0
    after_point: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    additions: dict[tuple[str, ...], Node] = field(default_factory=dict)


@dataclass
class GroupResult:
    snapshot: Snapshot
    """The group's point."""
    summary: dict[str, Any]
    files: BackupResult
    """The scan's own result (its snapshot, unread files, ransomware verdict)."""


def group_backup(repo: Repository, options: GroupBackupOptions, progress: Progress
                 ) -> GroupResult:
    started = clock.now()
    t0 = clock.monotonic()
    host = options.host or socket.gethostname()
    root = posixpath.normpath(os.path.abspath(options.root))  # as the scan records it
    storages = _storages(options, root)  # refused before anything is taken
    if options.sqlite is not None:
        point = _placed(_sqlite_point(repo, options, root, progress), storages, root)
    elif options.mariadb is not None:
        placed, database = mariadb_point(
            repo, options.mariadb, options.pacs, root, options.index_query, options.tags,
            host, options.mysql_bin, options.base_backup, options.archive_timeout, progress,
            storages)
        point = TakenPoint(placed.references, database, not_covered=placed.not_covered)
    else:
        point = _postgres_point(repo, options, root, host, storages, progress)
    previous = group_snapshots(all_snapshots(repo), options.name)
    catalog = CatalogBuilder(repo, repo.config.chunker, repo.flush)  # dicom find/restore
    files = Backup(repo, BackupOptions(paths=[root], tags=[*options.tags, "pacs"], host=host,
                                       excluder=Excluder.from_options(point.excludes, []),
                                       observer=catalog), progress).run()
    result = reconcile(repo, root, point.references, files.snapshot,
                       previous[-1] if previous else None)
    record = _record(options, point, root, files.snapshot, result)
    snapshot = _save_group(repo, options, host, started, files.snapshot, result, point,
                           record, progress)
    summary = {"message_type": "summary", "source": "group", "snapshot_id": snapshot.id,
               **record,
               "after_point": result.after_point, "filled": result.filled,
               "missing": result.missing, "outside": result.outside,
               "files_errors": files.errors, "start_error": point.warning or None,
               "total_duration": round(clock.monotonic() - t0, 3)}
    return GroupResult(snapshot, summary, files)


def _storages(options: GroupBackupOptions, root: str) -> dict[str, str] | None:
    """The storages map relative to the root (what the record keeps, so a check of a
    restored pair finds them under its own root)."""
    if not options.storages:
        return None
    if options.pacs != "dcm4chee":
        raise UsageError("storages (--storage) go with pacs dcm4chee")
    try:
        return storage_dirs(options.storages, root)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _placed(point: TakenPoint, storages: dict[str, str] | None, root: str) -> TakenPoint:
    """The point's references under the root by their storages (dcm4chee), the objects
    of unmapped storages counted apart; several storages without a map: refused."""
    placed = place_storages(point.references, storages, root)
    point.references, point.not_covered = placed.references, placed.not_covered
    return point


def _postgres_point(repo: Repository, options: GroupBackupOptions, root: str, host: str,
                    storages: dict[str, str] | None, progress: Progress) -> TakenPoint:
    """Phases 1 to 3 on PostgreSQL: a base backup if none, the point, its WAL archived."""
    assert options.dsn is not None
    identity = identify(options.dsn)
    base_id = None
    if options.base_backup or not pg_base_backups(all_snapshots(repo), identity.system_id):
        backup, _summary = base_backup(repo, PgBackupOptions(
            options.dsn, options.tags, host, options.pg_bin, options.archive_timeout),
            progress)
        base_id = backup.id
    point = take_point(options.dsn, options.pacs, root, options.index_query)
    placed = place_storages(point.references, storages, root)  # refused before the wait
    if point.inexact_reason:
        progress.warn(f"the point is taken without the index's lock ({point.inexact_reason})"
                      ": a commit in flight may be in the database at the point and not "
                      "in its references (docs/pacs.md)")
    if not point.switched:
        progress.warn(f"pg_switch_wal() failed ({point.switch_error}): waiting for the "
                      "segment of the point to fill or to be streamed")
    _wait_for_point(repo, identity.system_id, identity.timeline, identity.segment_size,
                    point.lsn, point.past, options.archive_timeout, progress)
    bases = [b for b in pg_base_backups(all_snapshots(repo), identity.system_id)
             if parse_lsn(str(b.source.get("stop_lsn", "0/0"))) <= point.lsn]
    return TakenPoint(placed.references, {
        "kind": "postgres", "system_id": identity.system_id, "timeline": identity.timeline,
        "lsn": format_lsn(point.lsn), "time": clock.format_time(point.time),
        "exact": point.exact,
        "base_backup": bases[-1].id if bases else base_id}, not_covered=placed.not_covered)


def _sqlite_point(repo: Repository, options: GroupBackupOptions, root: str,
                  progress: Progress) -> TakenPoint:
    """On SQLite: the PACS stopped, its index copied, started again; the copy stored in
    the group's tree (database/NAME), then removed."""
    assert options.sqlite is not None
    index = posixpath.normpath(os.path.abspath(options.sqlite))
    point = take_sqlite_point(index, options.pacs, root, options.index_query,
                              stop_command=options.stop_command,
                              start_command=options.start_command, tmp_dir=options.tmp_dir)
    if point.start_error:
        progress.warn(f"{point.start_error}: the PACS may be down, start it by hand "
                      "(the point is taken)")
    try:
        node = database_node(repo, point.copy, posixpath.basename(index), progress)
    finally:
        os.unlink(point.copy)
    inside = index.startswith(root.rstrip("/") + "/")
    return TakenPoint(
        point.references,
        {"kind": "sqlite", "path": index, "time": clock.format_time(point.time),
         "size": point.size, "stopped": point.stopped},
        nodes=[node],
        # the live index under the storage root is not the point's (a restored stale
        # index-wal beside the copy would even be replayed onto it)
        excludes=[index + suffix for suffix in ("", *SIDE_FILES)] if inside else [],
        warning=point.start_error)


def _wait_for_point(repo: Repository, system_id: str, timeline: int, size: int, lsn: int,
                    past: int, timeout: float, progress: Progress) -> None:
    """The WAL up to `past` (beyond the point: recovery must read the record after it)
    is archived: its segment whole, or streamed at least that far."""
    segno = segment_of(past - 1, size)
    name = segment_name(timeline, segno, size)
    archive = WalArchive(repo, system_id)

    def reached() -> bool:
        record = archive.find(name)
        if record is None:
            return False
        if not record.name.endswith(".partial"):
            return True
        return segno * size + int(record.extra.get("valid_bytes", 0)) >= past

    wait_archived(reached, timeout, progress,
                  f"WAL segment {name} (the group's point {format_lsn(lsn)})",
                  f"the WAL up to the group's point {format_lsn(lsn)} (segment {name})",
                  "set archive_command = 'medark pg wal-push %p' or run `medark pg wal-stream`")


def reconcile(repo: Repository, root: str, references: list[Reference], files: Snapshot,
              previous: Snapshot | None) -> Reconciled:
    """Each reference against the scanned tree; the missing ones against the previous
    group's files (else the files snapshot's parent)."""
    out = Reconciled()
    scanned = TreeReader(repo, files.tree)
    present = {rel for rel, _node in scanned.files_under(root)}  # paths only: millions
    wanted: set[str] = set()
    gone: list[Reference] = []
    for ref in references:
        if posixpath.isabs(ref.path):
            out.outside.append(ref.path)
            continue
        wanted.add(ref.path)
        if ref.path in present:
            out.referenced += 1
        else:
            gone.append(ref)
    out.after_point = sorted(rel for rel in present if rel not in wanted)
    earlier = _previous_tree(repo, files, previous)
    for ref in sorted(gone, key=lambda r: r.path):
        node = earlier.node(posixpath.join(root, ref.path)) if earlier else None
        if node is not None and node.type == "file" and (ref.size is None
                                                         or node.size == ref.size):
            out.filled.append(ref.path)
            out.additions[parts_of(posixpath.join(root, ref.path))] = node
        else:
            out.missing.append(ref.path)
    return out


def _previous_tree(repo: Repository, files: Snapshot, previous: Snapshot | None
                   ) -> TreeReader | None:
    if previous is not None:
        return TreeReader(repo, files_tree(repo, previous.tree))
    if files.parent:
        return TreeReader(repo, load_snapshot(repo, files.parent).tree)
    return None


def _record(options: GroupBackupOptions, point: TakenPoint, root: str, files: Snapshot,
            result: Reconciled) -> dict[str, Any]:
    record = {
        "kind": KIND, "group": options.name, "pacs": options.pacs, "root": root,
        "database": point.database,
        "files_snapshot": files.id,
        "counts": {"references": len(point.references), "referenced": result.referenced,
                   "present": result.referenced + len(result.after_point),
                   "after_point": len(result.after_point), "filled": len(result.filled),
                   "missing": len(result.missing), "outside": len(result.outside),
                   "not_covered": sum(point.not_covered.values())},
    }
    record["not_covered"] = point.not_covered  # per storage ID
    if options.storages:  # relative to the root, as placed
        record["storages"] = storage_dirs(options.storages, root)
    return record


def _save_group(repo: Repository, options: GroupBackupOptions, host: str, started: Any,
                files: Snapshot, result: Reconciled, point: TakenPoint,
                record: dict[str, Any], progress: Progress) -> Snapshot:
    tree = graft(repo, files.tree, result.additions)
    nodes = [
        Node(name=FILES, type="dir", mode=DIR_MODE, subtree=tree),
        list_node(repo, "references", sorted(r.path for r in point.references), progress),
        list_node(repo, "after-point", result.after_point, progress),
        list_node(repo, "filled", result.filled, progress),
        list_node(repo, "missing", result.missing + result.outside, progress),
        *point.nodes,
    ]
    root = save_tree(repo, sorted(nodes, key=lambda n: n.name))
    repo.flush()
    snapshot = Snapshot(
        time=started, tree=root, paths=[f"/group/{options.name}"], hostname=host,
        tags=[GROUP_TAG, f"group={options.name}", *options.tags],
        program_version=f"medark {__version__}", source=record)
    snapshot.summary = {"source": "group", **record["counts"]}
    save_snapshot(repo, snapshot)
    return snapshot
