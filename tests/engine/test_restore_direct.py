"""Small files written under their real names in directories the restore made itself,
and the temp-file-and-rename path everywhere else (restore_data, FileJob.direct)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medark.engine.restore import RestoreOptions, RestoreSummary, restore
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.util import clock
from medark.util.progress import NullProgress
from medark.util.sizes import KiB

MTIME = 1_700_000_000_123_456_789


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


OWNERS = [  # (name, uid, gid, permission bits): owned as created, or not
    ("root-644", 0, 0, 0o644), ("root-444", 0, 0, 0o444), ("root-600", 0, 0, 0o600),
    ("setuid", 0, 0, 0o4755), ("setgid-other", 0, 1001, 0o2750), ("sticky", 0, 0, 0o1644),
    ("other-640", 1000, 1000, 0o640), ("other-group", 0, 1000, 0o640),
    ("wide-666", 0, 0, 0o666), ("empty-other", 1000, 1000, 0o600)]


def _owned_files(repo: Repository, directory_mode: int) -> Snapshot:
    files = []
    for inode, (name, uid, gid, bits) in enumerate(OWNERS, start=1):
        chunks = [] if name.startswith("empty") else [os.urandom(500 + inode)]
        node = file_node(repo, name, chunks, inode)
        node.uid, node.gid, node.mode = uid, gid, stat.S_IFREG | bits
        files.append(node)
    snap = snapshot(repo, files)
    return snap


@pytest.mark.skipif(os.geteuid() != 0, reason="owners are restored by root only")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
@pytest.mark.parametrize("fresh", [True, False])
def test_owner_and_mode_whether_created_so_or_set_after(
        repo: Repository, tmp_path: Path, umask: int, fresh: bool) -> None:
    """A file created with its final mode and owner needs no fchown or fchmod; every
    other one gets them: each combination restores exactly the snapshot's owner and bits,
    whatever the umask, in a fresh directory and in an existing one, and a set-group-id
    directory's group is taken into account."""
    snap = _owned_files(repo, 0o755)
    target = tmp_path / "target"
    if not fresh:  # an existing set-group-id directory: files made there get its group
        (target / "ward").mkdir(parents=True)
        os.chown(target / "ward", 0, 1001)
        os.chmod(target / "ward", 0o2775)
    previous = os.umask(umask)
    try:
        summary = run(repo, snap, target)
    finally:
        os.umask(previous)
    assert summary.errors == []
    for name, uid, gid, bits in OWNERS:
        st = os.lstat(target / "ward" / name)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, bits), name
        assert st.st_mtime_ns == MTIME


@pytest.mark.skipif(os.geteuid() != 0, reason="owners are restored by root only")
def test_a_fresh_directory_below_a_set_group_id_target_gives_its_group(
        repo: Repository, tmp_path: Path) -> None:
    """Files created in a fresh directory inherit a set-group-id parent's group: one owned
    by that group is left as created, one owned by root's group is chowned back."""
    snap = _owned_files(repo, 0o755)
    target = tmp_path / "target"
    target.mkdir()
    os.chown(target, 0, 1001)
    os.chmod(target, 0o2775)
    assert run(repo, snap, target).errors == []
    for name, uid, gid, bits in OWNERS:
        st = os.lstat(target / "ward" / name)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, bits), name
