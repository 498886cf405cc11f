"""Which transactions (GTIDs) a MariaDB binary log file holds, and where the last complete
one ends. Pure functions over the file's bytes, no I/O.

A repository-fed standby applies archived binlog files with mariadb-binlog. To apply only
what it lacks, and never half a transaction, it needs from each file: the GTID state the
file starts from (its Gtid_list event, written right after the Format_description), the
GTID of every event group with its time, and the offset just past the last group that is
complete. The newest archived file is a version of the file being written: it holds whole
events only (binlog.py), but may stop inside a transaction.

A group starts with a GTID event. It is complete at its XID event (InnoDB), at a Query
event COMMIT or ROLLBACK (non-transactional engines), at an XA_PREPARE event, or, for a
standalone group (DDL, flag FL_STANDALONE), at its one Query event. A Rotate or Stop
event ends a file; nothing else follows it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from medark.sources.mysql.binlog import (
    HEADER,
    MAGIC,
    MAX_EVENT,
    ROTATE_EVENT,
    STOP_EVENT,
    BinlogFormatError,
)
from medark.sources.mysql.replication import Gtid

QUERY_EVENT = 2
XID_EVENT = 16
XA_PREPARE_EVENT = 38
GTID_EVENT = 162
GTID_LIST_EVENT = 163
FL_STANDALONE = 1
_GTID_BODY = struct.Struct("<QIB")
_LIST_ENTRY = struct.Struct("<IIQ")
_QUERY_POST_HEADER = 13
"""thread id, exec time, db name length, error code, status vars length."""


@dataclass(frozen=True)
class Group:
    """One complete transaction (event group) of the file."""

    gtid: Gtid
    time: int
    """Unix time of its last event (whole seconds, as the binlog records them)."""
    end: int
    """File offset just past it."""


@dataclass
class FileGtids:
    start_state: list[Gtid] | None = None
    """The Gtid_list event: the binlog's GTID state before this file's first group; None
    when the bytes end before it."""
    groups: list[Group] = field(default_factory=list)
    complete_end: int = len(MAGIC)
    """Offset just past the last complete group (or the Rotate/Stop that ends the file):
    a replay of the file cut here applies whole transactions only."""
    open_gtid: Gtid | None = None
    """A group begun but not complete in these bytes (a file still being written)."""
    closed: bool = False
    """Ends in a Rotate or Stop event."""


def scan_gtids(buf: bytes | memoryview, limit: int | None = None) -> FileGtids:
    """Walk the whole events of a binlog file's bytes (from its start). `limit`: stop once
    the Gtid_list event has been read (enough to know where the file starts)."""
    view = memoryview(buf)
    if len(view) < len(MAGIC):
        return FileGtids()
    if bytes(view[:4]) != MAGIC:
        raise BinlogFormatError("not a binary log file (bad magic)")
    found = FileGtids()
    offset = len(MAGIC)
    current: tuple[Gtid, bool] | None = None
    while len(view) - offset >= HEADER.size:
        when, kind, server, size, _next, _flags = HEADER.unpack_from(view, offset)
        if size < HEADER.size or size > MAX_EVENT:
            raise BinlogFormatError(f"implausible event size {size} at offset {offset}")
        if len(view) - offset < size:
            break
        body = view[offset + HEADER.size:offset + size]
        end = offset + size
        if kind == GTID_LIST_EVENT:
            found.start_state = _gtid_list(body, offset)
            if limit is not None:
                return found
        elif kind == GTID_EVENT:
            if len(body) < _GTID_BODY.size:
                raise BinlogFormatError(f"short GTID event at offset {offset}")
            seq, domain, flags = _GTID_BODY.unpack_from(body)
            current = (Gtid(domain, server, seq), bool(flags & FL_STANDALONE))
            found.open_gtid = current[0]
        elif current is not None and _ends_group(kind, body, current[1]):
            found.groups.append(Group(current[0], when, end))
            found.complete_end, current, found.open_gtid = end, None, None
        elif kind in (ROTATE_EVENT, STOP_EVENT) and current is None:
            found.complete_end, found.closed = end, True
        elif current is None and not found.groups:
            found.complete_end = end  # the file's header events
        offset = end
    return found


def _ends_group(kind: int, body: memoryview, standalone: bool) -> bool:
    if kind in (XID_EVENT, XA_PREPARE_EVENT):
        return True
    if kind != QUERY_EVENT:
        return False
    if standalone:
        return True
    return _query_text(body).upper().startswith((b"COMMIT", b"ROLLBACK"))


def _query_text(body: memoryview) -> bytes:
    """The statement of a Query event (with the checksum, if any, still at its end)."""
    if len(body) < _QUERY_POST_HEADER:
        return b""
    db_len = body[8]
    status_len = struct.unpack_from("<H", body, 11)[0]
    start = _QUERY_POST_HEADER + status_len + db_len + 1
    return bytes(body[start:start + 16])


def _gtid_list(body: memoryview, offset: int) -> list[Gtid]:
    if len(body) < 4:
        raise BinlogFormatError(f"short Gtid_list event at offset {offset}")
    count = struct.unpack_from("<I", body)[0] & 0x0FFFFFFF
    if 4 + count * _LIST_ENTRY.size > len(body):
        raise BinlogFormatError(f"Gtid_list event at offset {offset} lists more than it holds")
    return [Gtid(d, s, q) for d, s, q in
            (_LIST_ENTRY.unpack_from(body, 4 + i * _LIST_ENTRY.size) for i in range(count))]
