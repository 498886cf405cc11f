"""The binary log's file names and event framing, and the backup-point coordinates that
mariadb-backup and mariadb-dump write. Pure functions, no I/O.

A binlog file is the magic `\\xfebin` followed by events, each with a 19-byte header
(timestamp, type, server id, event size, next position, flags). Only whole events are ever
archived or replayed: a file being written may end in the middle of one.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from medark.errors import SourceError, UsageError

MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIIIH")
STOP_EVENT = 3
ROTATE_EVENT = 4
FILE_RE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)\.([0-9]{6,20})$")
MAX_EVENT = 1 << 30


class BinlogFormatError(SourceError, ValueError):
    """Bytes or text that are not what MariaDB writes. Still a ValueError, which is what
    callers have always caught, and a MedarkError, so nothing lets it out as a traceback."""


def parse_file_name(name: str) -> tuple[str, int] | None:
    """'binlog.000012' → ('binlog', 12); None for anything else."""
    match = FILE_RE.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def file_name(basename: str, number: int) -> str:
    return f"{basename}.{number:06d}"


@dataclass
class EventScan:
    end: int
    """File offset just past the last whole event (the valid length)."""
    last_time: int | None = None
    """Unix time of the last whole event (whole seconds, as the binlog records it)."""
    last_type: int | None = None
    events: int = 0

    @property
    def closed(self) -> bool:
        """The file ends with a Rotate or Stop event: the server moved on from it."""
        return self.last_type in (ROTATE_EVENT, STOP_EVENT)


def scan_events(buf: bytes | memoryview, start: int = 0, base: int = 0,
                previous: EventScan | None = None) -> EventScan:
    """Walk whole events in `buf` (the file's bytes from offset `base`) from file offset
    `start`; continues `previous` when given. Raises BinlogFormatError on a bad magic or size."""
    view = memoryview(buf)
    scan = EventScan(start)
    if previous is not None:
        scan = EventScan(start, previous.last_time, previous.last_type, previous.events)
    if scan.end == 0:
        if base != 0:
            raise BinlogFormatError("scanning from the start needs the file's first bytes")
        if len(view) < len(MAGIC):
            return scan
        if bytes(view[:4]) != MAGIC:
            raise BinlogFormatError("not a binary log file (bad magic)")
        scan.end = len(MAGIC)
    while True:
        offset = scan.end - base
        if offset < 0:
            raise BinlogFormatError("scan start is before the buffer")
        if len(view) - offset < HEADER.size:
            return scan
        when, kind, _server, size, _next, _flags = HEADER.unpack_from(view, offset)
        if size < HEADER.size or size > MAX_EVENT:
            raise BinlogFormatError(f"implausible event size {size} at offset {scan.end}")
        if len(view) - offset < size:
            return scan
        scan.end += size
        scan.events += 1
        scan.last_type = kind
        if when:
            scan.last_time = when


@dataclass(frozen=True)
class Coordinates:
    """The binlog position of a backup point, and its GTID position (MariaDB's
    domain-server-sequence list)."""

    file: str
    position: int
    gtid: str | None = None


def parse_binlog_info(text: str) -> Coordinates:
    """mariadb-backup's xtrabackup_binlog_info: `file <tab> position [<tab> gtid]`."""
    fields = text.strip().split("\t") if "\t" in text else text.split()
    if (len(fields) < 2 or not re.fullmatch(r"[0-9]{1,20}", fields[1])
            or parse_file_name(fields[0]) is None):
        raise BinlogFormatError(f"unexpected binlog info {text.strip()[:80]!r}")
    gtid = fields[2].strip() if len(fields) > 2 and fields[2].strip() else None
    return Coordinates(fields[0], int(fields[1]), gtid)


_DUMP_POS = re.compile(r"CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE="
                       r"'([^']+)', *(?:MASTER|SOURCE)_LOG_POS=([0-9]{1,20})(?![0-9])")
_DUMP_GTID = re.compile(r"SET GLOBAL gtid_(?:slave|replica)_pos='([^']*)'")


def parse_dump_coordinates(head: str, tail: str) -> Coordinates | None:
    """From a mariadb-dump --master-data=2 --gtid: the position is near the top, the GTID
    (deferred) near the end. None when the dump has no position (binary log off)."""
    match = _DUMP_POS.search(head)
    if not match:
        return None
    gtid = _DUMP_GTID.search(tail) or _DUMP_GTID.search(head)
    return Coordinates(match.group(1), int(match.group(2)),
                       gtid.group(1) if gtid and gtid.group(1) else None)


def dump_completed(tail: str) -> bool:
    return "-- Dump completed" in tail


def stop_datetime(when: datetime) -> str:
    """mariadb-binlog --stop-datetime for a target: events have whole-second times and
    the option stops at the first event at or after it, so the target's second is cut
    (floor): nothing after the target is ever replayed; transactions in the same second
    before it are left out too. The tools run with TZ=UTC, so this is UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def check_archive_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", text):
        raise UsageError(f"not a server id or UUID: {text!r}")
    return text
