"""What `forget` keeps for the consistency-group points that remain (docs/pacs.md,
"Retention").

A group point restores from the newest base backup of its cluster that ended at or before
the point's LSN (the one `group restore` chooses: pg_window.choose_backup), the WAL from
that backup's start up to and past the LSN, and its files snapshot. The policy judges
each snapshot in its own host/paths group, so it may drop a base backup or a files
snapshot that a point it keeps still needs; these are held here, one reason each. A point
the policy (or the command line) removes holds nothing: its parts are judged as usual.

A point on SQLite (Orthanc's index copied into the point's own tree) needs no base backup
and no WAL: only its files snapshot is held, as for any point.

A point on MariaDB restores from the newest mysql backup of its server whose binlog
coordinates are at or before the point's (engine/group_mariadb.point_base) and the
archived binlogs from that backup's file to the point's: holding the backup holds them
(engine/mysql_retention.py keeps every binlog from the oldest kept backup's file on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medark.engine.group_tree import group_snapshots
from medark.engine.pg_window import pg_base_backups
from medark.errors import UsageError
from medark.snapshot.model import Snapshot
from medark.sources.postgres.wal import (
    DEFAULT_SEGMENT_SIZE,
    format_lsn,
    parse_lsn,
    segment_name,
    segment_of,
)


@dataclass
class PointNeeds:
    """One kept point and the parts it restores from."""

    point: Snapshot
    system_id: str
    lsn: int
    base_backup: Snapshot | None
    files_snapshot: str
    files_present: bool
    wal_from: str | None
    """First WAL segment the point needs (its base backup's start)."""
    wal_to: str
    """The segment of the point's LSN (recovery reads the record after the point)."""
    kind: str = "postgres"
    """The point's database: postgres, mariadb (wal_from/wal_to are binlog files,
    system_id the server's archive id), or sqlite (self-contained: no base backup, no
    WAL, no LSN)."""
    binlog: str | None = None
    """mariadb: the point's FILE:POSITION."""

    @property
    def problem(self) -> str | None:
        if self.kind == "sqlite":
            return None
        if self.kind == "mariadb":
            if self.binlog is None:
                return "its record names no binlog position: it cannot be restored"
            if self.base_backup is None:
                return (f"no backup of MariaDB server {self.system_id} at or before binlog "
                        f"{self.binlog} (forgotten earlier): its database cannot be "
                        "restored")
            return None
        if self.lsn == 0:
            return "its record names no database point (LSN): it cannot be restored"
        if self.base_backup is None:
            return (f"no base backup of cluster {self.system_id} ended at or before LSN "
                    f"{format_lsn(self.lsn)} (forgotten earlier): its database cannot be "
                    "restored")
        return None

    def public(self) -> dict[str, Any]:
        return {"id": self.point.id, "short_id": self.point.short_id,
                "group": self.point.source.get("group"), "database": self.kind,
                "lsn": format_lsn(self.lsn) if self.kind == "postgres" else None,
                "binlog": self.binlog,
                "system_id": self.system_id,
                "base_backup": self.base_backup.id if self.base_backup else None,
                "wal_from": self.wal_from, "wal_to": self.wal_to,
                "files_snapshot": self.files_snapshot,
                "files_snapshot_present": self.files_present, "problem": self.problem}


@dataclass
class GroupHolds:
    needs: list[PointNeeds] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    """Snapshot id → why it stays (the points that need it)."""

    def wal_from(self) -> dict[str, int]:
        """Per cluster, the LSN from which the kept points need the archived WAL."""
        out: dict[str, int] = {}
        for need in self.needs:
            if need.base_backup is not None and need.kind == "postgres":
                start = parse_lsn(str(need.base_backup.source["start_lsn"]))
                out[need.system_id] = min(start, out.get(need.system_id, start))
        return out


def point_needs(every: list[Snapshot], point: Snapshot) -> PointNeeds:
    database = point.source.get("database")
    database = database if isinstance(database, dict) else {}
    files = str(point.source.get("files_snapshot") or "")
    if database.get("kind") == "sqlite":  # its index is in its own tree
        return PointNeeds(point, "", 0, None, files, any(s.id == files for s in every),
                          None, "", kind="sqlite")
    if database.get("kind") == "mariadb":
        return _mariadb_needs(every, point, database, files)
    system_id = str(database.get("system_id") or "?")
    try:
        lsn = parse_lsn(str(database.get("lsn") or ""))
    except UsageError:  # a record without its point: nothing to find (named a problem)
        lsn = 0
    candidates = [b for b in pg_base_backups(every, system_id)
                  if lsn and parse_lsn(str(b.source.get("stop_lsn", "0/0"))) <= lsn]
    base = candidates[-1] if candidates else None
    size = int((base.source.get("segment_size") if base else None) or DEFAULT_SEGMENT_SIZE)
    timeline = int(database.get("timeline") or 1)
    wal_from = None
    if base is not None:
        start = parse_lsn(str(base.source["start_lsn"]))
        wal_from = segment_name(int(base.source.get("timeline") or timeline),
                                segment_of(start, size), size)
    return PointNeeds(point, system_id, lsn, base, files,
                      any(s.id == files for s in every), wal_from,
                      segment_name(timeline, segment_of(lsn, size), size))


def _mariadb_needs(every: list[Snapshot], point: Snapshot, database: dict[str, Any],
                   files: str) -> PointNeeds:
    """Its backup (as group restore chooses it) and the binlog files from that backup's
    to the point's."""
    # here: group_mariadb brings the MariaDB backup code, 14 ms of every forget otherwise
    from medark.engine.group_mariadb import point_base

    archive_id = str(database.get("archive_id") or "?")
    file = str(database.get("binlog_file") or "")
    try:
        position = int(database.get("binlog_position") or 0)
        base = point_base(every, archive_id, file, position) if file else None
    except (UsageError, ValueError):  # a record without its point: named a problem
        file, base = "", None
    return PointNeeds(point, archive_id, 0, base, files, any(s.id == files for s in every),
                      str(base.source["binlog_file"]) if base else None, file,
                      kind="mariadb", binlog=f"{file}:{position}" if file else None)


def group_holds(every: list[Snapshot], gone: set[str]) -> GroupHolds:
    """What the group points of `every` that are not in `gone` (the snapshots removed)
    need, and which of the removed snapshots must therefore stay."""
    holds = GroupHolds()
    users: dict[str, tuple[str, list[PointNeeds]]] = {}
    points = sorted(group_snapshots([s for s in every if s.id not in gone]),
                    key=lambda s: (s.time, s.id))
    for point in points:
        need = point_needs(every, point)
        holds.needs.append(need)
        for snap_id, role in ((need.base_backup.id if need.base_backup else None,
                               "base backup"),
                              (need.files_snapshot if need.files_present else None,
                               "files snapshot")):
            if snap_id is not None and snap_id in gone:
                users.setdefault(snap_id, (role, []))[1].append(need)
    for snap_id, (role, needs) in users.items():
        first = needs[0]
        more = f" and {len(needs) - 1} newer" if len(needs) > 1 else ""
        at = (f"LSN {format_lsn(first.lsn)}" if first.kind == "postgres" else
              f"binlog {first.binlog}" if first.kind == "mariadb" else
              f"SQLite index at {first.point.source['database'].get('time')}")
        holds.held[snap_id] = (f"the {role} of group point {first.point.short_id}{more} "
                               f"(group {first.point.source.get('group')}, {at})")
    return holds
