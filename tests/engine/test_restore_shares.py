"""Which directories restore processes take (engine/restore_shares.py), and when there are
processes at all: judged on real trees stored in a real repository."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from medark.engine.restore_select import PathFilter
from medark.engine.restore_shares import (
    MIN_FILES,
    SHARES_PER_PROCESS,
    choose_shares,
    process_count,
)
from medark.repo.repository import Repository
from medark.snapshot.model import Node
from medark.snapshot.store import save_tree


def stored(repo: Repository, nodes: list[Node]) -> bytes:
    """The root tree of `nodes`, its packs written and indexed."""
    tree = save_tree(repo, nodes)
    repo.flush()
    return tree


def directory(repo: Repository, name: str, children: list[Node]) -> Node:
    return Node(name, "dir", mode=stat.S_IFDIR | 0o755, subtree=save_tree(repo, children))


def file(name: str) -> Node:
    return Node(name, "file", mode=stat.S_IFREG | 0o644)


def fan(repo: Repository, name: str, width: int, depth: int) -> Node:
    """A directory `depth` levels deep, `width` directories on each level."""
    if depth == 0:
        return directory(repo, name, [file("IM1.dcm")])
    return directory(repo, name, [fan(repo, f"{name}-{i}", width, depth - 1)
                                  for i in range(width)])


def test_the_shallowest_wide_enough_level_is_dealt_out_in_turn(repo: Repository) -> None:
    # /pacs holds 3 directories of 11 each: the second level is the first with 16
    root = stored(repo, [directory(repo, "pacs", [fan(repo, f"d{i}", 11, 1)
                                                     for i in range(3)]), file("README")])
    shares = choose_shares(repo, root, PathFilter(), 2)
    assert [len(s) for s in shares] == [17, 16]
    paths = sorted(e.path for share in shares for e in share)
    assert len(paths) == 33 and paths[0] == "/pacs/d0/d0-0"
    assert all(e.depth == 3 and e.node.type == "dir" for share in shares for e in share)
    assert {e.path for e in shares[0]}.isdisjoint({e.path for e in shares[1]})


def test_a_narrow_tree_gets_no_processes(repo: Repository) -> None:
    root = stored(repo, [fan(repo, "pacs", 2, 6)])  # 2, 4, ... 64 directories deep down
    assert choose_shares(repo, root, PathFilter(), 2) != []
    narrow = stored(repo, [fan(repo, "pacs", 1, 12)])
    assert choose_shares(repo, narrow, PathFilter(), 2) == []


def test_excluded_directories_are_no_share(repo: Repository) -> None:
    root = stored(repo, [fan(repo, f"s{i}", 1, 1) for i in range(2 * SHARES_PER_PROCESS)])
    assert len([e for s in choose_shares(repo, root, PathFilter(), 2) for e in s]) == 16
    fewer = choose_shares(repo, root, PathFilter(excludes=["/s1"]), 2)
    assert "/s1" not in {e.path for s in fewer for e in s}


def test_a_bad_name_leaves_the_whole_tree_to_the_single_walk(repo: Repository) -> None:
    nodes = [fan(repo, f"s{i}", 1, 1) for i in range(20)]
    repeated = stored(repo, [*nodes, fan(repo, "s3", 1, 1)])
    assert choose_shares(repo, repeated, PathFilter(), 2) == []
    unsafe = stored(repo, [*nodes, fan(repo, "..", 1, 1)])
    assert choose_shares(repo, unsafe, PathFilter(), 2) == []


@pytest.mark.parametrize(("asked", "local", "includes", "files", "expected"), [
    (1, True, [], 10 * MIN_FILES, 0),          # --processes 1: none
    (2, False, [], 10 * MIN_FILES, 0),         # S3 and the like: threads
    (2, True, ["*.dcm"], 10 * MIN_FILES, 0),   # --include: threads
    (3, True, [], 10, 3),                      # asked for: even for a small tree
])
def test_when_there_are_processes(asked: int, local: bool, includes: list[str], files: int,
                                  expected: int) -> None:
    assert process_count(asked, local, includes, files) == expected


def test_by_default_only_a_large_tree_on_several_cpus_gets_processes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("medark.engine.restore_shares.cpu_count", lambda: 8)
    assert process_count(0, True, [], MIN_FILES) == 4
    assert process_count(0, True, [], MIN_FILES - 1) == 0
    assert process_count(0, True, [], None) == 0  # a snapshot without its summary
    monkeypatch.setattr("medark.engine.restore_shares.cpu_count", lambda: 1)
    assert process_count(0, True, [], 10 * MIN_FILES) == 0


def test_a_process_stopped_at_any_moment_of_its_start_says_nothing() -> None:
    """The parent's stop (its socket closed) may reach a restore process anywhere: while it
    installs its handler, starts its watch thread, or reports. It ends quietly each time:
    the parent says why (the CI once saw a traceback from a stop inside Thread.start)."""
    rng = random.Random(5)
    with busy_cpus():  # a loaded machine: the watch thread may run ahead of the main one
        for attempt in range(24):
            stop_during_start(rng, attempt)


@contextlib.contextmanager
def busy_cpus() -> Iterator[None]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range((os.cpu_count() or 1) + 1)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def stop_during_start(rng: random.Random, attempt: int) -> None:
    """One restore process, its socket shut down at once or after a little while."""
    from medark.engine.restore_shares import _ENTRY

    ours, theirs = socket.socketpair()
    with theirs:
        process = subprocess.Popen([sys.executable, "-c", _ENTRY, str(theirs.fileno())],
                                   pass_fds=[theirs.fileno()], stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL)
    conn = Connection(os.dup(ours.fileno()))
    conn.send("not a task: the process fails, unless stopped first")
    time.sleep(rng.choice([0, 0, 0, rng.uniform(0, 0.3)]))
    with contextlib.suppress(OSError):
        ours.shutdown(socket.SHUT_RDWR)
    _, stderr = process.communicate(timeout=60)
    conn.close()
    ours.close()
    assert "Traceback" not in stderr.decode(), (attempt, stderr.decode())
    assert process.returncode == 0, (attempt, stderr.decode())
