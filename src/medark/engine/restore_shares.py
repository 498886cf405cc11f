"""Restore processes for trees of many small files: the snapshot's directories are dealt
out in shares, and each share is restored by a process of its own, so that the per-file
work (walking, planning, the system calls of each file) runs outside the parent's GIL.
One restore in threads spends a fifth of its time handing the GIL over at each system
call; two restores of half the tree each took half the time (docs/benchmarks.md).

The parent picks the shares before it walks: the shallowest level of the tree with at
least SHARES_PER_PROCESS directories per process, dealt out in turn. It restores the rest
itself (the directories above the shares and the files beside them), skipping the
shares, then starts one process per share list. A process opens the repository with the
parent's key and index cache (sent over a socket pair, never in argv), restores its
directories with its own Restorer, and sends back its progress, its warnings, and at the
end its summary and the hard-linked files it made. The parent links those that belong to
one inode across shares, then sets the metadata of its own directories last.

Only for a local repository (each process reads the packs itself), a restore without
--include, and a snapshot of at least MIN_FILES files.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from medark import errors
from medark.engine.restore_select import PathFilter, Selected, valid_name
from medark.errors import MedarkError
from medark.snapshot.model import Node
from medark.snapshot.store import SnapshotRepo, load_tree
from medark.util.processes import helper_task, interrupts_deferred, start_helper
from medark.util.progress import Progress

_ENTRY = "from medark.engine.restore_shares import main; main()"
MIN_FILES = 20_000
"""Below this a restore takes a few seconds: starting processes would not pay."""
MAX_PROCESSES = 4
SHARES_PER_PROCESS = 8
"""Directories per process at least, so that uneven ones even out."""
MAX_TREES = 4096
"""Trees read to find the level of the shares: a deep, narrow tree gets no processes."""
PROGRESS_EVERY = 0.25
SHARE_BATCH_FILES = 5_000
"""Files a process plans at once: 72 MB per process against 128 MB with 20,000, at the
same speed (200,000 files, two processes, docs/benchmarks.md)."""

LinkedFile = tuple[int, int, str]
"""(device id, inode, restored path) of a file with several links, made by a process."""


@dataclass(frozen=True)
class RepoAccess:
    """What a process needs to read the repository the parent opened."""

    location: str
    suite: str
    master_key: bytes = field(repr=False)
    config: Any
    key_id: str
    index: str


@dataclass(frozen=True)
class ShareTask:
    repo: RepoAccess
    snapshot_id: str
    shares: list[Selected]
    options: Any
    """The parent's RestoreOptions (excludes, verify, workers, budget)."""


@dataclass
class ShareResult:
    summary: Any
    """The process's RestoreSummary."""
    linked: list[LinkedFile]


def process_count(options_processes: int, local: bool, includes: list[str],
                  files: int | None) -> int:
    """How many restore processes: 0 or 1 means none (the restore runs in threads)."""
    if options_processes == 1 or not local or includes:
        return 0
    if options_processes == 0:
        cpus = cpu_count()
        if cpus < 2 or files is None or files < MIN_FILES:
            return 0
        return min(cpus, MAX_PROCESSES)
    return options_processes


def cpu_count() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def choose_shares(repo: SnapshotRepo, tree_id: bytes, flt: PathFilter, processes: int
                  ) -> list[list[Selected]]:
    """The directories each process restores, or [] when the tree has no level wide
    enough (or a name the walk will refuse: the single walk reports it)."""
    level: list[Selected] = []
    parents: list[tuple[tuple[str, ...], bytes]] = [((), tree_id)]
    trees = 0
    while parents and trees < MAX_TREES:
        level = []
        for comps, subtree in parents:
            trees += 1
            seen: set[str] = set()
            for node in load_tree(repo, subtree):
                if not valid_name(node.name) or node.name in seen:
                    return []
                seen.add(node.name)
                here = (*comps, node.name)
                if node.type == "dir" and node.subtree is not None and not flt.excluded(here):
                    level.append(Selected("/" + "/".join(here), node, len(here)))
        if len(level) >= SHARES_PER_PROCESS * processes:
            level.sort(key=lambda s: s.path)
            return [level[i::processes] for i in range(processes)]
        parents = [(tuple(s.path.strip("/").split("/")), s.node.subtree) for s in level
                   if s.node.subtree is not None]
    return []


# ---- the process ------------------------------------------------------------------


def main() -> None:
    """`python -c` entry of a restore process: its end of the socket pair is argv[1]. The
    parent's stop (SIGUSR1) may land anywhere, even in a handler: the parent knows why,
    so the process ends without a word."""
    with contextlib.suppress(KeyboardInterrupt):
        serve(Connection(int(sys.argv[1])))


def serve(conn: Connection) -> None:
    """Restore the task's shares; the parent closing the socket stops it (Ctrl-C is the
    parent's to handle)."""
    task: ShareTask | None = helper_task(conn)
    if task is None:
        return
    sender = _Sender(conn)
    try:
        signal.signal(signal.SIGUSR1, _interrupted)
        threading.Thread(target=_stop_on_eof, args=(conn,), daemon=True,
                         name="parent-watch").start()
        result = _restore_shares(task, sender)
        outcome: tuple[Any, ...] = ("done", result)
    except KeyboardInterrupt:
        return  # the parent stopped us: it knows why
    except MedarkError as exc:
        outcome = ("failed", type(exc).__name__, str(exc))
    except Exception as exc:  # a bug: one line for the parent, not a traceback
        outcome = ("failed", "MedarkError", f"a restore process failed: {exc!r}")
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the parent's close is no stop now
    sender.flush()
    sender.send(outcome)


def _stop_on_eof(conn: Connection) -> None:
    """The parent sends nothing after the task: end-of-file means stop now."""
    with contextlib.suppress(EOFError, OSError):
        conn.recv()
    signal.raise_signal(signal.SIGUSR1)


def _interrupted(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


class _Sender:
    """The process's progress: advances summed and sent every PROGRESS_EVERY seconds,
    warnings sent at once."""

    wants_total = False

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._files = self._bytes = 0
        self._last = time.monotonic()

    def set_total(self, files: int | None, nbytes: int | None) -> None:
        return None

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self._files += files
            self._bytes += nbytes
            due = time.monotonic() - self._last >= PROGRESS_EVERY
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            files, nbytes, self._files, self._bytes = self._files, self._bytes, 0, 0
            self._last = time.monotonic()
        if files or nbytes:
            self.send(("progress", files, nbytes))

    def warn(self, text: str) -> None:
        self.send(("warn", text))

    def send(self, message: Any) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._conn.send(message)


def _restore_shares(task: ShareTask, progress: _Sender) -> ShareResult:
    from medark.engine.restore import ShareRestorer
    from medark.repo.crypto import Crypto, get_suite
    from medark.repo.index_cache import IndexCache
    from medark.repo.repository import Repository
    from medark.snapshot.store import load_snapshot
    from medark.storage.local import LocalBackend

    access = task.repo
    repo = Repository(LocalBackend(access.location),
                      Crypto(get_suite(access.suite), access.master_key), access.config,
                      access.key_id, IndexCache(Path(access.index)))
    try:
        snapshot = load_snapshot(repo, task.snapshot_id)
        restorer = ShareRestorer(repo, snapshot, task.options, progress, task.shares)
        summary = restorer.run()
        return ShareResult(summary, restorer.linked())
    finally:
        repo.close()


# ---- the parent's end ---------------------------------------------------------------


class ShareProcess:
    """One restore process: started with its task, its messages taken by a thread of
    the parent, its result waited for."""

    def __init__(self, task: ShareTask, progress: Progress,
                 on_warn: Callable[[str], None], ended: queue.SimpleQueue[ShareProcess]
                 ) -> None:
        self._socket, self._process, self._conn = start_helper(_ENTRY)
        self._progress = progress
        self._on_warn = on_warn
        self.result: ShareResult | None = None
        self.failure: MedarkError | None = None
        self._ended = ended
        self._closed = False
        self._conn.send(task)  # the master key goes over the socket, never argv
        self._thread = threading.Thread(target=self._take, daemon=True, name="share")
        self._thread.start()

    def _take(self) -> None:
        try:
            self._read_messages()
        finally:
            self._ended.put(self)

    def _read_messages(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                if self.result is None and self.failure is None:
                    self.failure = MedarkError(
                        f"a restore process ended unexpectedly (exit code {self._exit()})")
                return
            kind = message[0]
            if kind == "progress":
                self._progress.advance(files=message[1], nbytes=message[2])
            elif kind == "warn":
                self._on_warn(message[1])
            elif kind == "done":
                self.result = message[1]
                return
            else:
                self.failure = _error(message[1], message[2])
                return

    def _exit(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=2)
        return self._process.returncode

    def wait(self) -> ShareResult:
        self._thread.join()
        self._end()
        if self.failure is not None:
            raise self.failure
        assert self.result is not None
        return self.result

    def stop(self) -> None:
        """End-of-file for the process: it stops, removing its temporary files."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=60)
        self._end()

    def _end(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._conn.close()
        self._socket.close()


def _error(name: str, message: str) -> MedarkError:
    """The process's failure as the same kind of medark error (its exit code)."""
    cls = getattr(errors, name, MedarkError)
    if not (isinstance(cls, type) and issubclass(cls, MedarkError)):
        cls = MedarkError
    try:
        return cls(message)
    except TypeError:
        return MedarkError(message)


def run_shares(tasks: list[ShareTask], progress: Progress,
               on_warn: Callable[[str], None]) -> list[ShareResult]:
    """Every task in a process of its own; the first failure stops the others."""
    started: list[ShareProcess] = []
    ended: queue.SimpleQueue[ShareProcess] = queue.SimpleQueue()
    try:
        for task in tasks:
            with interrupts_deferred():
                started.append(ShareProcess(task, progress, on_warn, ended))
        for _ in started:
            ended.get().wait()  # raises the failure of the first that fails
        return [process.wait() for process in started]
    finally:
        for process in started:
            process.stop()


def share_task(repo: Any, snapshot_id: str, shares: list[Selected], options: Any
               ) -> ShareTask:
    """A process's task: the parent's repository opened again from its key and cache."""
    index = repo.cache.path
    assert index is not None
    access = RepoAccess(repo.backend.properties().location, repo.config.suite,
                        repo.crypto.master_key, repo.config, repo.key_id, str(index))
    return ShareTask(access, snapshot_id, shares, options)


def real_directory(path: str) -> bool:
    """A directory, not a link to one: a process writes only into such."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def node_key(node: Node) -> tuple[int, int] | None:
    return (node.device_id, node.inode) if node.links > 1 and node.inode else None
