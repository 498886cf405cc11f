"""PostgreSQL source helpers that need no server: WAL naming and LSN arithmetic, the tar
tap that picks backup_label and backup_manifest out of pg_basebackup's stream."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medark.errors import UsageError
from medark.sources.postgres.tar_tap import TarTap
from medark.sources.postgres.wal import (
    Segment,
    format_lsn,
    parse_history,
    parse_lsn,
    segment_name,
    segment_of,
    timeline_of_segment_at,
    wal_file_kind,
)

SIXTEEN_MB = 16 * 1024 * 1024


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lsn_round_trip(lsn: int) -> None:
    assert parse_lsn(format_lsn(lsn)) == lsn


def test_lsn_and_segment_names_match_postgres() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    lsn = parse_lsn("0/3000158")
    assert segment_name(1, segment_of(lsn)) == "000000010000000000000003"
    # 4 GB of WAL per "log id" with 16 MB segments: 256 segments before the id increments
    assert segment_name(2, 256) == "000000020000000100000000"
    assert Segment.parse("000000020000000100000000") == Segment(2, 256)
    assert segment_name(1, 5, 64 * 1024 * 1024) == "000000010000000000000005"
    with pytest.raises(UsageError):
        parse_lsn("3000158")


def test_wal_file_kinds() -> None:
    assert wal_file_kind("000000010000000000000003") == "segment"
    assert wal_file_kind("000000010000000000000003.partial") == "partial"
    assert wal_file_kind("00000002.history") == "history"
    assert wal_file_kind("000000010000000000000002.00000028.backup") == "backup"
    for bogus in ("postgresql.conf", "../000000010000000000000003", "00000001000000000000003",
                  "000000010000000000000003.tmp", "archive_status"):
        assert wal_file_kind(bogus) is None


def test_timeline_history() -> None:
    history = parse_history("1\t0/3000158\tno recovery target specified\n\n"
                            "2\t0/5000000\tbefore 2026-11-26 10:42:00+00\n")
    assert [(h.parent, h.switch_lsn) for h in history] == [(1, 0x3000158), (2, 0x5000000)]
    assert timeline_of_segment_at(0x2000000, history, 3) == 1
    assert timeline_of_segment_at(0x4000000, history, 3) == 2
    assert timeline_of_segment_at(0x6000000, history, 3) == 3


def _tar(members: dict[str, bytes], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("read_size", [1, 511, 512, 4096, 1 << 20])
def test_tar_tap_passes_bytes_through_and_captures_members(fmt: int, read_size: int) -> None:
    long_dir = "base/" + "d" * 120 + "/"
    members = {
        "backup_label": b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n",
        "base/1/1259": bytes(range(256)) * 100,
        long_dir + "file": b"x" * 1000,
        "global/pg_control": b"\x01" * 8192,
        "backup_manifest": b'{"WAL-Ranges": [{"Timeline": 1, "End-LSN": "0/2000100"}]}',
    }
    if fmt == tarfile.USTAR_FORMAT:
        del members[long_dir + "file"]  # ustar cannot hold the name
    raw = _tar(members, fmt)
    tap = TarTap(io.BytesIO(raw), {"backup_label", "backup_manifest"})
    out = bytearray()
    while block := tap.read(read_size):
        out += block
    assert bytes(out) == raw
    assert tap.captured == {"backup_label": members["backup_label"],
                            "backup_manifest": members["backup_manifest"]}
    assert tap.members == len(members)
