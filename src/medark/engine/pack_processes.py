"""Reader processes for many small files: each reads batches of files, hashes them, and
compresses and seals them into packs of its own, so that the per-file work runs outside
the parent's GIL. Only paths, versions, blob ids and pack entries cross the socket; the
data never does (sending it cost more than the processes saved, docs/benchmarks.md).

The parent never waits on a process. It writes a `batch` request and goes on scanning;
the process reads the files, asks the cache which blobs the index already has (those are
not compressed), seals the others and answers with the ids. A thread of the parent per
process takes each answer in order, claims the blobs the repository lacks
(Repository.claim_new: the first claimant of an id stores it, so two processes never
both store a new blob) and writes a `claim` naming them; the process appends those
sealed blobs to its pack and drops the rest. So a process always has the next batch
queued while the parent builds the nodes of the last one. Filled packs come back as spool
files with the next answer, for the parent to store and index
(Repository.store_sealed_pack); `finish` seals the partly filled ones at the end. A
process whose parent dies reads end-of-file and exits, removing the packs it was filling.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from medark.engine.change_stats import ContentSample
from medark.errors import MedarkError, NoSpace
from medark.repo.index_cache import IndexReader
from medark.repo.pack_filler import PackFiller, SealedBlob, SealedPack, SealerSettings
from medark.sources.files.reading import (
    Version,
    read_small,
    unchanged_while_read,
)
from medark.util.processes import helper_task, interrupts_deferred, start_helper

BATCH, CLAIM, FINISH = "batch", "claim", "finish"
_ENTRY = "from medark.engine.pack_processes import main; main()"
GONE, REREAD = 1, 3
QUEUED_BATCHES = 3
"""Batches a process may hold (queued, read or awaiting their claim): enough that it
never waits for the parent, few enough to bound its memory (each at most 4 MiB)."""

FileJob = tuple[str, Version]
"""A file to read: its path and its version from the scan's lstat (plain tuples: pickling
a stat result per file cost the parent more than the reading)."""
FileRead = bytes | int | str
"""How a process read one file: its blob id (empty for an empty file); GONE (vanished);
REREAD (changed while read, grew, or no longer a regular file: the caller takes the full
path); or a str, why it could not be read. A file read as scanned still has the scan's
size, times, inode and device, hence the mode, owner and links the scan saw (each change
moves the ctime): the scan's lstat stands for it, and no stat comes back."""
Sample = tuple[int, int] | None
"""Sampled and encrypted-looking bytes of a blob the process sealed (change_stats.py);
None for one it did not seal (the index has it, or it repeats one in the batch)."""


@dataclass(frozen=True)
class ProcessSettings:
    sealer: SealerSettings
    small: int
    """Files from this size on are chunked: not for a batch."""
    head_bytes: int
    """0: the parent wants no heads."""
    index: str | None
    """The cache database, asked which blobs need no compressing; None: none to ask."""


@dataclass(frozen=True)
class BatchRead:
    """A process's answer to one batch."""

    reads: list[FileRead]
    heads: list[bytes] | None
    """The first bytes of each file read, when the settings ask for them."""
    samples: list[Sample]
    """One per non-empty file read, in order."""
    packs: list[SealedPack]
    """Packs the process filled since its last answer: now the parent's to store."""


class PackProcessError(MedarkError):
    """A reader process died or broke its protocol."""


# ---- the process ------------------------------------------------------------------


def main() -> None:
    """`python -c` entry of a reader process: its end of the socket pair is argv[1]."""
    serve(Connection(int(sys.argv[1])))


def serve(conn: Connection) -> None:
    """The process's loop: settings first, then requests until end-of-file. Ctrl-C is
    the parent's to handle: it ends this process by closing the socket."""
    settings: ProcessSettings | None = helper_task(conn)
    if settings is None:
        return
    worker = _Worker(settings)
    try:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return  # the parent is done, or gone
            try:
                answer = worker.handle(request)
            except OSError as exc:  # the spool: its disk full, say; the parent says so
                _answer(conn, False, (exc.errno, f"writing a pack to the spool: "
                                                 f"{exc.strerror or exc}"))
                return
            if answer is not None and not _answer(conn, True, answer):
                return
    finally:
        worker.close()


def _answer(conn: Connection, ok: bool, answer: Any) -> bool:
    """False when the parent is gone (killed): nothing to report, and no one to tell."""
    try:
        conn.send((ok, answer))
    except OSError:
        return False
    return True


class _Worker:
    """The state of one process: its pack, its index view, the batches read and not yet
    claimed (id, data, sealed blob or None for each non-empty file)."""

    def __init__(self, settings: ProcessSettings) -> None:
        self.settings = settings
        self.filler = PackFiller(settings.sealer)
        self.index = IndexReader(Path(settings.index)) if settings.index else None
        self.unclaimed: dict[int, list[tuple[bytes, bytes, SealedBlob | None]]] = {}

    def handle(self, request: tuple[Any, ...]) -> Any:
        kind = request[0]
        if kind == BATCH:
            return self.batch(request[1], request[2])
        if kind == CLAIM:
            self.claim(request[1], request[2])
            return None
        self.filler.finish()
        return self.filler.take()

    def batch(self, number: int, jobs: list[FileJob]) -> BatchRead:
        reads, heads, held = _read_files(jobs, self.settings, self.filler.crypto.blob_id)
        known = self.index.present([i for i, _d in held]) if self.index else set()
        kept: list[tuple[bytes, bytes, SealedBlob | None]] = []
        samples: list[Sample] = []
        for blob_id, data in held:
            blob = None
            if blob_id not in known:
                known.add(blob_id)  # a repeat within the batch is not sealed twice
                blob = self.filler.seal(data)
            kept.append((blob_id, data, blob))
            samples.append(None if blob is None else _sample(data, blob.shrank))
        self.unclaimed[number] = kept
        return BatchRead(reads, heads, samples, self.filler.take())

    def claim(self, number: int, wanted: list[bool]) -> None:
        """Pack the blobs of a batch the parent claimed; drop the others."""
        blobs = []
        for (blob_id, data, blob), claimed in zip(self.unclaimed.pop(number), wanted,
                                                  strict=True):
            if claimed:
                blobs.append((blob_id, blob if blob is not None else self.filler.seal(data)))
        self.filler.add(blobs)

    def close(self) -> None:
        self.filler.discard()
        if self.index is not None:
            self.index.close()


def _read_files(jobs: list[FileJob], settings: ProcessSettings,
                blob_id_of: Callable[[bytes], bytes],
                ) -> tuple[list[FileRead], list[bytes] | None, list[tuple[bytes, bytes]]]:
    """Each file read whole and checked unchanged against the scan's lstat: the answers,
    the heads when wanted, and (id, data) of the non-empty files read."""
    reads: list[FileRead] = []
    heads: list[bytes] | None = [] if settings.head_bytes else None
    held: list[tuple[bytes, bytes]] = []
    for path, before in jobs:
        try:
            data, after = read_small(path, before[0])
        except FileNotFoundError:
            reads.append(GONE)
            continue
        except OSError as exc:
            reads.append(str(exc.strerror or exc))
            continue
        if not unchanged_while_read(before, after, data, settings.small):
            reads.append(REREAD)
            continue
        blob_id = b""
        if data:
            blob_id = blob_id_of(data)
            held.append((blob_id, data))
        if heads is not None:
            heads.append(data[:settings.head_bytes])
        reads.append(blob_id)
    return reads, heads, held


def _sample(data: bytes, shrank: bool | None) -> tuple[int, int]:
    sample = ContentSample()
    sample.add_chunk(data, shrank)
    return sample.sampled, sample.encrypted


# ---- the parent's end ---------------------------------------------------------------

T = TypeVar("T")
OnRead = Callable[[BatchRead, Callable[[list[bool]], None]], T]
"""Told a batch's answer and how to send its claim; its result is the batch's."""


@dataclass(frozen=True)
class _Waiting:
    """A request sent and not yet answered."""

    future: Future[Any]
    handle: Callable[[Any], Any]
    """Makes the future's result of the answer."""
    holds_slot: bool
    """A batch: it holds one of the QUEUED_BATCHES slots until handled."""


class PackProcess:
    """The parent's end of one reader process: requests go out as they come, answers are
    taken in order by a thread of its own, which runs each batch's callback."""

    def __init__(self, settings: ProcessSettings) -> None:
        self._socket, self._process, self._conn = start_helper(_ENTRY)
        self._send_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(QUEUED_BATCHES)
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._numbers = iter(range(1, 1 << 62))
        self._failure: MedarkError | None = None
        self._send(settings)  # over the socket: the master key is never in argv
        self._reader = threading.Thread(target=self._take_answers, daemon=True,
                                        name="reader-answers")
        self._reader.start()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def submit(self, jobs: list[FileJob], on_read: OnRead[T]) -> Future[T]:
        """Queue a batch (waits while the process holds QUEUED_BATCHES already)."""
        self._slots.acquire()
        number = next(self._numbers)
        future: Future[T] = Future()

        def finish(answer: BatchRead) -> T:
            try:
                return on_read(answer, lambda wanted: self._send((CLAIM, number, wanted)))
            finally:
                self._slots.release()

        self._queue(_Waiting(future, finish, True), (BATCH, number, jobs))
        return future

    def finish(self) -> list[SealedPack]:
        """Seal the partly filled pack: the last packs (every batch answered and claimed)."""
        future: Future[list[SealedPack]] = Future()
        self._queue(_Waiting(future, lambda packs: packs, False), (FINISH,))
        return future.result()

    def _queue(self, waiting: _Waiting, request: tuple[Any, ...]) -> None:
        """Send a request that has an answer; answers come in the order sent."""
        with self._send_lock:
            try:
                self._waiting.append(waiting)
                self._send_locked(request)
            except BaseException:
                if self._waiting and self._waiting[-1] is waiting:
                    self._waiting.pop()
                if waiting.holds_slot:
                    self._slots.release()
                raise

    def _send(self, message: Any) -> None:
        with self._send_lock:
            self._send_locked(message)

    def _send_locked(self, message: Any) -> None:
        if self._failure is not None:
            raise self._failure
        try:
            self._conn.send(message)
        except OSError as exc:
            raise self._ended() from exc

    def _take_answers(self) -> None:
        while True:
            try:
                ok, answer = self._conn.recv()
            except (EOFError, OSError):
                self._fail(self._ended())
                return
            if not ok:
                error, message = answer
                self._fail((NoSpace if error == errno.ENOSPC else PackProcessError)(message))
                return
            with self._send_lock:
                waiting = self._waiting.popleft()
            try:
                waiting.future.set_result(waiting.handle(answer))
            except BaseException as exc:  # the callback's error is the batch's
                waiting.future.set_exception(exc)

    def _ended(self) -> PackProcessError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=1)
        return PackProcessError("a reader process ended unexpectedly (exit code "
                                f"{self._process.returncode})")

    def _fail(self, error: MedarkError) -> None:
        with self._send_lock:
            if self._failure is None:
                self._failure = error
            waiting, self._waiting = list(self._waiting), collections.deque()
        for entry in waiting:
            entry.future.set_exception(error)
            if entry.holds_slot:
                self._slots.release()

    def close(self) -> None:
        """End the process: it removes the packs it had not handed over."""
        with contextlib.suppress(OSError):  # end-of-file for the process and our reader
            self._socket.shutdown(socket.SHUT_RDWR)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=10)
        self._conn.close()
        self._socket.close()


class PackProcessPool:
    """Up to `size` reader processes, started as batches come; a batch goes to the one
    with the fewest queued."""

    def __init__(self, settings: Callable[[], ProcessSettings], size: int) -> None:
        """`settings`: asked when the first process starts (a backup that starts none
        creates no spool for them)."""
        self._settings = settings
        self._size = size
        self._all: list[PackProcess] = []
        self._lock = threading.Lock()
        self.started = 0
        """Processes started so far (the tests read it)."""

    def submit(self, jobs: list[FileJob], on_read: OnRead[T]) -> Future[T]:
        with self._lock:
            if len(self._all) < self._size:
                with interrupts_deferred():
                    self._all.append(PackProcess(self._settings()))
                self.started += 1
            process = min(self._all, key=lambda p: p.queued)
        return process.submit(jobs, on_read)

    def finish(self) -> list[SealedPack]:
        """Every process's partly filled pack, sealed (when every batch is done)."""
        return [pack for process in self._all for pack in process.finish()]

    def close(self) -> None:
        for process in self._all:
            process.close()
        self._all = []
