"""`mysql restore` planning: which backup, which archived binlog files, and the stored
backup stream read back from the repository.

The recoverable window of a backup starts at its backup point (its snapshot's `stop_time`
bounds it from above: mariadb-backup and mariadb-dump take the coordinates before they
exit) and runs through the archived binlog files that follow its coordinates without a
gap. A target outside every window is refused before anything is written: before the
oldest backup point or after the newest archived binlog → TargetOutOfRange (24); past a
missing file, or from a backup taken with binary logging off (no coordinates) → WalGap
(23). The 'backup' target restores the newest backup as it is, replaying nothing: the one
restore a backup without coordinates allows.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from medark.engine.mysql_binlog import BinlogArchive, BinlogRecord, Inventory
from medark.errors import ObjectNotFound, TargetOutOfRange, UnsafeEntry, UsageError, WalGap
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots, load_tree
from medark.sources.mysql.binlog import (
    EventScan,
    file_name,
    parse_file_name,
    scan_events,
    stop_datetime,
)
from medark.util import clock
from medark.util.confine import private_dir

READ_AHEAD = 8


def mysql_backups(snaps: list[Snapshot], archive_id: str | None = None) -> list[Snapshot]:
    """MariaDB/MySQL backups of one server, oldest first."""
    found = [s for s in snaps if s.source.get("kind") == "mysql"]
    servers = sorted({str(s.source.get("archive_id")) for s in found})
    if archive_id is None and len(servers) > 1:
        raise UsageError("the repository holds backups of several MariaDB/MySQL servers "
                         f"({', '.join(servers)}): choose one with --server")
    if archive_id is not None:
        found = [s for s in found if str(s.source.get("archive_id")) == archive_id]
    return sorted(found, key=lambda s: (s.time, s.id))


def stop_time(snap: Snapshot) -> datetime:
    return clock.parse_time(str(snap.source.get("stop_time") or clock.format_time(snap.time)))


@dataclass(frozen=True)
class Target:
    kind: str
    """'time', 'latest', 'position' (a binlog file and offset: a group's point) or
    'backup' (the end of the backup: no binlog replayed)."""
    time: datetime | None = None
    file: str | None = None
    position: int | None = None

    def describe(self) -> str:
        if self.kind == "time" and self.time is not None:
            return clock.format_time(self.time)
        if self.kind == "position":
            return f"binlog {self.file}:{self.position}"
        if self.kind == "backup":
            return "the end of the backup (no binlog replayed)"
        return "the newest archived binlog event"


@dataclass
class Plan:
    backup: Snapshot
    archive_id: str
    files: list[BinlogRecord]
    """The archived binlog files to replay, the backup's own first."""
    start_position: int
    stop: str | None
    """mariadb-binlog --stop-datetime (UTC), None for the latest."""
    stop_position: int | None = None
    """A position target: the last file is replayed up to this offset (an event
    boundary), as mariadb-binlog --stop-position would."""


@dataclass
class Chain:
    records: list[BinlogRecord]
    gap_at: str | None
    """The first missing file after the chain, if anything newer is archived."""


def chain_from(archive: BinlogArchive, inv: Inventory, first: str,
               until: datetime | None = None) -> Chain:
    """The archived files that follow `first` without a gap (all of them, or up to the one
    in which a replay to `until` stops)."""
    parsed = parse_file_name(first)
    if parsed is None:
        raise UsageError(f"not a binlog file name: {first!r}")
    basename, number = parsed
    present = {n for f in inv.files() if (p := parse_file_name(f)) and p[0] == basename
               for n in [p[1]]}
    records: list[BinlogRecord] = []
    while number in present:
        record = archive.newest(file_name(basename, number), inv)
        if record is None:
            break
        records.append(record)
        number += 1
        if until is not None and record.last_event_time is not None and \
                record.last_event_time >= int(until.timestamp()):
            return Chain(records, None)  # the replay stops inside this file
    newer = [n for n in present if n >= number]
    return Chain(records, file_name(basename, number) if newer else None)


def newest_archived(archive: BinlogArchive, inv: Inventory) -> BinlogRecord | None:
    files = inv.files()
    return archive.newest(files[-1], inv) if files else None


def plan_restore(repo: Repository, target: Target, archive_id: str | None) -> Plan:
    """Choose the backup and the binlog files (reads only; nothing is written)."""
    backups = mysql_backups(all_snapshots(repo), archive_id)
    if not backups:
        raise ObjectNotFound("no MariaDB/MySQL backup in the repository (take one with "
                             "`medark mysql backup`)")
    archive_id = str(backups[-1].source["archive_id"])
    if target.kind == "backup":
        return Plan(backups[-1], archive_id, [], 0, None)
    archive = BinlogArchive(repo, archive_id)
    inv = archive.inventory()
    if target.kind == "position":
        return _plan_position(archive, inv, backups, target)
    newest = newest_archived(archive, inv)
    candidates = backups
    if target.kind == "time":
        assert target.time is not None
        candidates = [b for b in backups if stop_time(b) <= target.time]
        if not candidates:
            raise TargetOutOfRange(
                f"{target.describe()} is before the oldest backup point "
                f"({clock.format_time(stop_time(backups[0]))}): the recoverable window "
                "starts there")
    _require_coordinates(candidates[-1])
    if target.kind == "time":
        assert target.time is not None
        newest_time = clock.parse_time(newest.archived) if newest else None
        if newest_time is None or target.time > newest_time:
            when = clock.format_time(newest_time) if newest_time else "none archived"
            raise TargetOutOfRange(
                f"{target.describe()} is after the newest archived binlog ({when}): "
                "nothing that late can be recovered")
    chosen = candidates[-1]
    src = chosen.source
    chain = chain_from(archive, inv, str(src["binlog_file"]), target.time)
    if not chain.records:
        raise WalGap(f"binlog {src['binlog_file']}, where backup {chosen.short_id} ends, is "
                     "not archived: run `medark mysql binlog-stream` from before the backup")
    if chain.gap_at is not None:
        last = chain.records[-1]
        reached = datetime.fromtimestamp(last.last_event_time or 0, UTC)
        if target.kind != "time" or target.time is None or target.time > reached:
            raise WalGap(
                f"the archived binlogs have a gap at {chain.gap_at} after backup "
                f"{chosen.short_id}: a replay to {target.describe()} cannot pass it; the "
                f"window from that backup ends at {clock.format_time(reached)} (run "
                "`medark mysql status`; take a new backup to start a new window)")
    stop = stop_datetime(target.time) if target.kind == "time" and target.time else None
    return Plan(chosen, archive_id, chain.records, int(str(src["binlog_position"])), stop)


def binlog_key(file: str, position: int) -> tuple[str, int, int]:
    """Orders binlog coordinates: (basename, file number, offset)."""
    parsed = parse_file_name(file)
    if parsed is None:
        raise UsageError(f"not a binlog file name: {file!r}")
    return parsed[0], parsed[1], position


def backup_before(backups: list[Snapshot], file: str, position: int) -> Snapshot | None:
    """The newest backup (of `backups`, oldest first) whose binlog coordinates are at or
    before FILE:POSITION: the one a replay to that position starts from."""
    goal = binlog_key(file, position)
    found = [b for b in backups if b.source.get("binlog_file")
             and parse_file_name(str(b.source["binlog_file"])) is not None
             and binlog_key(str(b.source["binlog_file"]),
                            int(str(b.source.get("binlog_position") or 0))) <= goal]
    return found[-1] if found else None


def parse_position(text: str) -> tuple[str, int]:
    """`FILE:POS` (binlog.000012:4711) as given to --position."""
    file, sep, pos = text.rpartition(":")
    if not sep or parse_file_name(file) is None or not pos.isdigit():
        raise UsageError(f"--position {text!r}: give FILE:POS, e.g. binlog.000012:4711")
    return file, int(pos)


def _plan_position(archive: BinlogArchive, inv: Inventory, backups: list[Snapshot],
                   target: Target) -> Plan:
    """The newest backup at or before the position, and the archived files from its own
    up to the position's, the last one cut there."""
    assert target.file is not None and target.position is not None
    chosen = backup_before(backups, target.file, target.position)
    if chosen is None:
        raise TargetOutOfRange(f"{target.describe()} is before every backup's binlog "
                               "position (or no backup has one): the recoverable window "
                               "starts at the oldest backup")
    src = chosen.source
    goal = binlog_key(target.file, target.position)
    records = [r for r in chain_from(archive, inv, str(src["binlog_file"])).records
               if binlog_key(r.file, 0)[:2] <= goal[:2]]
    if not records or records[-1].file != target.file:
        reached = records[-1].file if records else "nothing"
        raise WalGap(f"binlog {target.file} is not archived after backup {chosen.short_id}"
                     f" without a gap (the chain reaches {reached}): run `medark mysql "
                     "binlog-stream`")
    if records[-1].size < target.position:
        raise WalGap(f"binlog {target.file} is archived up to offset {records[-1].size} "
                     f"only, short of {target.position}: wait for `medark mysql "
                     "binlog-stream` to catch up")
    return Plan(chosen, archive.archive_id, records, int(str(src["binlog_position"])), None,
                stop_position=target.position)


def _require_coordinates(backup: Snapshot) -> None:
    """A backup taken with binary logging off has no position to replay from."""
    if not backup.source.get("binlog_file"):
        raise WalGap(f"backup {backup.short_id} was taken with binary logging off and has no "
                     "binlog position to roll forward from: restore it as it is with "
                     "--backup-only")


def fetch_binlogs(repo: Repository, plan: Plan, spool: str) -> list[str]:
    """Write the plan's binlog files (whole events only) into `spool`; their paths."""
    archive = BinlogArchive(repo, plan.archive_id)
    private_dir(spool)  # a link planted at the spool's name is refused, not followed
    paths = []
    for record in plan.files:
        if parse_file_name(record.file) is None:  # one plain name, never a path
            raise UnsafeEntry(f"a binlog record names the file {record.file!r}; refusing it")
        path = os.path.join(spool, record.file)
        archive.fetch_to(record, path)
        paths.append(path)
    if plan.stop_position is not None and paths:
        _cut(paths[-1], plan.stop_position)
    return paths


def _cut(path: str, position: int) -> None:
    """The last file ends at the target offset: nothing at or after it is replayed (what
    mariadb-binlog --stop-position does), checked to fall between two events."""
    scan, base, buf = EventScan(0), 0, b""
    with open(path, "rb") as f:
        while scan.end < position:  # 1 MiB at a time: a binlog may be a gigabyte
            chunk = f.read(min(1 << 20, position - base - len(buf)))
            if not chunk:
                break
            buf = buf[scan.end - base:] + chunk
            base = scan.end
            scan = scan_events(buf, scan.end, base, scan)
    if scan.end != position:
        raise UsageError(f"offset {position} of {os.path.basename(path)} is not between "
                         "two events: not a binlog position to stop at")
    os.truncate(path, position)


def stored_stream(repo: Repository, snapshot: Snapshot, pool: ThreadPoolExecutor
                  ) -> Iterator[bytes]:
    """The backup's one stored file (xbstream or dump), blob by blob, READ_AHEAD decoded
    ahead in `pool`."""
    nodes = load_tree(repo, snapshot.tree)
    name = str(snapshot.source.get("file") or "")
    node = next((n for n in nodes if n.name == name), None)
    if node is None or not node.content:
        raise ObjectNotFound(f"snapshot {snapshot.short_id} holds no {name or 'backup file'}")
    blobs = list(node.content)
    futures: deque[Future[bytes]] = deque(pool.submit(repo.load_blob, b)
                                          for b in blobs[:READ_AHEAD])
    for index in range(len(blobs)):
        data = futures.popleft().result()
        if index + READ_AHEAD < len(blobs):
            futures.append(pool.submit(repo.load_blob, blobs[index + READ_AHEAD]))
        yield data


def describe_backup(snap: Snapshot) -> dict[str, object]:
    src = snap.source
    return {"snapshot_id": snap.id, "time": clock.format_time(snap.time),
            "stop_time": src.get("stop_time"), "method": src.get("method"),
            "binlog_file": src.get("binlog_file"), "binlog_position": src.get("binlog_position"),
            "gtid": src.get("gtid"), "server_version": src.get("server_version")}
