"""`restore`: put a snapshot (or the selected part of it) back below a target directory.

Full paths are kept below the target (restic's convention: a snapshot of /data/pacs
restored to /r gives /r/data/pacs/...). The walking thread selects entries, creates
directories, symlinks, fifos and devices at once, and collects regular files into
batches (so memory stays bounded on trees of millions of files). A batch is planned
(every blob located) while the previous one is being written by restore_data (by pack,
in a thread pool, temp names renamed into place); then come its hard links and, with
--verify, the re-reading of its files. At the very end the directories get their
metadata, deepest first, so their mtimes are not disturbed by the entries made in them.

Nothing is written outside the target (docs/design.md, "Restores stay inside their
target"): names are checked and repeats refused (restore_select), an entry goes only into
a directory this restore made or found to be a real one (make_dir replaces a link in the
way, never follows it), files are renamed into place and hard links never follow a link.

A full restore target aborts with NoSpace (nothing is left under a real name that is not
complete); any other problem with one entry is reported, the rest is restored, and the
summary says what failed. The repository is only read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from medark.engine.restore_data import DataRestorer, FileJob, RestoreRepo, Running, State
from medark.engine.restore_meta import (
    Creator,
    apply_path,
    make_dir,
    make_special,
    new_file_group,
    no_space,
)
from medark.engine.restore_select import PathFilter, Selected, select, select_below
from medark.engine.restore_shares import (
    SHARE_BATCH_FILES,
    LinkedFile,
    ShareResult,
    choose_shares,
    cpu_count,
    process_count,
    real_directory,
    run_shares,
    share_task,
)
from medark.errors import (
    IntegrityError,
    MedarkError,
    RepositoryCorrupt,
    UnsafeEntry,
    UsageError,
)
from medark.snapshot.model import Node, Snapshot
from medark.storage.local import LocalBackend
from medark.util import clock
from medark.util.progress import Progress
from medark.util.sizes import MiB

BATCH_FILES = 20_000
"""Files planned and restored together; bounds the memory of the plan."""
FIRST_BATCH = 256
"""The first batch is small so the writers start at once; batches then double."""
SPECIAL_TYPES = ("symlink", "fifo", "dev", "chardev", "socket")


@dataclass
class RestoreOptions:
    target: str
    includes: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    verify: bool = False
    workers: int = 0
    """Threads decoding and writing; 0 = max(2, number of CPUs)."""
    inflight: int = 128 * MiB
    batch_files: int = BATCH_FILES
    processes: int = 0
    """Restore processes for a large local tree (restore_shares.py): 0 = one per CPU
    (up to 4) when it pays, 1 = none."""


@dataclass
class RestoreSummary:
    snapshot_id: str
    target: str
    total_files: int = 0
    """Every selected entry: files, directories, symlinks and other special files."""
    files_restored: int = 0
    files_skipped: int = 0
    """Entries that cannot be made here (devices without root, sockets)."""
    total_bytes: int = 0
    bytes_restored: int = 0
    seconds_elapsed: float = 0.0
    files_verified: int = 0
    errors: list[str] = field(default_factory=list)
    verify_failures: list[str] = field(default_factory=list)
    damaged: bool = False
    unsafe: int = 0
    """Entries refused because they would land outside the target (UnsafeEntry)."""
    processes: int = 0
    """Restore processes that took shares of the tree (0: all in this one's threads)."""

    def public(self) -> dict[str, Any]:
        """restic's restore summary field names, plus what medark adds."""
        return {
            "message_type": "summary",
            "seconds_elapsed": round(self.seconds_elapsed, 3),
            "total_files": self.total_files,
            "files_restored": self.files_restored,
            "files_skipped": self.files_skipped,
            "total_bytes": self.total_bytes,
            "bytes_restored": self.bytes_restored,
            "bytes_skipped": 0,
            "snapshot_id": self.snapshot_id,
            "target": self.target,
            "files_verified": self.files_verified,
            "verify_failures": self.verify_failures,
            "errors": self.errors,
            "processes": self.processes,
        }

    def raise_for_problems(self) -> None:
        """After the summary is shown: a failed verification or unrestored entries."""
        if self.verify_failures:
            names = "; ".join(self.verify_failures)
            raise IntegrityError(
                f"verification failed for {len(self.verify_failures)} restored file(s): {names}"
            )
        if self.unsafe:
            raise UnsafeEntry(
                f"restore incomplete: {self.unsafe} unsafe entr{'y' if self.unsafe == 1 else 'ies'}"
                f" in the snapshot refused, each named above; nothing was written outside "
                f"{self.target}")
        if self.errors:
            cls = RepositoryCorrupt if self.damaged else MedarkError
            raise cls(f"restore incomplete: {len(self.errors)} error(s), each named above")


def prepare_target(target: str) -> str:
    """The absolute target directory, created if missing; a file there is an error."""
    path = os.path.abspath(target)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            fatal = no_space(exc, path)
            if fatal is not None:
                raise fatal from exc
            raise UsageError(f"cannot create restore target {path}: {exc.strerror}") from None
        return path
    except NotADirectoryError:
        raise UsageError(f"restore target {path}: a parent is not a directory") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"restore target {path} exists and is not a directory")
    return path


class Restorer:
    """One restore of one snapshot."""

    def __init__(self, repo: RestoreRepo, snapshot: Snapshot, options: RestoreOptions,
                 progress: Progress) -> None:
        self.repo = repo
        self.snapshot = snapshot
        self.options = options
        self.progress = progress
        self.filter = PathFilter(options.includes, options.excludes)
        self.creator = Creator.current()
        self.as_root = self.creator.as_root
        self.target = os.path.abspath(options.target)
        self.summary = RestoreSummary(snapshot.id, self.target)
        self._token = secrets.token_hex(4)
        self._serial = 0
        self._batch: list[FileJob] = []
        self._dirs: list[tuple[int, str, Node]] = []
        self._primaries: dict[tuple[int, int], FileJob] = {}
        self._links: list[tuple[FileJob, FileJob]] = []
        self._linked: list[FileJob] = []
        """Every file of several links, primary or not (for restore processes)."""
        self._made: set[str] = set()
        """Directories this restore made or found to be real directories (never links):
        the only places an entry is written into."""
        self._fresh: dict[str, int] = {}
        """Directories this restore made itself (empty when made), with the group a file
        created there gets: a small file goes there under its real name at once
        (restore_data, FileJob.direct)."""
        self._batch_limit = min(FIRST_BATCH, options.batch_files)
        self._running: list[Running] = []

    def run(self) -> RestoreSummary:
        started = clock.monotonic()
        existed = os.path.lexists(self.target)
        self.target = prepare_target(self.options.target)
        self.summary.target = self.target
        self._made.add(self.target)
        if not existed:
            self._fresh[self.target] = new_file_group(self.target)
        self._set_totals()
        workers = self.options.workers or max(2, os.cpu_count() or 2)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore")
        feeder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-feed")
        self.data = DataRestorer(self.repo, pool, self.target, self.progress, self.creator,
                                 self.options.inflight, self._error, self._tmp)
        try:
            bad_names: list[str] = []
            shares = self._shares()
            for entry in self._walk(bad_names, {s.path for share in shares for s in share}):
                self._place(entry)
                if len(self._batch) >= self._batch_limit:
                    self._flush(feeder)
            self._flush(feeder)
            results = self._run_shares(shares)
            while self._running:
                self._complete(self._running.pop(0))
            self._merge(results)
            for name in bad_names:
                self.summary.unsafe += 1
                self._error(f"{name}: unsafe or repeated name in the snapshot, refused "
                            "(with everything below it)", True)
            self._finish_dirs()
        except BaseException:
            self.data.abort()
            for running in self._running:
                with contextlib.suppress(BaseException):
                    self.data.finish(running)  # waits for its writers, removes temp files
            raise
        finally:
            feeder.shutdown(wait=True)
            pool.shutdown(wait=True)
        self.summary.files_restored += self.data.files_restored
        self.summary.bytes_restored += self.data.bytes_restored
        self.summary.seconds_elapsed = clock.monotonic() - started
        return self.summary

    def _walk(self, bad_names: list[str], skip: set[str]) -> Iterator[Selected]:
        return select(self.repo, self.snapshot.tree, self.filter, bad_names, skip)

    # ---- restore processes (restore_shares.py) -------------------------------------

    def _shares(self) -> list[list[Selected]]:
        """The directories restore processes take, one list per process; [] for none."""
        files = self.snapshot.summary.get("total_files_processed")
        count = process_count(self.options.processes, isinstance(self.repo.backend, LocalBackend),
                              self.options.includes,
                              int(files) if files is not None else None)
        if count < 2:
            return []
        return choose_shares(self.repo, self.snapshot.tree, self.filter, count)

    def _run_shares(self, shares: list[list[Selected]]) -> list[ShareResult]:
        """Each list of shares restored by a process; a share whose parent this restore
        could not make is reported, not handed out."""
        tasks = []
        # one writer thread per process when the processes fill the CPUs: more only
        # hand the GIL to and fro (measured: 7.3 s against 7.6 s with two, 8.5 s with three)
        count = max(1, len(shares))
        options = replace(self.options, processes=1,
                          workers=self.options.workers or max(1, cpu_count() // count),
                          inflight=max(16 * MiB, self.options.inflight // count),
                          batch_files=min(self.options.batch_files, SHARE_BATCH_FILES))
        for share in shares:
            ready = []
            for entry in share:
                if os.path.dirname(self._final(entry)) in self._made:
                    ready.append(entry)
                else:
                    self._error(f"{self._final(entry)}: not restored, its directory could "
                                "not be made")
            if ready:
                tasks.append(share_task(self.repo, self.snapshot.id, ready, options))
        self.summary.processes = len(tasks)
        return run_shares(tasks, self.progress, self.progress.warn) if tasks else []

    def _merge(self, results: list[ShareResult]) -> None:
        """The processes' counts into the summary; a file linked across shares becomes
        one inode again (each process made its own copy)."""
        first = {key: job.final for key, job in self._primaries.items()
                 if job.state is State.DONE}
        for result in results:
            theirs: RestoreSummary = result.summary
            for name in ("total_files", "files_restored", "files_skipped", "total_bytes",
                         "bytes_restored", "files_verified", "unsafe"):
                setattr(self.summary, name, getattr(self.summary, name) + getattr(theirs, name))
            self.summary.errors.extend(theirs.errors)
            self.summary.verify_failures.extend(theirs.verify_failures)
            self.summary.damaged = self.summary.damaged or theirs.damaged
            for device, inode, path in result.linked:
                primary = first.setdefault((device, inode), path)
                if primary != path:
                    self._relink(primary, path)

    def _relink(self, primary: str, path: str) -> None:
        """`path` made a link of `primary`; its directory, finished by the process that
        made it, keeps its times."""
        tmp = self._tmp(path)
        parent = os.path.dirname(path)
        try:
            times = os.lstat(parent)
            os.link(primary, tmp, follow_symlinks=False)
            os.rename(tmp, path)
            os.utime(parent, ns=(times.st_atime_ns, times.st_mtime_ns), follow_symlinks=False)
        except OSError as exc:
            _remove_quietly(tmp)
            self._os_error(exc, path)

    def linked(self) -> list[LinkedFile]:
        """The files with several links this restore made (for the parent's _merge)."""
        return [(job.node.device_id, job.node.inode, job.final) for job in self._linked
                if job.state is State.DONE]

    def _set_totals(self) -> None:
        """Totals for the progress bar from the snapshot's own summary, when it has them."""
        info = self.snapshot.summary
        if self.filter.selective or "total_bytes_processed" not in info:
            self.progress.set_total(None, None)
            return
        files = info.get("total_files_processed")
        self.progress.set_total(int(files) if files is not None else None,
                                int(info["total_bytes_processed"]))

    # ---- placing entries -----------------------------------------------------------

    def _final(self, entry: Selected) -> str:
        # entry.path is absolute and made of checked names (restore_select.valid_name)
        return self.target.rstrip("/") + entry.path

    def _tmp(self, final: str) -> str:
        self._serial += 1
        return os.path.join(os.path.dirname(final), f".medark-{self._token}-{self._serial}")

    def _place(self, entry: Selected) -> None:
        node = entry.node
        final = self._final(entry)
        self.summary.total_files += 1
        parent = os.path.dirname(final)
        if parent not in self._made:
            self._error(f"{final}: not restored, its directory could not be made")
            return
        if node.type == "dir":
            try:
                made = make_dir(final)
            except OSError as exc:
                self._os_error(exc, final)
                return
            self._made.add(final)
            if made:
                self._fresh[final] = new_file_group(final)
            self._dirs.append((entry.depth, final, node))
            self.summary.files_restored += 1
        elif node.type == "file":
            self.summary.total_bytes += node.size
            group = self._fresh.get(parent)
            direct = group is not None and not (node.links > 1 and node.inode)
            # a direct file needs no temporary name (restore_data names one if it turns
            # out to be of several blobs); a hard link is always made under one
            job = FileJob(final, "" if direct else self._tmp(final), node, direct=direct,
                          group=group)
            if node.links > 1 and node.inode:
                key = (node.device_id, node.inode)
                self._linked.append(job)
                primary = self._primaries.get(key)
                if primary is not None:
                    self._links.append((job, primary))
                    return
                self._primaries[key] = job
            self._batch.append(job)
        elif node.type in SPECIAL_TYPES:
            self._place_special(final, node)
        else:
            self._error(f"{final}: unknown node type {node.type!r}, not restored", True)

    def _place_special(self, final: str, node: Node) -> None:
        tmp = self._tmp(final)
        try:
            if not make_special(tmp, node, self.as_root):
                self.summary.files_skipped += 1
                if node.type != "socket":
                    self.progress.warn(f"{final}: {node.type} not restored (needs root)")
                return
            os.rename(tmp, final)
            apply_path(final, node, self.as_root)
        except OSError as exc:
            _remove_quietly(tmp)
            self._os_error(exc, final)
            return
        self.summary.files_restored += 1
        self.progress.advance(files=1)

    # ---- per batch -----------------------------------------------------------------

    def _flush(self, feeder: ThreadPoolExecutor) -> None:
        """Plan the collected batch here while earlier ones are written, queue it, then
        finish the batch before it (at most two are with the writers)."""
        batch, self._batch = self._batch, []
        self._batch_limit = min(2 * self._batch_limit, self.options.batch_files)
        plan = self.data.plan(batch)
        self._running.append(self.data.start(feeder, batch, plan))
        while len(self._running) > 1:
            self._complete(self._running.pop(0))

    def _complete(self, running: Running) -> None:
        """Wait for a batch; then its hard links and its verification."""
        self.data.finish(running)
        batch = running.jobs
        batch.extend(self._make_links())
        if self.options.verify:
            failures = self.data.verify(batch, running.plan)
            done = sum(1 for j in batch if j.state is State.DONE)
            self.summary.files_verified += done - len(failures)
            for failure in failures:
                self.progress.warn(f"verify: {failure}")
            self.summary.verify_failures.extend(failures)

    def _make_links(self) -> list[FileJob]:
        """Hard links to files already restored (a primary still waiting in the batch
        being planned keeps its links for the next round)."""
        made: list[FileJob] = []
        waiting: list[tuple[FileJob, FileJob]] = []
        for job, primary in self._links:
            if primary.state is State.PENDING:
                waiting.append((job, primary))
                continue
            made.append(job)
            if primary.state is not State.DONE:
                job.state = State.FAILED
                self._error(f"{job.final}: not restored, its hard link {primary.final} failed")
                continue
            try:
                os.link(primary.final, job.tmp, follow_symlinks=False)
                os.rename(job.tmp, job.final)
            except OSError as exc:
                job.state = State.FAILED
                _remove_quietly(job.tmp)
                self._os_error(exc, job.final)
                continue
            job.state = State.DONE
            self.summary.files_restored += 1
            self.summary.bytes_restored += primary.size
            self.progress.advance(files=1, nbytes=primary.size)
        self._links = waiting
        return made

    def _finish_dirs(self) -> None:
        """Directory metadata last, deepest first: later entries would change their mtime
        and a read-only parent would stop us from finishing its children."""
        self._dirs.sort(key=lambda d: -d[0])
        for _depth, path, node in self._dirs:
            try:
                apply_path(path, node, self.as_root)
            except OSError as exc:
                self._os_error(exc, path)
        self._dirs = []

    # ---- errors --------------------------------------------------------------------

    def _os_error(self, exc: OSError, path: str) -> None:
        fatal = no_space(exc, self.target)
        if fatal is not None:
            raise fatal from exc
        self._error(f"{path}: {exc.strerror or exc}")

    def _error(self, message: str, damaged: bool = False) -> None:
        self.summary.errors.append(message)
        self.progress.warn(message)
        if damaged:
            self.summary.damaged = True


class ShareRestorer(Restorer):
    """A restore process's part (restore_shares.py): the given directories and all below
    them, into directories the parent made (checked to be real ones)."""

    def __init__(self, repo: RestoreRepo, snapshot: Snapshot, options: RestoreOptions,
                 progress: Progress, shares: list[Selected]) -> None:
        super().__init__(repo, snapshot, options, progress)
        self.shares = shares

    def _shares(self) -> list[list[Selected]]:
        return []

    def _set_totals(self) -> None:
        return None

    def _walk(self, bad_names: list[str], skip: set[str]) -> Iterator[Selected]:
        for share in self.shares:
            final = self._final(share)
            if not real_directory(os.path.dirname(final)):
                self._error(f"{final}: not restored, its directory is not a directory")
                continue
            self._made.add(os.path.dirname(final))
            yield from select_below(self.repo, share, self.filter, bad_names)


def restore(repo: RestoreRepo, snapshot: Snapshot, options: RestoreOptions,
            progress: Progress) -> RestoreSummary:
    return Restorer(repo, snapshot, options, progress).run()


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
