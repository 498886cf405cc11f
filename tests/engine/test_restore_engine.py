"""The restore engine against a real repository built through the Python API."""

from __future__ import annotations

import errno
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from medark.engine import restore_data
from medark.engine.restore import RestoreOptions, RestoreSummary, restore
from medark.engine.restore_select import PathFilter, Pattern
from medark.errors import IntegrityError, MedarkError, NoSpace, UsageError
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.util import clock
from medark.util.progress import NullProgress
from medark.util.sizes import KiB, MiB

MTIME = 1_700_000_000_123_456_789
DIR_MTIME = 1_600_000_000_987_654_321
ZERO = bytes(1 * MiB)


def chunk(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


class Builder:
    """Writes blobs and trees; nodes get fixed mtimes so restores can be compared."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.inode = 1000

    def file(self, name: str, chunks: list[bytes], mode: int = 0o640, **extra: Any) -> Node:
        ids = [self.repo.save_blob(BlobType.DATA, c).id for c in chunks]
        self.inode += 1
        fields: dict[str, Any] = {"inode": self.inode, "device_id": 1, "uid": 1234,
                                  "gid": 5678, "mtime_ns": MTIME}
        fields.update(extra)
        return Node(name, "file", mode=stat.S_IFREG | mode, size=sum(map(len, chunks)),
                    content=ids, **fields)

    def dir(self, name: str, children: list[Node], mode: int = 0o755) -> Node:
        return Node(name, "dir", mode=stat.S_IFDIR | mode, mtime_ns=DIR_MTIME,
                    subtree=save_tree(self.repo, children))

    def snapshot(self, top: list[Node], paths: list[str]) -> Snapshot:
        snap = Snapshot(time=clock.now(), tree=save_tree(self.repo, top), paths=paths,
                        hostname="ward7")
        self.repo.flush()
        save_snapshot(self.repo, snap)
        return snap


BIG = [chunk(1, 700 * KiB), chunk(2, 1 * MiB), chunk(3, 300 * KiB), chunk(4, 1 * MiB)]
SPARSE = [chunk(5, 64 * KiB), ZERO, ZERO, chunk(6, 64 * KiB), ZERO]


@pytest.fixture
def tree(repo: Repository) -> Snapshot:
    b = Builder(repo)
    link_a = b.file("scan.dcm", [chunk(9, 200 * KiB)], links=2, inode=77)
    link_b = b.file("scan-copy.dcm", [chunk(9, 200 * KiB)], links=2, inode=77)
    pacs = b.dir("pacs", [
        b.file("report.txt", [b"findings: none\n"], mode=0o600),
        b.file("empty.dat", []),
        b.file("big.bin", BIG, mode=0o444),
        b.file("disk.img", SPARSE),
        b.file("twice.bin", [chunk(2, 1 * MiB), chunk(2, 1 * MiB)], mode=0o4755),
        Node("latest", "symlink", mode=stat.S_IFLNK | 0o777, linktarget="big.bin",
             mtime_ns=MTIME),
        Node("pipe", "fifo", mode=stat.S_IFIFO | 0o620, mtime_ns=MTIME),
        b.dir("empty-dir", [], mode=0o700),
        b.dir("study", [b.dir("series", [link_a, link_b], mode=0o750)]),
    ])
    return b.snapshot([b.dir("data", [pacs])], ["/data/pacs"])


def run(repo: Repository, snap: Snapshot, target: Path, **kw: Any) -> RestoreSummary:
    return restore(repo, snap, RestoreOptions(str(target), **kw), NullProgress())


def test_round_trip_of_every_type(repo: Repository, tree: Snapshot, tmp_path: Path) -> None:
    summary = run(repo, tree, tmp_path / "out", verify=True)
    root = tmp_path / "out" / "data" / "pacs"  # full paths below the target
    assert (root / "report.txt").read_bytes() == b"findings: none\n"
    assert (root / "empty.dat").read_bytes() == b""
    assert (root / "big.bin").read_bytes() == b"".join(BIG)
    assert (root / "disk.img").read_bytes() == b"".join(SPARSE)
    assert (root / "twice.bin").read_bytes() == chunk(2, 1 * MiB) * 2
    assert os.readlink(root / "latest") == "big.bin"
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)
    assert (root / "empty-dir").is_dir() and not any((root / "empty-dir").iterdir())
    series = root / "study" / "series"
    assert (series / "scan.dcm").stat().st_ino == (series / "scan-copy.dcm").stat().st_ino
    assert (series / "scan.dcm").stat().st_nlink == 2

    assert stat.S_IMODE((root / "report.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "big.bin").stat().st_mode) == 0o444
    assert stat.S_IMODE((root / "twice.bin").stat().st_mode) == 0o4755  # set-uid kept
    assert stat.S_IMODE((root / "pipe").lstat().st_mode) == 0o620
    assert stat.S_IMODE((root / "empty-dir").stat().st_mode) == 0o700
    assert stat.S_IMODE(series.stat().st_mode) == 0o750
    for name in ("report.txt", "empty.dat", "big.bin", "disk.img", "pipe"):
        assert (root / name).lstat().st_mtime_ns == MTIME, name
    assert (root / "latest").lstat().st_mtime_ns == MTIME
    for directory in (root, root / "study", series, root / "empty-dir", root.parent):
        assert directory.stat().st_mtime_ns == DIR_MTIME, directory  # set after contents
    if os.geteuid() == 0:
        st = (root / "big.bin").stat()
        assert (st.st_uid, st.st_gid) == (1234, 5678)

    assert not [p for p in (tmp_path / "out").rglob(".medark-*")]  # no temp files left
    assert summary.errors == [] and summary.verify_failures == []
    assert summary.files_restored == summary.total_files == 14
    assert summary.files_verified == 7
    total = 15 + sum(map(len, BIG)) + sum(map(len, SPARSE)) + 2 * MiB + 2 * 200 * KiB
    assert summary.total_bytes == summary.bytes_restored == total


def test_zero_chunks_become_holes(repo: Repository, tree: Snapshot, tmp_path: Path) -> None:
    run(repo, tree, tmp_path / "out")
    st = (tmp_path / "out" / "data" / "pacs" / "disk.img").stat()
    assert st.st_size == sum(map(len, SPARSE))
    assert st.st_blocks * 512 <= 256 * KiB  # only the two data chunks are allocated


def test_restore_over_existing_tree_replaces_entries(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    root = tmp_path / "out" / "data" / "pacs"
    root.mkdir(parents=True)
    (root / "big.bin").write_bytes(b"stale, longer than nothing" * 100_000)
    (root / "empty-dir").write_text("a file where a directory belongs")
    (root / "latest").symlink_to("/etc/passwd")
    summary = run(repo, tree, tmp_path / "out")
    assert summary.errors == []
    assert (root / "big.bin").read_bytes() == b"".join(BIG)
    assert (root / "empty-dir").is_dir()
    assert os.readlink(root / "latest") == "big.bin"


def test_include_takes_subtree_and_the_parents_to_reach_it(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    summary = run(repo, tree, tmp_path / "out", includes=["/data/pacs/study"])
    root = tmp_path / "out" / "data" / "pacs"
    assert sorted(p.name for p in root.iterdir()) == ["study"]
    series = root / "study" / "series"
    assert sorted(p.name for p in series.iterdir()) == ["scan-copy.dcm", "scan.dcm"]
    assert root.stat().st_mtime_ns == DIR_MTIME
    assert summary.files_restored == 6  # data, pacs, study, series and the two links


def test_include_glob_matches_at_any_depth(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    run(repo, tree, tmp_path / "out", includes=["*.dcm", "report.*"])
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")
                   if not p.is_dir())
    assert found == ["data/pacs/report.txt", "data/pacs/study/series/scan-copy.dcm",
                     "data/pacs/study/series/scan.dcm"]


def test_exclude_drops_matches_and_their_subtrees(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    run(repo, tree, tmp_path / "out", excludes=["*.bin", "study"])
    root = tmp_path / "out" / "data" / "pacs"
    assert sorted(p.name for p in root.iterdir()) == [
        "disk.img", "empty-dir", "empty.dat", "latest", "pipe", "report.txt"]


def test_patterns_follow_restic() -> None:
    def comps(path: str) -> list[str]:
        return path.strip("/").split("/")

    assert Pattern.parse("*.dcm").matches(comps("/data/pacs/x.dcm"))
    assert Pattern.parse("pacs").matches(comps("/data/pacs/x.dcm"))  # an ancestor matches
    assert Pattern.parse("/data/pacs").matches(comps("/data/pacs/x.dcm"))
    assert not Pattern.parse("/pacs").matches(comps("/data/pacs/x.dcm"))
    assert not Pattern.parse("*.dcm").matches(comps("/data/pacs/x.dcm.bak"))
    assert Pattern.parse("/data/**/x.dcm").matches(comps("/data/a/b/c/x.dcm"))
    assert Pattern.parse("/data/**/x.dcm").matches(comps("/data/x.dcm"))
    assert not Pattern.parse("/data/*/x.dcm").matches(comps("/data/a/b/x.dcm"))
    assert Pattern.parse("/data/pacs/2024").may_match_below(comps("/data"))
    assert not Pattern.parse("/data/pacs/2024").may_match_below(comps("/srv"))
    flt = PathFilter(includes=["/data/pacs"], excludes=["*.tmp"])
    assert flt.included(comps("/data/pacs/a")) and not flt.included(comps("/data/db"))
    assert flt.excluded(comps("/data/pacs/a.tmp"))
    with pytest.raises(UsageError):
        Pattern.parse("")


def test_target_that_is_a_file_is_a_clear_error(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    target = tmp_path / "occupied"
    target.write_text("x")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        run(repo, tree, target)


def test_full_disk_aborts_and_leaves_no_partial_file(
    repo: Repository, tree: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = 0
    real_pwrite = os.pwrite

    def filling_pwrite(fd: int, data: Any, offset: int) -> int:
        nonlocal written
        if written > 1 * MiB:
            raise OSError(errno.ENOSPC, "No space left on device")
        written += len(data)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(restore_data.os, "pwrite", filling_pwrite)
    with pytest.raises(NoSpace, match="no space left") as info:
        run(repo, tree, tmp_path / "out")
    assert str(tmp_path / "out") in str(info.value)
    root = tmp_path / "out" / "data" / "pacs"
    assert not [p for p in root.rglob(".medark-*")]
    expected = {"big.bin": b"".join(BIG), "disk.img": b"".join(SPARSE),
                "twice.bin": chunk(2, 1 * MiB) * 2, "report.txt": b"findings: none\n"}
    assert not all((root / name).exists() for name in expected)
    for name, content in expected.items():  # whatever has its real name is complete
        assert not (root / name).exists() or (root / name).read_bytes() == content


class CorruptingRepo:
    """A repository whose decoded blob comes back changed, as a bad disk or a bug in
    the write path would do: --verify must notice."""

    def __init__(self, inner: Repository, victim: bytes) -> None:
        self._inner = inner
        self._victim = victim

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def decode_blob(self, entry: Any, sealed: bytes, pack_id: bytes) -> bytes:
        plain = self._inner.decode_blob(entry, sealed, pack_id)
        if entry.id == self._victim:
            return b"X" + plain[1:]
        return plain


def test_verify_names_files_that_do_not_match(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    victim = repo.crypto.blob_id(BIG[2])
    summary = restore(CorruptingRepo(repo, victim), tree,
                      RestoreOptions(str(tmp_path / "out"), verify=True), NullProgress())
    assert len(summary.verify_failures) == 1
    assert "big.bin" in summary.verify_failures[0]
    assert summary.files_verified == 6
    assert (tmp_path / "out" / "data" / "pacs" / "report.txt").exists()  # the rest is there
    with pytest.raises(IntegrityError, match=r"big\.bin"):
        summary.raise_for_problems()


def test_damaged_pack_fails_only_the_files_using_it(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    pack = next(p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()
                and p.stat().st_size > 2 * MiB)
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 0xFF  # inside the first blob of the data pack
    pack.chmod(0o600)
    pack.write_bytes(bytes(raw))
    summary = run(repo, tree, tmp_path / "out")
    assert len(summary.errors) == 2
    assert "scan-copy.dcm: blob" in summary.errors[0]  # the first of the hard-link pair
    assert "authentication failed" in summary.errors[0]
    assert "scan.dcm: not restored, its hard link" in summary.errors[1]
    assert summary.damaged
    assert not [p for p in (tmp_path / "out").rglob(".medark-*")]
    assert (tmp_path / "out" / "data" / "pacs" / "empty-dir").is_dir()
    with pytest.raises(MedarkError, match="restore incomplete"):
        summary.raise_for_problems()


def test_many_small_batches_give_the_same_tree(
    repo: Repository, tree: Snapshot, tmp_path: Path
) -> None:
    run(repo, tree, tmp_path / "one")
    run(repo, tree, tmp_path / "many", batch_files=1, workers=3, inflight=64 * KiB)
    for path in (tmp_path / "one").rglob("*"):
        twin = tmp_path / "many" / path.relative_to(tmp_path / "one")
        if path.is_file() and not path.is_symlink() and not stat.S_ISFIFO(path.stat().st_mode):
            assert twin.read_bytes() == path.read_bytes()
        assert twin.lstat().st_mtime_ns == path.lstat().st_mtime_ns
    series = tmp_path / "many" / "data" / "pacs" / "study" / "series"
    assert (series / "scan.dcm").stat().st_ino == (series / "scan-copy.dcm").stat().st_ino
