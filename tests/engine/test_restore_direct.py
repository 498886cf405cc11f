"""Small files written under their real names in directories the restore made itself,
and the temp-file-and-rename path everywhere else (restore_data, FileJob.direct)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medark.engine.restore import RestoreOptions, RestoreSummary, restore
from medark.repo.compression import CompressionSpec
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.storage.local import LocalBackend
from medark.util import clock
from medark.util.progress import NullProgress
from medark.util.sizes import KiB

MTIME = 1_700_000_000_123_456_789


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repository = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", "aes-256-gcm",
                                 CompressionSpec("zstd", 1), cache_dir=tmp_path / "cache")
    yield repository
    repository.close()


def file_node(repo: Repository, name: str, chunks: list[bytes], inode: int) -> Node:
    ids = [repo.save_blob(BlobType.DATA, c).id for c in chunks]
    return Node(name, "file", mode=stat.S_IFREG | 0o640, size=sum(map(len, chunks)),
                content=ids, inode=inode, device_id=1, mtime_ns=MTIME)


def snapshot(repo: Repository, files: list[Node]) -> Snapshot:
    ward = Node("ward", "dir", mode=stat.S_IFDIR | 0o755, mtime_ns=MTIME,
                subtree=save_tree(repo, files))
    snap = Snapshot(time=clock.now(), tree=save_tree(repo, [ward]), paths=["/ward"],
                    hostname="h")
    repo.flush()
    save_snapshot(repo, snap)
    return snap


def contents() -> dict[str, list[bytes]]:
    return {f"note{i}.txt": [os.urandom(1 * KiB + i)] for i in range(20)} | {
        "empty.txt": [], "two-chunks.bin": [os.urandom(40 * KiB), os.urandom(30 * KiB)]}


def run(repo: Repository, snap: Snapshot, target: Path) -> RestoreSummary:
    return restore(repo, snap, RestoreOptions(str(target)), NullProgress())


def renames_of(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The destinations restore renames onto (the real os.rename still does the work)."""
    seen: list[str] = []
    real: Callable[..., Any] = os.rename

    def spy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(os.fspath(dst))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", spy)
    return seen


def test_fresh_target_is_written_in_place(repo: Repository, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = contents()
    snap = snapshot(repo, [file_node(repo, n, c, i) for i, (n, c) in enumerate(data.items())])
    renamed = renames_of(monkeypatch)
    summary = run(repo, snap, tmp_path / "out")
    assert summary.errors == [] and summary.files_restored == len(data) + 1
    ward = tmp_path / "out" / "ward"
    for name, chunks in data.items():
        assert (ward / name).read_bytes() == b"".join(chunks)
        st = (ward / name).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o640, MTIME)
    # Only the file of two chunks (written by several writes) went through a temp file.
    assert renamed == [str(ward / "two-chunks.bin")]
    assert not list(ward.glob(".medark-*"))


def test_existing_directory_keeps_rename_and_never_writes_through(
        repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = contents()
    snap = snapshot(repo, [file_node(repo, n, c, i) for i, (n, c) in enumerate(data.items())])
    ward = tmp_path / "out" / "ward"
    ward.mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not to be overwritten")
    os.link(outside, ward / "note3.txt")  # a hard link planted where a file goes
    renamed = renames_of(monkeypatch)
    summary = run(repo, snap, tmp_path / "out")
    assert summary.errors == []
    assert outside.read_bytes() == b"not to be overwritten"
    assert (ward / "note3.txt").read_bytes() == data["note3.txt"][0]
    assert sorted(renamed) == sorted(str(ward / name) for name in data)


def test_file_whose_data_is_missing_leaves_nothing(repo: Repository, tmp_path: Path) -> None:
    good = file_node(repo, "good.txt", [b"fine"], 1)
    lost = Node("lost.txt", "file", mode=stat.S_IFREG | 0o600, size=4,
                content=[bytes(32)], inode=2, mtime_ns=MTIME)
    summary = run(repo, snapshot(repo, [good, lost]), tmp_path / "out")
    ward = tmp_path / "out" / "ward"
    assert (ward / "good.txt").read_bytes() == b"fine"
    assert not (ward / "lost.txt").exists()
    assert summary.damaged and len(summary.errors) == 1


def test_locate_many_matches_locate(repo: Repository) -> None:
    flushed = [repo.save_blob(BlobType.DATA, os.urandom(100 + i)).id for i in range(3)]
    repo.flush()
    unflushed = repo.save_blob(BlobType.DATA, os.urandom(90)).id  # still being packed
    absent = bytes(32)
    found = repo.locate_many([*flushed, unflushed, absent, flushed[0]])
    assert set(found) == set(flushed)  # a blob still in an open pack has no place yet
    for blob_id in flushed:
        assert found[blob_id] == repo.locate(blob_id)
    assert absent not in found
    repo.flush()
    assert repo.locate_many([unflushed]) == {unflushed: repo.locate(unflushed)}
