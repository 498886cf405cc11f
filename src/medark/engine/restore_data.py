"""The data phase of a restore: file contents, read pack by pack.

Every blob the batch needs is located once; blobs are grouped by pack and contiguous
(or nearly contiguous) blobs of a pack are read with one ranged load. A pool of threads
opens, decompresses and verifies them (Repository.decode_blob: the ciphers, zstd and the
keyed hash release the GIL) and writes each blob to every file offset that uses it with
pwrite. Reads in flight are bounded by a byte budget, so memory does not grow with the
size of a file or of the restore.

Files are written under temporary names in their own directory and renamed into place
only once complete (with their mode, owner and mtime already set), so an interrupted
restore never leaves a truncated file under an existing directory's real name. A file of
one blob whose directory this restore made itself (empty when made) is written under its
real name at once, with O_EXCL: a rename per small file was a tenth of a many-small-files
restore, and a failed one is removed again (docs/design.md, "Direct writes"). An all-zero
blob is not written: the final ftruncate leaves a hole, so sparse files stay sparse.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from medark.engine.restore_meta import Creator, no_space
from medark.errors import MedarkError, ObjectNotFound, RepositoryCorrupt
from medark.repo.pack import PackedBlob, pack_name
from medark.snapshot.model import Node
from medark.snapshot.store import SnapshotRepo
from medark.util.budget import ByteBudget
from medark.util.progress import Progress
from medark.util.sizes import KiB, MiB

MERGE_GAP = 256 * KiB
"""Read across a gap of unneeded blobs up to this size rather than issue a second read."""
MAX_RANGE = 8 * MiB
"""Per read; a worker holds one range and its decoded blobs, so this bounds RSS."""
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
"""O_NOFOLLOW: a temporary name is never a link (nothing is written through one)."""


class PackReader(Protocol):
    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...


class IdHasher(Protocol):
    def blob_id(self, data: bytes | memoryview) -> bytes: ...


class RestoreRepo(SnapshotRepo, Protocol):
    """What a restore needs from a repository (docs/architecture.md, convention 4)."""

    @property
    def backend(self) -> PackReader: ...

    @property
    def crypto(self) -> IdHasher: ...

    def locate(self, blob_id: bytes) -> tuple[bytes, PackedBlob]: ...

    def locate_many(self, blob_ids: list[bytes]) -> dict[bytes, tuple[bytes, PackedBlob]]: ...

    def decode_blob(self, entry: PackedBlob, sealed: bytes | memoryview,
                    pack_id: bytes) -> bytes: ...


class State(Enum):
    PENDING = 0
    DONE = 1
    FAILED = 2


@dataclass(eq=False)
class FileJob:
    """One regular file to restore. `remaining` counts distinct blobs not yet written."""

    final: str
    tmp: str
    node: Node
    size: int = 0
    remaining: int = 0
    state: State = State.PENDING
    holes: bool = False
    """An all-zero blob was skipped: the final ftruncate must set the size."""
    direct: bool = False
    """Written under its real name (O_EXCL) instead of a temporary one: its directory was
    made by this restore and it is one blob written once (docs/design.md)."""
    created: bool = False
    """A direct file exists under its real name (removed again if it fails)."""
    group: int | None = None
    """The group a file created in its (fresh) directory gets; set with `direct`."""


Uses = list[tuple[FileJob, list[int]]]
"""Where a blob goes: (file, offsets in that file)."""


@dataclass
class ReadRange:
    pack_id: bytes
    start: int
    end: int
    blobs: list[PackedBlob]


def is_zero(data: bytes) -> bool:
    n = len(data)
    if not n:
        return True
    if data[0] or data[-1] or data[n >> 1]:
        return False  # the usual case, decided without scanning
    return data == bytes(n)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    written = os.pwrite(fd, data, offset)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    offset += written
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class BatchPlan:
    """The blobs one batch of files needs, where each lives and where each goes."""

    def __init__(self, tmp_name: Callable[[str], str]) -> None:
        self.tmp_name = tmp_name
        """A temporary name beside a file (for a direct file that turns out not to be)."""
        self.located: dict[bytes, tuple[bytes, PackedBlob]] = {}
        self.targets: dict[bytes, Uses] = {}
        self.packs: dict[bytes, list[PackedBlob]] = {}
        self.rank: dict[bytes, int] = {}
        self.empty: list[FileJob] = []

    def add(self, repo: RestoreRepo, index: int, job: FileJob) -> None:
        """Plan one file; ObjectNotFound (before anything is recorded) if a blob is missing."""
        uses: dict[bytes, list[int]] = {}
        offset = 0
        for blob_id in job.node.content:
            found = self.located.get(blob_id)
            if found is None:
                found = repo.locate(blob_id)
                self.located[blob_id] = found
            uses.setdefault(blob_id, []).append(offset)
            offset += found[1].plain_length
        job.size = offset
        job.remaining = len(uses)
        if job.direct and (len(uses) > 1 or len(job.node.content) > 1):
            job.direct = False  # several writes, maybe by several threads: a temp file
            job.tmp = self.tmp_name(job.final)
        if not uses:
            self.empty.append(job)
            return
        for blob_id, offsets in uses.items():
            targets = self.targets.get(blob_id)
            if targets is not None:
                targets.append((job, offsets))
                continue
            self.targets[blob_id] = [(job, offsets)]
            pack_id, entry = self.located[blob_id]
            self.packs.setdefault(pack_id, []).append(entry)
            self.rank.setdefault(pack_id, index)

    def ranges(self) -> Iterator[ReadRange]:
        """Packs in the order their first file needs them (so few files are open at once),
        blobs by offset, neighbours merged into one read."""
        for pack_id in sorted(self.packs, key=self.rank.__getitem__):
            blobs = sorted(self.packs[pack_id], key=lambda e: e.offset)
            current = ReadRange(pack_id, blobs[0].offset, blobs[0].offset + blobs[0].length,
                                [blobs[0]])
            for entry in blobs[1:]:
                end = entry.offset + entry.length
                if entry.offset - current.end <= MERGE_GAP and end - current.start <= MAX_RANGE:
                    current.blobs.append(entry)
                    current.end = max(current.end, end)
                else:
                    yield current
                    current = ReadRange(pack_id, entry.offset, end, [entry])
            yield current


@dataclass
class Running:
    """A batch handed to the writers."""

    jobs: list[FileJob]
    plan: BatchPlan
    futures: list[Future[None]] = field(default_factory=list)
    feed: Future[None] | None = None


class DataRestorer:
    """Restores the contents of batches of files through a shared thread pool."""

    def __init__(self, repo: RestoreRepo, pool: ThreadPoolExecutor, target: str,
                 progress: Progress, creator: Creator, inflight: int,
                 report: Callable[[str, bool], None], tmp_name: Callable[[str], str]) -> None:
        self.repo = repo
        self.pool = pool
        self.target = target
        self.progress = progress
        self.creator = creator
        self.report = report
        self.tmp_name = tmp_name
        self.files_restored = 0
        self.bytes_restored = 0
        self._budget = ByteBudget(inflight)
        self._lock = threading.Lock()
        self._abort = False
        self._fatal: BaseException | None = None

    # ---- one batch -----------------------------------------------------------------

    def plan(self, jobs: list[FileJob]) -> BatchPlan:
        """Locate every blob of a batch (in the walking thread, while the previous batch
        is still being written)."""
        plan = BatchPlan(self.tmp_name)
        plan.located = self.repo.locate_many([b for job in jobs for b in job.node.content])
        for index, job in enumerate(jobs):
            try:
                plan.add(self.repo, index, job)
            except ObjectNotFound as exc:
                self._fail(job, f"{job.final}: {exc} (run `medark check`)", damaged=True)
        return plan

    def abort(self) -> None:
        """Stop after the writes in progress (Ctrl-C or an error elsewhere)."""
        self._abort = True

    def start(self, feeder: ThreadPoolExecutor, jobs: list[FileJob], plan: BatchPlan) -> Running:
        """Queue a planned batch behind the one being written, so the pool never drains."""
        running = Running(jobs, plan)
        running.feed = feeder.submit(self._feed, running)
        return running

    def _feed(self, running: Running) -> None:
        for job in running.plan.empty:
            if self._abort:
                return
            try:
                self._restore_empty(job)
            except OSError as exc:
                self._os_failure(job, exc)
        for rng in running.plan.ranges():
            size = rng.end - rng.start
            self._budget.acquire(size)
            if self._abort:
                self._budget.release(size)
                return
            future = self.pool.submit(self._read_range, rng, running.plan.targets)
            future.add_done_callback(self._on_done)
            running.futures.append(future)

    def finish(self, running: Running) -> None:
        """Wait until every file of a batch is in place or failed, then remove the temp
        files of the failed ones; raises the first fatal error (a full disk)."""
        feed = running.feed
        assert feed is not None
        try:
            wait([feed])
            wait(running.futures)
        except BaseException:
            # Ctrl-C: the workers finish their current write before the temp files go,
            # so that none is re-created after the clean-up.
            self._abort = True
            wait([feed])
            wait(running.futures)
            self._cleanup(running.jobs, report=False)
            raise
        fatal = feed.exception() or self._fatal
        if fatal is not None:
            self._abort = True
        self._cleanup(running.jobs, report=not self._abort)
        if fatal is not None:
            raise fatal

    def _on_done(self, future: Future[None]) -> None:
        exc = future.exception()
        if exc is not None:
            with self._lock:
                if self._fatal is None:
                    self._fatal = exc
                self._abort = True

    def _cleanup(self, jobs: list[FileJob], report: bool) -> None:
        """Remove the temporary files of files not completed (never a real name)."""
        for job in jobs:
            if job.state is State.DONE:
                continue
            if report and job.state is State.PENDING:
                self._fail(job, f"{job.final}: not all of its data could be restored")
            if job.direct and not job.created:
                continue  # never made: nothing of ours is there
            try:
                os.unlink(job.final if job.direct else job.tmp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.report(f"cannot remove temporary file {job.tmp}: {exc.strerror}", False)

    # ---- workers -------------------------------------------------------------------

    def _read_range(self, rng: ReadRange, targets: dict[bytes, Uses]) -> None:
        try:
            if self._abort:
                return
            try:
                data = memoryview(self.repo.backend.load(pack_name(rng.pack_id.hex()),
                                                         rng.start, rng.end - rng.start))
            except MedarkError as exc:
                for entry in rng.blobs:
                    self._blob_failed(targets.pop(entry.id, []), exc)
                return
            for entry in rng.blobs:
                if self._abort:
                    return
                uses = targets.pop(entry.id, [])
                rel = entry.offset - rng.start
                try:
                    plain = self.repo.decode_blob(entry, data[rel : rel + entry.length],
                                                  rng.pack_id)
                except MedarkError as exc:
                    self._blob_failed(uses, exc)
                    continue
                zero = is_zero(plain)
                for job, offsets in uses:
                    if job.state is State.PENDING:
                        try:
                            self._write(job, plain, offsets, zero)
                        except OSError as exc:
                            self._os_failure(job, exc)
        finally:
            self._budget.release(rng.end - rng.start)

    def _os_failure(self, job: FileJob, exc: OSError) -> None:
        """A full disk aborts the restore; any other error fails just this file."""
        fatal = no_space(exc, self.target)
        if fatal is not None:
            raise fatal from exc
        self._fail(job, f"{job.final}: {exc.strerror or exc}")

    def _open(self, job: FileJob, flags: int) -> int:
        if not job.direct:
            return os.open(job.tmp, flags, 0o600)
        fd = os.open(job.final, flags | os.O_EXCL, self.creator.create_mode(job.node, job.group))
        job.created = True
        return fd

    def _write(self, job: FileJob, plain: bytes, offsets: list[int], zero: bool) -> None:
        fd = self._open(job, WRITE_FLAGS)
        try:
            if zero:
                job.holes = True
            else:
                for offset in offsets:
                    pwrite_all(fd, plain, offset)
            nbytes = len(plain) * len(offsets)
            with self._lock:
                job.remaining -= 1
                last = job.remaining == 0 and job.state is State.PENDING
                self.bytes_restored += nbytes
                if not last:
                    self.progress.advance(nbytes=nbytes)
            if last:
                if job.holes:
                    os.ftruncate(fd, job.size)  # the trailing hole of a sparse file
                self._set_metadata(job, fd)
        finally:
            os.close(fd)
        if last:
            self._install(job, nbytes)

    def _restore_empty(self, job: FileJob) -> None:
        fd = self._open(job, WRITE_FLAGS | os.O_TRUNC)
        try:
            self._set_metadata(job, fd)
        finally:
            os.close(fd)
        self._install(job)

    def _set_metadata(self, job: FileJob, fd: int) -> None:
        try:
            self.creator.apply_fd(fd, job.node, job.group if job.direct else None)
        except OSError as exc:
            if no_space(exc, self.target) is not None:
                raise
            self.report(f"{job.final}: cannot set metadata: {exc.strerror or exc}", False)

    def _install(self, job: FileJob, nbytes: int = 0) -> None:
        if not job.direct:
            os.rename(job.tmp, job.final)
        with self._lock:
            job.state = State.DONE
            self.files_restored += 1
            self.progress.advance(files=1, nbytes=nbytes)

    def _fail(self, job: FileJob, message: str, damaged: bool = False) -> None:
        with self._lock:
            if job.state is not State.PENDING:
                return
            job.state = State.FAILED
        self.report(message, damaged)

    def _blob_failed(self, uses: Uses, exc: MedarkError) -> None:
        damaged = isinstance(exc, (RepositoryCorrupt, ObjectNotFound))
        for job, _offsets in uses:
            self._fail(job, f"{job.final}: {exc}", damaged)

    # ---- verification --------------------------------------------------------------

    def verify(self, jobs: list[FileJob], plan: BatchPlan) -> list[str]:
        """Re-read each restored file and check every chunk against its keyed id."""
        done = [j for j in jobs if j.state is State.DONE]
        results = self.pool.map(lambda j: self._verify_one(j, plan), done)
        return [r for r in results if r is not None]

    def _verify_one(self, job: FileJob, plan: BatchPlan) -> str | None:
        try:
            fd = os.open(job.final, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            return f"{job.final}: cannot be read back: {exc.strerror or exc}"
        try:
            offset = 0
            for blob_id in job.node.content:
                found = plan.located.get(blob_id)
                if found is None:  # a hard link restored by linking: not planned here
                    found = self.repo.locate(blob_id)
                length = found[1].plain_length
                data = os.pread(fd, length, offset)
                if len(data) != length or self.repo.crypto.blob_id(data) != blob_id:
                    return (f"{job.final}: content at offset {offset} does not match "
                            f"chunk {blob_id.hex()[:16]}")
                offset += length
            size = os.fstat(fd).st_size
            if size != offset:
                return f"{job.final}: size {size} instead of {offset}"
        except OSError as exc:
            return f"{job.final}: cannot be read back: {exc.strerror or exc}"
        except ObjectNotFound as exc:
            return f"{job.final}: {exc}"
        finally:
            os.close(fd)
        return None
