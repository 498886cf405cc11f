"""Filesystem details of LocalBackend that the conformance suite cannot see."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from medark.errors import BackendError, NoSpace
from medark.storage.local import LocalBackend


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "repo")
    backend.create()
    return backend


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_failed_write_leaves_no_temp_file(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.save("data/ab/first", b"1")  # the directory exists: the object's own fsync fails

    def full_disk(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(NoSpace):
        local.save("data/ab/x", b"payload")
    monkeypatch.undo()
    assert _all_files(local.root) == ["data/ab/first"]
    local.save("data/ab/x", b"payload")
    assert _all_files(local.root) == ["data/ab/first", "data/ab/x"]


def test_transient_os_errors_are_classified(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flaky(_fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    local.save("first", b"1")
    monkeypatch.setattr(os, "fsync", flaky)
    with pytest.raises(BackendError) as err:
        local.save("obj", b"x")
    assert err.value.transient


def test_objects_are_private_files(local: LocalBackend) -> None:
    local.save("data/ab/x", b"x")
    assert (local.root / "data/ab/x").stat().st_mode & 0o077 == 0
    assert (local.root / "data").stat().st_mode & 0o077 == 0


def test_save_creates_the_missing_directories(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    backend.save("data/ab/x", b"x")
    assert backend.load("data/ab/x") == b"x"


def test_save_under_an_object_fails_cleanly(local: LocalBackend) -> None:
    local.save("config", b"c")
    with pytest.raises(BackendError) as err:
        local.save("config/x", b"x")
    assert not err.value.transient
    assert local.load("config") == b"c"


def test_unreadable_directory_fails_the_listing(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A listing with holes would let check and prune miss objects: it must fail instead.
    local.save("data/ab/x", b"x")
    local.save("data/cd/y", b"y")
    real_scandir = os.scandir
    blocked = str(local.root / "data" / "cd")

    def scandir(path: str) -> Iterator[os.DirEntry[str]]:
        if str(path) == blocked:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(BackendError, match="Permission denied"):
        list(local.list("data/"))


def test_list_skips_hidden_directories_and_other_files(local: LocalBackend) -> None:
    local.save("data/ab/x", b"x")
    (local.root / "data" / ".trash").mkdir()
    (local.root / "data" / ".trash" / "old").write_bytes(b"o")
    os.mkfifo(local.root / "data" / "ab" / "fifo")
    assert [i.name for i in local.list("")] == ["data/ab/x"]


def test_list_cannot_escape_the_root(tmp_path: Path) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    backend = LocalBackend(tmp_path / "repo")
    backend.create()
    with pytest.raises(BackendError):
        list(backend.list("../"))


def test_list_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    assert list(LocalBackend(tmp_path / "nowhere").list("")) == []


def test_save_file_links_a_spooled_file_without_copying(local: LocalBackend) -> None:
    spool = local.spool_dir()
    assert spool is not None and Path(spool).parent == local.root
    path = Path(spool) / ".pack-test"
    path.write_bytes(b"packed bytes")
    local.save_file("data/ef/pack", str(path))
    assert os.stat(path).st_ino == os.stat(local.root / "data/ef/pack").st_ino
    assert _all_files(local.root) == [".spool/.pack-test", "data/ef/pack"]


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second filesystem")
def test_save_file_copies_across_filesystems(local: LocalBackend) -> None:
    if os.stat("/dev/shm").st_dev == os.stat(local.root).st_dev:
        pytest.skip("/dev/shm is on the repository's filesystem")
    data = os.urandom(3 * 1024 * 1024 + 5)
    with open(f"/dev/shm/medark-test-{os.getpid()}", "wb") as f:
        f.write(data)
    try:
        local.save_file("data/ef/pack", f.name)
    finally:
        os.unlink(f.name)
    assert (local.root / "data/ef/pack").read_bytes() == data
    assert _all_files(local.root) == ["data/ef/pack"]  # no temp file left
