"""A recovery time PostgreSQL can reach, else the end of the archive.

PostgreSQL (13 and later) stops a recovery_target_time only before the first commit or
abort stamped after the target. When the archive ends first it refuses to finish
("recovery ended before configured recovery target was reached") and the restored server
never starts, whatever recovery_target_action says. A window ends at the newest archived
WAL, so a second in its last moments, after the last commit (the operator's "just before
the incident"), is exactly that case. Every commit is then at or before the target, so
recovering to the end of the archive gives the same data: that is what the restore does,
and says so.

Only the archive's newest segments are read (pg_waldump, Transaction records only),
newest first, until one holds a commit or abort; a segment that reached the archive more
than ARCHIVE_CLOCK_SLACK before the target cannot hold a later commit, which bounds the
walk behind a long uncommitted transaction.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from medark.engine.pg_wal import WalArchive, WalRecord
from medark.engine.pg_window import Target, WalMap
from medark.errors import MedarkError
from medark.snapshot.model import Snapshot
from medark.sources.postgres.tools import find_program
from medark.sources.postgres.wal import DEFAULT_SEGMENT_SIZE, parse_lsn, segment_name
from medark.sources.postgres.waldump import last_xact_end
from medark.util import clock
from medark.util.files import atomic_write

ARCHIVE_CLOCK_SLACK = timedelta(seconds=60)
"""How far the database's clock (commit times) may run ahead of the archiving host's
(archive times) before the walk stops too early."""
MAX_SEGMENTS = 64
"""Segments read at most (1 GiB at the default size) before giving up: the target stays."""

COMMIT_AFTER = "commit_after"
END_OF_ARCHIVE = "end_of_archive"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class TimeResolution:
    """How a time target is reached: before the first commit after it (`commit_after`,
    recovery_target_time kept), at the end of the archive (`end_of_archive`: no commit or
    abort after it was archived), or `unknown` (the archive could not be read; the target
    is kept and `note` says what to do if recovery stops short)."""

    time: datetime
    reached_by: str
    last_commit_at: datetime | None
    note: str | None = None

    @property
    def target(self) -> Target:
        """What recovery is configured with."""
        return Target("latest") if self.reached_by == END_OF_ARCHIVE else \
            Target("time", time=self.time)

    def describe(self) -> str:
        when = clock.format_time(self.time)
        if self.reached_by != END_OF_ARCHIVE:
            return when
        last = ("no commit or abort after it was archived" if self.last_commit_at is None
                else f"the last commit at {clock.format_time(self.last_commit_at)} is at "
                "or before it")
        return f"{when}, reached at the end of the archived WAL ({last}: nothing to leave out)"

    def to_json(self) -> dict[str, Any]:
        return {"time": clock.format_time(self.time), "reached_by": self.reached_by,
                "last_commit_at": None if self.last_commit_at is None
                else clock.format_time(self.last_commit_at)}


def resolve_time(archive: WalArchive, backup: Snapshot, when: datetime, scratch: str,
                 pg_bin: str | None = None) -> TimeResolution:
    """How recovery from `backup` reaches `when`, from the newest segments of its unbroken
    WAL chain. `scratch`: a private directory the segments are copied into to be read."""
    size = int(backup.source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
    major = int(backup.source.get("server_version_num", 0) or 0) // 10000 or None
    try:
        waldump = find_program("pg_waldump", major, pg_bin)
    except MedarkError as exc:
        return _unknown(when, str(exc))
    wal = WalMap.build(archive.inventory(), size)
    chain = wal.chain_from(parse_lsn(str(backup.source["start_lsn"])))
    with tempfile.TemporaryDirectory(prefix=".medark-lastcommit-", dir=scratch) as tmp:
        for read, segno in enumerate(range(chain.last, chain.first - 1, -1)):
            found = _newest_record(archive, wal, segno, size)
            if found is None:
                break
            name, record = found
            if clock.parse_time(record.archived) + ARCHIVE_CLOCK_SLACK < when:
                break  # archived before the target: nothing in it or before is later
            if read == MAX_SEGMENTS:
                return _unknown(when, f"no commit in the newest {MAX_SEGMENTS} segments")
            try:
                last = _last_in(archive, record, name, Path(tmp), size, waldump)
            except MedarkError as exc:
                return _unknown(when, str(exc))
            if last is not None:
                kept = last > when
                return TimeResolution(when, COMMIT_AFTER if kept else END_OF_ARCHIVE, last)
    return TimeResolution(when, END_OF_ARCHIVE, None)


def _newest_record(archive: WalArchive, wal: WalMap, segno: int, size: int
                   ) -> tuple[str, WalRecord] | None:
    """The version restore_command would serve: the newest timeline's, complete first."""
    for tli in range(wal.newest_timeline, 0, -1):
        name = segment_name(tli, segno, size)
        record = archive.find(name)
        if record is not None:
            return name, record
    return None


def _last_in(archive: WalArchive, record: WalRecord, name: str, tmp: Path, size: int,
             waldump: str) -> datetime | None:
    data = archive.content(record)
    if len(data) < size:  # a streamed part: the rest is unwritten, as PostgreSQL sees it
        data += bytes(size - len(data))
    path = tmp / name
    atomic_write(path, data, 0o600, sync_dir=False)
    try:
        return last_xact_end(waldump, tmp, name)
    finally:
        os.unlink(path)


def _unknown(when: datetime, why: str) -> TimeResolution:
    return TimeResolution(
        when, UNKNOWN, None,
        f"could not read the archive's last commit time ({why}): if {clock.format_time(when)}"
        " is after the last commit, PostgreSQL stops with \"recovery ended before configured "
        "recovery target was reached\"; restore with --latest then")
