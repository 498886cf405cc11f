"""The recoverable window (which base backup reaches a target, where the WAL breaks) and
WAL/binlog retention (what forget may expire), from record names and snapshots alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from medark.engine.mysql_binlog import record_name as binlog_name
from medark.engine.mysql_retention import binlog_to_expire
from medark.engine.pg_retention import wal_to_expire
from medark.engine.pg_wal import Inventory, record_name
from medark.engine.pg_window import Target, WalMap, choose_backup, pg_base_backups
from medark.errors import TargetOutOfRange, UsageError, WalGap
from medark.snapshot.model import Snapshot
from medark.sources.postgres.wal import format_lsn, segment_name

SYS = "7000000000000000001"
SEG = 16 * 1024 * 1024
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def backup(start_seg: int, hours: int, system_id: str = SYS) -> Snapshot:
    start = start_seg * SEG + 0x28
    return Snapshot(
        time=T0 + timedelta(hours=hours), tree=b"\0" * 32, paths=["/postgres"], hostname="db",
        id=f"{start_seg:02d}" + "ab" * 31,
        source={"kind": "postgres", "system_id": system_id, "start_lsn": format_lsn(start),
                "stop_lsn": format_lsn(start + 0x1000), "timeline": 1,
                "segment_size": SEG,
                "stop_time": (T0 + timedelta(hours=hours, minutes=1)).isoformat()})


def segments(*numbers: int, tli: int = 1) -> list[str]:
    return [segment_name(tli, n) for n in numbers]


def never(_segno: int) -> datetime | None:
    return None


def test_chain_and_gap() -> None:
    wal = WalMap.build(Inventory.from_names(segments(2, 3, 4, 6)), SEG)
    chain = wal.chain_from(2 * SEG + 5)
    assert (chain.first, chain.last, chain.gap_at) == (2, 4, 5)
    assert wal.chain_from(6 * SEG).gap_at is None


def test_choose_the_newest_backup_before_the_target() -> None:
    backups = [backup(2, 0), backup(10, 24)]
    wal = WalMap.build(Inventory.from_names(segments(*range(2, 15))), SEG)
    at = Target("time", time=T0 + timedelta(hours=30))
    assert choose_backup(backups, at, wal, T0 + timedelta(hours=40), never) is backups[1]
    earlier = Target("time", time=T0 + timedelta(hours=5))
    assert choose_backup(backups, earlier, wal, T0 + timedelta(hours=40), never) is backups[0]
    assert choose_backup(backups, Target("latest"), wal, None, never) is backups[1]


def test_targets_outside_the_window() -> None:
    backups = [backup(2, 0)]
    wal = WalMap.build(Inventory.from_names(segments(2, 3)), SEG)
    with pytest.raises(TargetOutOfRange, match="before the oldest base backup"):
        choose_backup(backups, Target("time", time=T0 - timedelta(days=1)), wal, T0, never)
    with pytest.raises(TargetOutOfRange, match="after the newest archived WAL"):
        choose_backup(backups, Target("time", time=T0 + timedelta(hours=3)), wal,
                      T0 + timedelta(hours=2), never)
    with pytest.raises(TargetOutOfRange, match="no PostgreSQL base backup"):
        choose_backup([], Target("latest"), wal, None, never)


def test_a_gap_breaks_latest_but_not_a_target_before_it() -> None:
    backups = [backup(2, 0)]
    wal = WalMap.build(Inventory.from_names(segments(2, 3, 4, 7, 8)), SEG)
    with pytest.raises(WalGap, match="gap at segment number 5"):
        choose_backup(backups, Target("latest"), wal, None, never)
    assert choose_backup(backups, Target("lsn", lsn=4 * SEG + 10), wal, None, never)
    reached = {4: T0 + timedelta(hours=2)}
    early = Target("time", time=T0 + timedelta(hours=1))
    assert choose_backup(backups, early, wal, T0 + timedelta(hours=9), reached.get)
    late = Target("time", time=T0 + timedelta(hours=3))
    with pytest.raises(WalGap):
        choose_backup(backups, late, wal, T0 + timedelta(hours=9), reached.get)


def test_missing_wal_of_the_backup_itself() -> None:
    wal = WalMap.build(Inventory.from_names(segments(3, 4)), SEG)
    with pytest.raises(WalGap, match="incomplete"):
        choose_backup([backup(2, 0)], Target("latest"), wal, None, never)


def test_several_clusters_need_a_choice() -> None:
    snaps = [backup(2, 0), backup(2, 1, system_id="7000000000000000002")]
    with pytest.raises(UsageError, match="--system-id"):
        pg_base_backups(snaps)
    assert pg_base_backups(snaps, SYS) == [snaps[0]]


class Listing:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def list_names(self, prefix: str) -> Iterator[str]:
        return iter(n for n in self.names if n.startswith(prefix))


def test_forget_expires_wal_no_retained_backup_needs() -> None:
    names = [record_name(SYS, n) for n in segments(1, 2, 3, 4, 5)]
    names += [record_name(SYS, "00000002.history"),
              record_name(SYS, "000000010000000000000001.00000028.backup"),
              record_name(SYS, "000000010000000000000003.00000028.backup")]
    names += [record_name(SYS, f"{segment_name(1, 5)}.partial", v) for v in ("001", "002")]
    names += [record_name(SYS, f"{segment_name(1, 6)}.partial", v) for v in ("003", "004")]
    other = [record_name("7000000000000000009", n) for n in segments(1)]
    expired = wal_to_expire(Listing(names + other), [backup(3, 5)])
    base = {n.rsplit("/", 1)[-1] for n in expired}
    assert base == {
        segment_name(1, 1), segment_name(1, 2),  # before the oldest retained backup
        "000000010000000000000001.00000028.backup",
        f"{segment_name(1, 5)}.partial-001", f"{segment_name(1, 5)}.partial-002",  # complete
        f"{segment_name(1, 6)}.partial-003",  # superseded by a newer version
    }
    assert not set(other) & set(expired)  # a cluster without a retained backup keeps all
    assert wal_to_expire(Listing(names), []) == []


def test_forget_expires_binlogs_no_retained_backup_can_replay() -> None:
    server = "1"
    names = [binlog_name(server, f"binlog.{n:06d}") for n in (1, 2, 3, 4)]
    names += [binlog_name(server, "binlog.000004", v) for v in ("001", "002")]
    names += [binlog_name(server, "binlog.000005", v) for v in ("003", "004")]
    kept = Snapshot(time=T0, tree=b"\0" * 32, paths=["/mysql/1"], hostname="db",
                    source={"kind": "mysql", "archive_id": server,
                            "binlog_file": "binlog.000003"})
    expired = {n.rsplit("/", 1)[-1] for n in binlog_to_expire(Listing(names), [kept])}
    assert expired == {"binlog.000001", "binlog.000002", "binlog.000004.partial-001",
                       "binlog.000004.partial-002", "binlog.000005.partial-003"}
    assert binlog_to_expire(Listing(names), []) == []
