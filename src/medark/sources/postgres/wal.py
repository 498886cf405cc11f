"""PostgreSQL write-ahead-log arithmetic: LSNs, segment file names, timeline history.

Pure functions, no I/O: the archive, the status report and the restore planner all reason
about WAL through these (the rules are PostgreSQL's xlog_internal.h).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medark.errors import UsageError

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
PARTIAL_RE = re.compile(r"^([0-9A-F]{24})\.partial$")
HISTORY_RE = re.compile(r"^([0-9A-F]{8})\.history$")
BACKUP_RE = re.compile(r"^([0-9A-F]{24})\.([0-9A-F]{8})\.backup$")


def parse_lsn(text: str) -> int:
    """'16/B374D848' → integer position."""
    match = re.fullmatch(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})", text.strip())
    if not match:
        raise UsageError(f"not a PostgreSQL LSN (expected X/Y in hex): {text!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segments_per_id(segment_size: int) -> int:
    return 0x100000000 // segment_size


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per = segments_per_id(segment_size)
    return f"{timeline:08X}{segno // per:08X}{segno % per:08X}"


def segment_of(lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return lsn // segment_size


@dataclass(frozen=True, order=True)
class Segment:
    timeline: int
    segno: int

    @classmethod
    def parse(cls, name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
        match = SEGMENT_RE.match(name)
        if not match:
            raise UsageError(f"not a WAL segment name: {name!r}")
        tli, log, seg = (int(g, 16) for g in match.groups())
        return cls(tli, log * segments_per_id(segment_size) + seg)

    def name(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
        return segment_name(self.timeline, self.segno, segment_size)


def is_segment(name: str) -> bool:
    return SEGMENT_RE.match(name) is not None


def wal_file_kind(name: str) -> str | None:
    """'segment', 'partial', 'history', 'backup', or None for a name PostgreSQL never
    archives (so a typo or a path cannot land in the archive)."""
    if SEGMENT_RE.match(name):
        return "segment"
    if PARTIAL_RE.match(name):
        return "partial"
    if HISTORY_RE.match(name):
        return "history"
    if BACKUP_RE.match(name):
        return "backup"
    return None


@dataclass(frozen=True)
class HistoryEntry:
    """Timeline `parent` ended (and the next began) at `switch_lsn`."""

    parent: int
    switch_lsn: int
    reason: str


def parse_history(text: str) -> list[HistoryEntry]:
    """The lines of a NNNNNNNN.history file: `parentTLI <tab> switchpoint <tab> reason`."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 2)
        if len(fields) < 2:
            raise ValueError(f"malformed timeline history line: {line!r}")
        entries.append(HistoryEntry(int(fields[0]), parse_lsn(fields[1]),
                                    fields[2] if len(fields) > 2 else ""))
    return entries


def timeline_of_segment_at(lsn: int, history: list[HistoryEntry], newest: int) -> int:
    """Which timeline holds position `lsn` on the path to timeline `newest`."""
    for entry in history:
        if lsn < entry.switch_lsn:
            return entry.parent
    return newest
