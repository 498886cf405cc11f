"""The recoverable window of a PostgreSQL cluster: which base backups exist, which WAL
follows each without a gap, and which base backup a recovery target needs.

Used by `pg restore` (choose the backup, refuse a target outside the window), `pg status`
(report the window, the newest archived WAL and its age) and `pg check`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from medark.engine.pg_wal import Inventory
from medark.errors import TargetOutOfRange, UsageError, WalGap
from medark.snapshot.model import Snapshot
from medark.sources.postgres.wal import (
    HISTORY_RE,
    Segment,
    format_lsn,
    parse_lsn,
    segment_of,
)
from medark.util import clock


def pg_base_backups(snaps: list[Snapshot], system_id: str | None = None) -> list[Snapshot]:
    """PostgreSQL base backups, oldest first, of one cluster."""
    found = [s for s in snaps if s.source.get("kind") == "postgres"]
    clusters = sorted({str(s.source.get("system_id")) for s in found})
    if system_id is None and len(clusters) > 1:
        raise UsageError("the repository holds several PostgreSQL clusters "
                         f"({', '.join(clusters)}): choose one with --system-id")
    if system_id is not None:
        found = [s for s in found if str(s.source.get("system_id")) == system_id]
    return sorted(found, key=lambda s: (s.time, s.id))


def stop_time(snap: Snapshot) -> datetime:
    return clock.parse_time(str(snap.source.get("stop_time") or clock.format_time(snap.time)))


@dataclass
class Chain:
    """The WAL segments that follow one base backup without a gap."""

    first: int
    last: int
    """Last segment number present in an unbroken run from `first` (first - 1: none)."""
    gap_at: int | None = None
    """The first missing segment after `last`, if anything newer exists (a broken window)."""
    partial: bool = False
    """The last segment is a streamed version (the segment being written)."""


@dataclass
class WalMap:
    """Segment numbers present in the archive, whichever timeline (the newest wins)."""

    segment_size: int
    present: dict[int, int] = field(default_factory=dict)
    """segno → highest timeline that has it complete."""
    partial: dict[int, int] = field(default_factory=dict)
    newest_timeline: int = 1

    @classmethod
    def build(cls, inventory: Inventory, segment_size: int) -> WalMap:
        wal = cls(segment_size)
        for name in inventory.segments:
            seg = Segment.parse(name, segment_size)
            wal.present[seg.segno] = max(seg.timeline, wal.present.get(seg.segno, 0))
            wal.newest_timeline = max(wal.newest_timeline, seg.timeline)
        for name in inventory.partial:
            seg = Segment.parse(name, segment_size)
            wal.partial[seg.segno] = max(seg.timeline, wal.partial.get(seg.segno, 0))
            wal.newest_timeline = max(wal.newest_timeline, seg.timeline)
        for name in inventory.histories:
            match = HISTORY_RE.match(name)
            assert match is not None
            wal.newest_timeline = max(wal.newest_timeline, int(match.group(1), 16))
        return wal

    def chain_from(self, start_lsn: int) -> Chain:
        first = segment_of(start_lsn, self.segment_size)
        segno = first
        while segno in self.present:
            segno += 1
        partial = segno in self.partial
        last = segno if partial else segno - 1
        newer = [n for n in (*self.present, *self.partial) if n > last]
        gap_at = (last + 1) if newer else None
        return Chain(first, last, gap_at, partial)

    def newest_segno(self) -> int | None:
        candidates = [*self.present, *self.partial]
        return max(candidates) if candidates else None


@dataclass(frozen=True)
class Target:
    kind: str
    """'latest', 'time', 'lsn' or 'immediate' (end of the base backup)."""
    time: datetime | None = None
    lsn: int | None = None

    def describe(self) -> str:
        if self.kind == "time" and self.time is not None:
            return clock.format_time(self.time)
        if self.kind == "lsn" and self.lsn is not None:
            return format_lsn(self.lsn)
        return {"latest": "the newest archived WAL", "immediate": "the end of the backup"}[
            self.kind]


def choose_backup(backups: list[Snapshot], target: Target, wal: WalMap,
                  newest_archived: datetime | None,
                  archived_at: Callable[[int], datetime | None]) -> Snapshot:
    """The newest base backup from which `target` can be reached without a WAL gap."""
    if not backups:
        raise TargetOutOfRange("no PostgreSQL base backup in the repository "
                               "(take one with `medark pg backup`)")
    if target.kind == "time":
        assert target.time is not None
        candidates = [b for b in backups if stop_time(b) <= target.time]
        if not candidates:
            raise TargetOutOfRange(
                f"{target.describe()} is before the oldest base backup ended "
                f"({clock.format_time(stop_time(backups[0]))}): the recoverable window "
                "starts there")
        if newest_archived is not None and target.time > newest_archived:
            raise TargetOutOfRange(
                f"{target.describe()} is after the newest archived WAL "
                f"({clock.format_time(newest_archived)}): nothing that late can be recovered")
    elif target.kind == "lsn":
        assert target.lsn is not None
        candidates = [b for b in backups
                      if parse_lsn(str(b.source["stop_lsn"])) <= target.lsn]
        if not candidates:
            raise TargetOutOfRange(f"LSN {target.describe()} is before the oldest base "
                                   "backup ended")
    else:
        candidates = backups
    chosen = candidates[-1]
    if target.kind != "immediate":
        _require_unbroken(chosen, target, wal, archived_at)
    return chosen


def _require_unbroken(backup: Snapshot, target: Target, wal: WalMap,
                      archived_at: Callable[[int], datetime | None]) -> None:
    """`archived_at(segno)`: when that segment reached the archive (bounds the commit
    times inside it)."""
    chain = wal.chain_from(parse_lsn(str(backup.source["start_lsn"])))
    stop = segment_of(parse_lsn(str(backup.source["stop_lsn"])), wal.segment_size)
    if chain.last < stop:
        raise WalGap(f"the WAL of base backup {backup.short_id} is incomplete: segment "
                     f"{chain.last + 1:X} (number) is missing from the archive, so it cannot "
                     "be restored to consistency")
    if chain.gap_at is None:
        return
    if target.kind == "lsn" and target.lsn is not None and \
            segment_of(target.lsn, wal.segment_size) <= chain.last:
        return
    if target.kind == "time" and target.time is not None:
        reached = archived_at(chain.last)
        if reached is not None and target.time <= reached:
            return
    raise WalGap(
        f"the archived WAL has a gap at segment number {chain.gap_at:X} after base backup "
        f"{backup.short_id}: recovery to {target.describe()} cannot pass it; the recoverable "
        f"window from that backup ends at segment number {chain.last:X} (run `medark pg "
        "status`; take a new base backup to start a new window)")
