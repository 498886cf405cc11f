"""What a copy sends along with the consistency-group points it selects (docs/pacs.md,
"Copy"): a `--keep-*` selection or a filter judges each snapshot by itself, so it may pick
a group point without the base backup, the WAL or the files snapshot the point restores
from. Each selected point brings its parts, by the rule `forget` keeps them by
(engine/group_retention.point_needs: the newest base backup of its cluster that ended at
or before the point's LSN, the WAL from that backup's start to the point's segment). A
point on SQLite holds its index in its own tree: it brings its files snapshot only. A
point on MariaDB brings its mysql backup and the archived binlog files (complete, or the
streamed versions) from that backup's file to the point's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medark.engine.binlog_names import BINLOG_PREFIX, PARTIAL
from medark.engine.group_retention import PointNeeds, point_needs
from medark.engine.group_tree import group_snapshots
from medark.engine.pg_wal import WAL_PREFIX
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.sources.mysql.binlog import parse_file_name


@dataclass
class PointParts:
    """One selected group point and what it brought into the copy."""

    needs: PointNeeds
    added: list[Snapshot] = field(default_factory=list)
    """Snapshots the selection alone would not have sent."""
    wal: list[str] = field(default_factory=list)
    """The WAL (or binlog) records (repository names) from the base backup's start to
    the point."""

    def public(self) -> dict[str, Any]:
        return {**self.needs.public(), "added": [s.id for s in self.added],
                "wal_records": len(self.wal)}


def with_group_parts(every: list[Snapshot], chosen: list[Snapshot]
                     ) -> tuple[list[Snapshot], list[PointParts]]:
    """`chosen` plus the base backup and files snapshot of each group point in it (oldest
    first), and each point's parts."""
    picked = {s.id for s in chosen}
    by_id = {s.id: s for s in every}
    out = list(chosen)
    parts: list[PointParts] = []
    for point in sorted(group_snapshots(chosen), key=lambda s: (s.time, s.id)):
        need = PointParts(point_needs(every, point))
        for snap in (need.needs.base_backup, by_id.get(need.needs.files_snapshot)):
            if snap is not None and snap.id not in picked:
                picked.add(snap.id)
                out.append(snap)
                need.added.append(snap)
        parts.append(need)
    return sorted(out, key=lambda s: (s.time, s.id)), parts


def wal_records(repo: Repository, parts: list[PointParts]) -> list[str]:
    """Fill each point's `wal` with the archived records it restores from (its cluster's
    segments from wal_from to wal_to, and the cluster's timeline history files); all of
    them, sorted."""
    listed: dict[str, list[str]] = {}
    out: set[str] = set()
    for part in parts:
        need = part.needs
        if need.wal_from is None:
            continue  # no base backup: nothing restores it (reported as its problem)
        if need.kind == "mariadb":
            part.wal = _binlog_records(repo, need, listed)
            out.update(part.wal)
            continue
        names = listed.get(need.system_id)
        if names is None:
            names = listed[need.system_id] = sorted(
                repo.list_names(f"{WAL_PREFIX}{need.system_id}/"))
        first, last = need.wal_from, need.wal_to
        part.wal = [n for n in names if "/timelines/" in n
                    or first <= n.rsplit("/", 1)[-1][:24] <= last]
        out.update(part.wal)
    return sorted(out)


def _binlog_records(repo: Repository, need: PointNeeds, listed: dict[str, list[str]]
                    ) -> list[str]:
    """The server's archived binlog records (complete files and streamed versions) from
    the backup's file to the point's, by file number."""
    key = f"{BINLOG_PREFIX}{need.system_id}/"
    names = listed.get(key)
    if names is None:
        names = listed[key] = sorted(repo.list_names(key))
    first, last = parse_file_name(need.wal_from or ""), parse_file_name(need.wal_to)
    if first is None or last is None:
        return []
    out = []
    for name in names:
        parsed = parse_file_name(name.rsplit("/", 1)[-1].partition(PARTIAL)[0])
        if parsed is not None and parsed[0] == first[0] and first[1] <= parsed[1] <= last[1]:
            out.append(name)
    return out
