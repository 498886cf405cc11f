"""The position logic of a repository-fed MariaDB standby without a server: which GTIDs
an archived binlog file holds and where its last complete transaction ends
(sources/mysql/gtid_scan.py), and which archived files and transactions a standby at a
given position still needs (service/mysql_standby.read_feed), against a real in-memory
repository holding binlog records as `mysql binlog-stream` stores them.

The binlog bytes are built event by event in MariaDB's framing (19-byte header, the
Gtid_list and GTID event bodies as the server writes them); the other events only need
their type and size, which is all the scanner reads of them."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from medark.engine.mysql_binlog import BinlogArchive, BinlogRecord
from medark.errors import WalGap
from medark.repo.compression import CompressionSpec
from medark.repo.repository import Repository
from medark.service.mysql_standby import read_feed
from medark.sources.mysql.binlog import HEADER, MAGIC, BinlogFormatError
from medark.sources.mysql.gtid_scan import scan_gtids
from medark.sources.mysql.replication import Gtid
from medark.storage.mem import MemoryBackend
from medark.util import clock

FDE, QUERY, ROTATE, XID, TABLE_MAP, WRITE_ROWS = 15, 2, 4, 16, 19, 30
GTID, GTID_LIST = 162, 163


class Log:
    """A binlog file, event by event (timestamps count up from 1000)."""

    def __init__(self, start: list[tuple[int, int, int]]) -> None:
        self.data = bytearray(MAGIC)
        self.time = 1000
        self.event(FDE, b"\x04\x00" + b"10.11.0-MariaDB".ljust(50, b"\0") + bytes(40))
        self.event(GTID_LIST, struct.pack("<I", len(start)) + b"".join(
            struct.pack("<IIQ", d, s, q) for d, s, q in start))

    def event(self, kind: int, body: bytes, server: int = 1) -> int:
        size = HEADER.size + len(body)
        self.data += HEADER.pack(self.time, kind, server, size, len(self.data) + size, 0)
        self.data += body
        self.time += 1
        return len(self.data)

    def gtid(self, seq: int, domain: int = 0, standalone: bool = False) -> None:
        self.event(GTID, struct.pack("<QIB", seq, domain, 1 if standalone else 0) + bytes(6))

    def query(self, text: bytes) -> int:
        # thread id, exec time, db length 3, error code, no status vars; db "his\0"
        return self.event(QUERY, struct.pack("<IIBHH", 7, 0, 3, 0, 0) + b"his\0" + text)

    def row_txn(self, seq: int, domain: int = 0) -> int:
        self.gtid(seq, domain)
        self.query(b"BEGIN")
        self.event(TABLE_MAP, bytes(20))
        self.event(WRITE_ROWS, bytes(30))
        return self.event(XID, struct.pack("<Q", seq))


def test_groups_end_at_xid_commit_or_a_standalone_query_and_a_torn_one_is_cut() -> None:
    log = Log([(0, 1, 5)])
    end6 = log.row_txn(6)
    log.gtid(7, standalone=True)
    end7 = log.query(b"CREATE TABLE his.t (id INT)")
    log.gtid(8)  # a non-transactional engine's group ends in a COMMIT query
    log.query(b"BEGIN")
    log.event(WRITE_ROWS, bytes(30))
    end8 = log.query(b"COMMIT")
    log.gtid(9)  # torn: the file is still being written
    log.query(b"BEGIN")
    log.event(TABLE_MAP, bytes(20))

    found = scan_gtids(bytes(log.data))
    assert found.start_state == [Gtid(0, 1, 5)]
    assert [(str(g.gtid), g.end) for g in found.groups] == [
        ("0-1-6", end6), ("0-1-7", end7), ("0-1-8", end8)]
    assert found.complete_end == end8 and found.open_gtid == Gtid(0, 1, 9)
    assert not found.closed
    # cut there, the file holds exactly the three whole transactions
    again = scan_gtids(bytes(log.data[:found.complete_end]))
    assert [str(g.gtid) for g in again.groups] == ["0-1-6", "0-1-7", "0-1-8"]
    assert again.open_gtid is None
    # a half-written last event is not read at all
    assert scan_gtids(bytes(log.data[:end8 + 10])).complete_end == end8


def test_the_start_state_alone_and_a_closed_file() -> None:
    log = Log([(0, 1, 5), (1, 2, 40)])
    log.row_txn(6)
    end = log.event(ROTATE, struct.pack("<Q", 4) + b"binlog.000002")
    head = scan_gtids(bytes(log.data), limit=1)
    assert head.start_state == [Gtid(0, 1, 5), Gtid(1, 2, 40)] and head.groups == []
    found = scan_gtids(bytes(log.data))
    assert found.closed and found.complete_end == end == len(log.data)
    with pytest.raises(BinlogFormatError):
        scan_gtids(b"\x00bin" + bytes(40))
    short = Log([])
    assert scan_gtids(bytes(short.data[:30])).start_state is None


def _push(archive: BinlogArchive, name: str, data: bytes, complete: bool) -> None:
    blobs, _ = archive.store_blocks(memoryview(data))
    archive.push(BinlogRecord(name, archive.archive_id, len(data),
                              hashlib.sha256(data).hexdigest(), blobs,
                              clock.format_time(clock.now()),
                              "" if complete else "00001772330400000", None))


@pytest.fixture
def archive(tmp_path: Path) -> BinlogArchive:
    """binlog.000001 complete (0-1-6, 0-1-7, rotated), binlog.000002 being written
    (0-1-8, 0-1-9, then 0-1-10 torn)."""
    repo = Repository.init(MemoryBackend(), b"pw", "aes-256-gcm", CompressionSpec("zstd", 1),
                           tmp_path / "cache")
    archive = BinlogArchive(repo, "1")
    first = Log([(0, 1, 5)])
    first.row_txn(6)
    first.row_txn(7)
    first.event(ROTATE, struct.pack("<Q", 4) + b"binlog.000002")
    _push(archive, "binlog.000001", bytes(first.data), complete=True)
    second = Log([(0, 1, 7)])
    second.row_txn(8)
    second.row_txn(9)
    second.gtid(10)
    second.query(b"BEGIN")
    _push(archive, "binlog.000002", bytes(second.data), complete=False)
    return archive


def test_a_standby_needs_the_files_from_the_one_it_is_in(archive: BinlogArchive,
                                                         tmp_path: Path) -> None:
    repo = archive.repo
    assert isinstance(repo, Repository)
    spool = tmp_path / "spool"
    spool.mkdir()
    view = read_feed(repo, "0-1-5", str(spool))
    assert view.archive_id == "1" and view.files == ["binlog.000001", "binlog.000002"]
    assert [str(g.gtid) for g in view.pending] == ["0-1-6", "0-1-7", "0-1-8", "0-1-9"]
    assert view.target == "0-1-9" and view.newest_gtid == "0-1-9"
    assert view.newest_file == "binlog.000002" and view.newest_complete is False
    # the copy of the newest file stops after 0-1-9: the torn 0-1-10 is never replayed
    cut = scan_gtids((spool / "binlog.000002").read_bytes())
    assert cut.open_gtid is None and [str(g.gtid) for g in cut.groups] == ["0-1-8", "0-1-9"]

    later = read_feed(repo, "0-1-8", None)  # binlog.000002 starts at 0-1-7: enough
    assert later.files == ["binlog.000002"] and [str(g.gtid) for g in later.pending] == [
        "0-1-9"]
    assert later.applied_time is not None and later.lag_seconds()[0] == float(
        later.pending[-1].time - later.applied_time)

    done = read_feed(repo, "0-1-9", None)
    assert done.pending == [] and done.target == "0-1-9"
    assert done.lag_seconds() == (0.0, "caught up with the repository")


def test_a_position_the_repository_cannot_continue_is_a_gap(archive: BinlogArchive) -> None:
    repo = archive.repo
    assert isinstance(repo, Repository)
    with pytest.raises(WalGap, match=r"start at binlog\.000001"):
        read_feed(repo, "0-1-3", None)
    third = Log([(0, 1, 20)])
    third.row_txn(21)
    _push(archive, "binlog.000004", bytes(third.data), complete=False)
    with pytest.raises(WalGap, match=r"binlog\.000003 of server 1 is not archived"):
        read_feed(repo, "0-1-9", None)
