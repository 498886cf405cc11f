"""Shared and exclusive locks, stale-lock detection, refresh-free release."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medark.errors import RepositoryLocked
from medark.repo.compression import CompressionSpec
from medark.repo.repository import Repository
from medark.storage.local import LocalBackend
from medark.util import clock


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"), b"pw", "aes-256-gcm",
                           CompressionSpec("zstd", 3), tmp_path / "cache")


def write_lock(repo: Repository, *, pid: int, exclusive: bool, time: str,
               host: str | None = None) -> str:
    doc = {"time": time, "hostname": host or socket.gethostname(), "pid": pid,
           "username": "x", "exclusive": exclusive, "command": "prune"}
    return repo._store_lock(repo.crypto.seal(json.dumps(doc).encode())).decode()


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_shared_locks_coexist_and_exclusive_conflicts(repo: Repository) -> None:
    warnings: list[str] = []
    a = repo.lock(False, "backup", warnings.append)
    b = repo.lock(False, "backup", warnings.append)
    with pytest.raises(RepositoryLocked, match="shared lock"):
        repo.lock(True, "prune", warnings.append)
    a.release()
    b.release()
    held = repo.lock(True, "prune", warnings.append)
    with pytest.raises(RepositoryLocked, match="exclusive lock"):
        repo.lock(False, "backup", warnings.append)
    held.release()
    assert list(repo.backend.list("locks/")) == []
    assert warnings == []


def test_lock_of_a_dead_process_is_stale(repo: Repository) -> None:
    write_lock(repo, pid=dead_pid(), exclusive=True, time=clock.format_time(clock.now()))
    warnings: list[str] = []
    held = repo.lock(False, "backup", warnings.append)
    assert any("stale" in w for w in warnings)
    held.release()
    removed = repo.locks.remove_stale()
    assert len(removed) == 1
    assert list(repo.backend.list("locks/")) == []


def test_old_lock_of_another_host_is_stale_but_a_fresh_one_blocks(repo: Repository) -> None:
    write_lock(repo, pid=1, exclusive=True, time="2020-01-01T00:00:00Z", host="elsewhere")
    held = repo.lock(True, "prune", lambda _: None)
    held.release()
    fresh = write_lock(repo, pid=1, exclusive=True, time=clock.format_time(clock.now()),
                       host="elsewhere")
    with pytest.raises(RepositoryLocked, match="elsewhere"):
        repo.lock(False, "backup", lambda _: None)
    assert repo.locks.remove_stale() and repo.backend.stat(fresh)
    assert len(repo.locks.remove_stale(remove_all=True)) == 1


def test_an_unreadable_lock_blocks_the_exclusive_lock(repo: Repository) -> None:
    """Fail closed: a lock nothing can read may be a running backup's or prune's."""
    name = write_lock(repo, pid=1, exclusive=False, time=clock.format_time(clock.now()))
    raw = bytearray(repo.backend.load(name))
    raw[-5:] = b"xxxxx"  # the authentication tag no longer matches
    repo.backend.remove(name)
    repo.backend.save(name, bytes(raw))
    locks, unreadable = repo.locks.survey()
    assert not locks and [u.name for u in unreadable] == [name]
    warnings: list[str] = []
    with pytest.raises(RepositoryLocked, match=f"{name} cannot be read or verified") as exc:
        repo.lock(True, "prune", warnings.append)
    assert "medark unlock --remove-all" in str(exc.value)
    assert [i.name for i in repo.backend.list("locks/")] == [name]  # ours was removed
    shared = repo.lock(False, "backup", warnings.append)  # backups go on, and say so
    assert len(warnings) == 1 and name in warnings[0]
    shared.release()


def test_a_garbage_lock_blocks_the_exclusive_lock(repo: Repository) -> None:
    repo.backend.save("locks/" + "cd" * 32, b"")
    with pytest.raises(RepositoryLocked, match="locks/cdcd"):
        repo.lock(True, "prune", lambda _line: None)
