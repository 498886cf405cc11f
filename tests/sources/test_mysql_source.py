"""MariaDB source helpers that need no server: binlog file names and event framing, the
backup point's coordinates as mariadb-backup and mariadb-dump write them, the xbstream tap,
and connection strings (a password never reaches argv)."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medark.errors import UsageError
from medark.sources.mysql.binlog import (
    MAGIC,
    ROTATE_EVENT,
    Coordinates,
    dump_completed,
    file_name,
    parse_binlog_info,
    parse_dump_coordinates,
    parse_file_name,
    scan_events,
    stop_datetime,
)
from medark.sources.mysql.client import Conn
from medark.sources.mysql.xbstream import XbstreamTap


def event(when: int, kind: int, body: bytes = b"") -> bytes:
    size = 19 + len(body)
    return struct.pack("<IBIIIH", when, kind, 1, size, 0, 0) + body


def binlog(*events: bytes) -> bytes:
    return MAGIC + b"".join(events)


def test_file_names() -> None:
    assert parse_file_name("binlog.000012") == ("binlog", 12)
    assert parse_file_name("mysql-bin.1000000") == ("mysql-bin", 1000000)
    assert file_name("binlog", 13) == "binlog.000013"
    for bad in ("binlog.index", "binlog.12", "../binlog.000001", ".binlog.000001"):
        assert parse_file_name(bad) is None


def test_scan_stops_at_the_last_whole_event() -> None:
    data = binlog(event(100, 15, b"x" * 50), event(101, 2, b"q" * 30),
                  event(102, ROTATE_EVENT, b"binlog.000002"))
    whole = scan_events(data)
    assert whole.end == len(data) and whole.events == 3 and whole.closed
    assert whole.last_time == 102
    cut = scan_events(data[:-5])  # the rotate event is half written
    assert cut.end == len(data) - (19 + 13) and not cut.closed and cut.last_time == 101
    assert scan_events(MAGIC[:2]).end == 0
    with pytest.raises(ValueError):
        scan_events(b"GIF89a" + bytes(40))


@given(st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=20),
       st.integers(min_value=1, max_value=64))
def test_incremental_scan_equals_one_scan(bodies: list[int], step: int) -> None:
    data = binlog(*(event(1000 + i, 2, b"e" * n) for i, n in enumerate(bodies)))
    scan = scan_events(b"")
    for upto in range(step, len(data) + step, step):
        base = scan.end - scan.end % 5  # any earlier offset: the caller's block boundary
        scan = scan_events(data[base:upto], scan.end, base, scan)
    whole = scan_events(data)
    assert (scan.end, scan.events, scan.last_time) == (whole.end, whole.events, whole.last_time)


def test_backup_point_coordinates() -> None:
    assert parse_binlog_info("binlog.000002\t604\t0-1-10\n") == \
        Coordinates("binlog.000002", 604, "0-1-10")
    assert parse_binlog_info("binlog.000002\t604\t\n") == Coordinates("binlog.000002", 604)
    with pytest.raises(ValueError):
        parse_binlog_info("garbage")
    head = ("-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n"
            "-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000007', MASTER_LOG_POS=385;\n")
    tail = "-- SET GLOBAL gtid_slave_pos='0-1-42';\n\n-- Dump completed on 2026-01-01\n"
    assert parse_dump_coordinates(head, tail) == Coordinates("binlog.000007", 385, "0-1-42")
    assert parse_dump_coordinates("-- no position\n", tail) is None
    assert dump_completed(tail) and not dump_completed(head)


def test_stop_datetime_cuts_the_targets_second_in_utc() -> None:
    # mariadb-binlog runs with TZ=UTC; events in T's own second are left out.
    when = datetime(2026, 3, 1, 12, 0, 5, 600000, tzinfo=UTC)
    assert stop_datetime(when) == "2026-03-01 12:00:05"
    local = datetime.fromisoformat("2026-03-01T13:00:05.6+01:00")
    assert stop_datetime(local) == "2026-03-01 12:00:05"


def chunk(path: str, payload: bytes | None, offset: int = 0) -> bytes:
    name = path.encode()
    if payload is None:
        return b"XBSTCK01" + b"\0E" + struct.pack("<I", len(name)) + name
    return (b"XBSTCK01" + b"\0P" + struct.pack("<I", len(name)) + name
            + struct.pack("<QQI", len(payload), offset, zlib.crc32(payload)) + payload)


@pytest.mark.parametrize("block", [1, 3, 17, 4096])
def test_xbstream_tap_captures_wanted_members_whatever_the_reads(block: int) -> None:
    stream = b"".join([
        chunk("ibdata1", b"\x00" * 1000), chunk("xtrabackup_binlog_info", b"binlog.0000"),
        chunk("h/t.ibd", b"page" * 100),  # interleaved with the wanted file (--parallel)
        chunk("xtrabackup_binlog_info", b"03\t99\t0-1-5\n", 11), chunk("h/t.ibd", None),
        chunk("xtrabackup_binlog_info", None), chunk("ibdata1", None),
    ])
    tap = XbstreamTap(io.BytesIO(stream), {"xtrabackup_binlog_info"})
    out = bytearray()
    while data := tap.read(block):
        out += data
    assert bytes(out) == stream  # passed through unchanged
    assert tap.broken is None and tap.files == 3
    assert tap.captured == {"xtrabackup_binlog_info": b"binlog.000003\t99\t0-1-5\n"}


def test_xbstream_tap_reports_a_stream_it_cannot_follow() -> None:
    tap = XbstreamTap(io.BytesIO(b"not an xbstream at all"), {"x"})
    while tap.read(5):
        pass
    assert tap.broken is not None and tap.captured == {}


def test_dsn_forms_and_the_password_stays_out_of_argv() -> None:
    uri = Conn.parse("mysql://backup:s%40cret@db.example:3307/?socket=/run/m.sock")
    assert uri == Conn("db.example", 3307, "backup", "/run/m.sock", "s@cret")
    kv = Conn.parse("host=127.0.0.1 port=3306 user=backup password=s3cret")
    assert kv.password == "s3cret"
    for conn in (uri, kv):
        assert not any(conn.password in arg for arg in conn.args() if conn.password)
        assert conn.environment()["MYSQL_PWD"] == conn.password
        assert conn.environment()["TZ"] == "UTC"
        assert conn.password not in conn.safe()
    assert "--protocol=TCP" in kv.args()
    assert kv.override(None, 3310, None, None).port == 3310
    for bad in ("postgres://x@y", "hostname=x", "host=x port=abc", "mysql://h:port/"):
        with pytest.raises(UsageError):
            Conn.parse(bad)
