"""A follower's passes: WAL records copied as they land, without listing the
destination's whole archive at every pass (on S3 a large archive is many LIST calls)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from medark.engine.pg_wal import WalArchive
from medark.repo.compression import parse_compression
from medark.repo.repository import Repository
from medark.service import copy as copy_service
from medark.service.copy import Endpoint, Replicator, Selection
from medark.snapshot.model import Snapshot
from medark.snapshot.store import SNAPSHOTS_PREFIX, all_snapshots, save_snapshot, save_tree
from medark.storage.base import ObjectInfo
from medark.storage.local import LocalBackend
from medark.util import clock

SYSTEM_ID = "7300000000000000001"


class CountingBackend(LocalBackend):
    """A local backend that counts its listings per prefix and its snapshot reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: Counter[str] = Counter()
        self.snapshot_reads = 0

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self.listed[prefix] += 1
        return super().list(prefix)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if name.startswith(SNAPSHOTS_PREFIX):
            self.snapshot_reads += 1
        return super().load(name, offset, length)


def _repo(backend: LocalBackend, cache: Path) -> Repository:
    return Repository.init(backend, b"pw", "aes-256-gcm", parse_compression("zstd:3"), cache)


def _segment(n: int) -> str:
    return f"00000001000000000000{n:04X}"


def test_a_follower_lists_the_destinations_archive_once_per_relist_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _repo(LocalBackend(tmp_path / "src"), tmp_path / "cache-src")
    dst_backend = CountingBackend(tmp_path / "dst")
    dst = _repo(dst_backend, tmp_path / "cache-dst")
    archive = WalArchive(src, SYSTEM_ID)
    replicator = Replicator(Endpoint(src, "src"), Endpoint(dst, "dst"), None,
                            Selection(pick=lambda _repo: []))
    try:
        archive.push(_segment(1), os.urandom(200_000), "archive_command")
        first = replicator.run_pass()
        assert first.stats.records_copied == 1 and dst_backend.listed["wal/"] == 1

        for n in (2, 3):
            archive.push(_segment(n), os.urandom(200_000), "archive_command")
            result = replicator.run_pass()
            assert result.stats.records_copied == 1 and result.stats.records_present == n - 1
        assert dst_backend.listed["wal/"] == 1  # known from what the follower copied
        # the offsite point is the newest record's, read from the names already listed
        assert result.stats.newest_point is not None
        assert result.stats.newest_point == result.source_newest

        monkeypatch.setattr(copy_service, "RELIST_SECONDS", 0.0)
        again = replicator.run_pass()
        assert again.stats.records_copied == 0 and again.stats.records_present == 3
        assert dst_backend.listed["wal/"] == 2
    finally:
        replicator.close()
        src.close()
        dst.close()
    copied = sorted(name.rsplit("/", 1)[-1] for name in dst.list_names("wal/"))
    assert copied == [_segment(n) for n in (1, 2, 3)]


def test_a_follower_reads_each_snapshot_file_once(tmp_path: Path) -> None:
    src_backend = CountingBackend(tmp_path / "src")
    dst_backend = CountingBackend(tmp_path / "dst")
    src = _repo(src_backend, tmp_path / "cache-src")
    dst = _repo(dst_backend, tmp_path / "cache-dst")
    replicator = Replicator(Endpoint(src, "src"), Endpoint(dst, "dst"), None,
                            Selection(pick=all_snapshots))
    try:
        for host in ("his", "lis"):
            save_snapshot(src, Snapshot(time=clock.now(), tree=save_tree(src, []),
                                        paths=["/data"], hostname=host))
            src.flush()
            assert replicator.run_pass().stats.snapshots_copied == 1
        # each source snapshot read once; each copy read back once after it was written
        assert src_backend.snapshot_reads == 2 and dst_backend.snapshot_reads == 2
        again = replicator.run_pass()
        assert again.stats.snapshots_copied == 0 and again.stats.snapshots_present == 2
        assert src_backend.snapshot_reads == 2 and dst_backend.snapshot_reads == 2
    finally:
        replicator.close()
        src.close()
        dst.close()
