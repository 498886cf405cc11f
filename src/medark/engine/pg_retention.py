"""Which archived WAL `forget` may expire: what no retained base backup can use.

For each cluster, every WAL file from the start of its oldest retained base backup onward
is kept, so each retained backup can be recovered to any moment of its window. Before
that point segments and backup-history files go. Streamed versions of a segment go once
the complete segment is archived, and all but the newest version go at once. Timeline
history files are always kept (recovery across a promotion needs them, and they are
tiny). A cluster with no retained base backup keeps all of its WAL: its window may be
about to start with the next backup. A kept consistency-group point also keeps the WAL
from its base backup's start (`needed_from`, engine/group_retention.py), whether or not
that backup is among the snapshots judged here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from medark.engine.pg_wal import WAL_PREFIX, WalRepo
from medark.snapshot.model import Snapshot
from medark.sources.postgres.wal import (
    BACKUP_RE,
    DEFAULT_SEGMENT_SIZE,
    PARTIAL_RE,
    SEGMENT_RE,
    Segment,
    parse_lsn,
    segment_of,
)


def _oldest_needed(backups: list[Snapshot]) -> int:
    starts = []
    for snap in backups:
        size = int(snap.source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
        starts.append(segment_of(parse_lsn(str(snap.source["start_lsn"])), size))
    return min(starts)


def wal_to_expire(repo: WalRepo, kept: list[Snapshot],
                  needed_from: Mapping[str, int] | None = None) -> list[str]:
    """Record names to remove, given the snapshots that remain after forget and, per
    cluster, an LSN from which the WAL must stay (the kept group points' needs)."""
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for name in repo.list_names(WAL_PREFIX):
        parts = name.split("/")
        if len(parts) == 4:
            by_cluster[parts[1]].append(name)
    expire: list[str] = []
    for system_id, names in by_cluster.items():
        backups = [s for s in kept if s.source.get("kind") == "postgres"
                   and str(s.source.get("system_id")) == system_id]
        if not backups:
            continue
        size = int(backups[-1].source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
        oldest = _oldest_needed(backups)
        if needed_from and system_id in needed_from:
            oldest = min(oldest, segment_of(needed_from[system_id], size))
        expire.extend(_expire_cluster(names, oldest, size))
    return sorted(expire)


def _expire_cluster(names: list[str], oldest: int, size: int) -> list[str]:
    complete: set[str] = set()
    versions: dict[str, list[str]] = defaultdict(list)
    expire = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        stem = base.split("-", 1)[0]
        if SEGMENT_RE.match(stem):
            complete.add(stem)
            if Segment.parse(stem, size).segno < oldest:
                expire.append(name)
        elif (match := PARTIAL_RE.match(stem)) is not None:
            versions[match.group(1)].append(name)
        elif ((match := BACKUP_RE.match(stem)) is not None
              and Segment.parse(match.group(1), size).segno < oldest):
            expire.append(name)
    for segment, records in versions.items():
        records.sort()
        if segment in complete or Segment.parse(segment, size).segno < oldest:
            expire.extend(records)
        else:
            expire.extend(records[:-1])  # the newest version serves wal-fetch
    return expire
