"""`backup`: walk the given paths, store changed files, write trees, then the snapshot.

Phases: lock (shared) -> find the parent snapshot -> archive (files in a thread pool,
chunks in a second one) -> flush packs and index -> save the snapshot. Files whose size,
mtime, ctime and inode match the parent are not read again (restic's rule).
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from threading import BoundedSemaphore
from typing import Any

from medark import __version__
from medark.engine.archiver import ContentArchiver
from medark.engine.backup_model import (
    BackupCounters,
    BackupOptions,
    BackupResult,
    ReadBytes,
    backup_summary,
    worker_count,
)
from medark.engine.backup_paths import (
    build_path_tree,
    estimate_totals,
    find_parent,
    normalize_paths,
    same_source,
)
from medark.engine.change_stats import ChangeStats, ContentSample, recorded_extensions
from medark.engine.file_observer import HEAD_BYTES
from medark.engine.pack_processes import (
    GONE,
    BatchRead,
    PackProcessPool,
    ProcessSettings,
    Sample,
)
from medark.errors import SourceError
from medark.policy.anomaly import SUMMARY_KEY, assess
from medark.repo.chunker import Chunker
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import (
    all_snapshots,
    load_tree,
    save_snapshot,
    save_tree,
)
from medark.sources.files.metadata import node_from_stat, same_file_node, unchanged
from medark.sources.files.reading import (
    open_for_reading,
    read_small,
    same_version,
    unchanged_while_read,
    version,
)
from medark.util import clock
from medark.util.progress import Progress
from medark.util.sizes import MiB

REREAD_ATTEMPTS = 3
INFLIGHT_BYTES = 16 * MiB  # chunk bytes read but not yet packed
OPEN_DIRS = 32
BATCH_FILES = 64  # small files handed to a file thread together
BATCH_BYTES = 4 * MiB  # scanned directories whose trees may wait for their files
PROCESS_BATCH_MIN = 8
"""Files a batch needs to go to a reader process: 65,536 files in batches of 4 took as
long in processes as in threads, with up to 40 % more CPU."""


@dataclass
class PendingDir:
    """A scanned directory whose entries may still be in the file pool."""

    node: Node
    old: Node | None
    children: list[Pending]
    old_nodes: list[Node] | None = None
    path: str = ""


FileJob = tuple[str, str, os.stat_result, Node | None]
Pending = Node | Future[Node | None] | Future[list[Node]] | PendingDir | None


def _ready(item: Pending) -> bool:
    if isinstance(item, Future):
        return item.done()
    if isinstance(item, PendingDir):
        return all(_ready(child) for child in item.children)
    return True


class Backup:
    """One backup run over local paths."""

    def __init__(self, repo: Repository, options: BackupOptions, progress: Progress) -> None:
        self.repo = repo
        self.options = options
        self.progress = progress
        self.counters = BackupCounters()
        self.changes = ChangeStats()
        workers = worker_count(options.workers)
        self.content = ContentArchiver(
            repo, Chunker(repo.config.chunker), workers, inflight=INFLIGHT_BYTES, sample=True
        )
        # As many file threads as workers: a third measured no faster on two cores and
        # cost ~6 MB of peak RSS (one more zstd context and read buffer).
        self._files = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="file")
        self._file_slots = BoundedSemaphore(4 * (workers + 1))
        self._root_dev = 0
        self._processes: PackProcessPool | None = None
        self._small_files_seen = 0
        if (workers > 1 and _usable_cpus() > 1
                and options.processes_after is not None):
            self._processes = PackProcessPool(lambda: ProcessSettings(
                repo.sealer_settings(), self.content.small,
                HEAD_BYTES if options.observer is not None else 0,
                str(repo.cache.path) if repo.cache.path else None), workers)

    # ---- the walk ----------------------------------------------------------------

    def run(self) -> BackupResult:
        started = clock.now()
        t0 = clock.monotonic()
        paths = normalize_paths(self.options.paths)
        host = self.options.host or socket.gethostname()
        snaps = all_snapshots(self.repo)
        parent = None if self.options.force else find_parent(
            self.repo, host, paths, self.options.parent, snaps
        )
        if parent is not None:
            self.changes.known_extensions = recorded_extensions(parent.summary)
        old_root = load_tree(self.repo, parent.tree) if parent else None
        if self.options.observer is not None:
            self.options.observer.start(parent)
        done = threading.Event()
        if self.progress.wants_total:
            threading.Thread(target=estimate_totals, daemon=True,
                             args=(paths, self.options.excluder, self.progress, done),
                             name="scan").start()
        try:
            root_nodes = self._archive_virtual("/", build_path_tree(paths), old_root)
            root_id = save_tree(self.repo, root_nodes)
            if self._processes is not None:
                for pack in self._processes.finish():
                    self.repo.store_sealed_pack(pack)
            self.repo.flush()
        finally:
            done.set()
            self._files.shutdown(wait=True)
            self.content.close()
            if self._processes is not None:
                self._processes.close()
        duration = clock.monotonic() - t0
        snapshot = Snapshot(
            time=started, tree=root_id, paths=paths, hostname=host,
            username=os.environ.get("USER", ""), tags=list(self.options.tags),
            parent=parent.id if parent else None, program_version=f"medark {__version__}",
        )
        snapshot.summary = backup_summary(self.counters, self.repo.stats, self.changes,
                                          started, duration)
        verdict = None
        if parent is not None:  # with --force nothing was compared: no verdict
            history = [s.summary for s in same_source(snaps, host, paths) if s.time <= started]
            verdict = assess(snapshot.summary, history, self.options.anomaly)
            snapshot.summary[SUMMARY_KEY] = verdict.to_dict()
        if self.options.observer is not None:
            self.options.observer.finish(snapshot)
        save_snapshot(self.repo, snapshot)
        summary = dict(snapshot.summary, snapshot_id=snapshot.id, total_duration=duration)
        return BackupResult(snapshot, summary, list(self.counters.errors), verdict)

    def _error(self, path: str, exc: OSError | str) -> None:
        reason = exc if isinstance(exc, str) else exc.strerror or exc
        message = f"error: {path}: {reason}"
        with self.counters._lock:
            self.counters.errors.append(message)
        self.progress.warn(message)

    def _vanished(self, path: str) -> None:
        with self.counters._lock:
            self.counters.vanished.append(path)
        self.progress.warn(f"note: {path} disappeared during the backup")

    def _archive_virtual(
        self, prefix: str, children: dict[str, Any], old_nodes: list[Node] | None
    ) -> list[Node]:
        """Directories on the way to the given paths, holding only what was asked for."""
        old_by_name = {n.name: n for n in old_nodes or []}
        pending: list[Pending] = []
        for name, sub in sorted(children.items()):
            full = prefix.rstrip("/") + "/" + name
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                raise SourceError(f"{full} does not exist") from None
            except OSError as exc:
                raise SourceError(f"cannot read {full}: {exc.strerror}") from None
            old = old_by_name.get(name)
            if sub is None:
                self._root_dev = st.st_dev
                pending.append(self._archive_entry(full, name, st, old))
            else:
                old_sub = self._old_subtree(old)
                node = node_from_stat(name, st)
                node.subtree = save_tree(self.repo, self._archive_virtual(full, sub, old_sub))
                pending.append(node)
        return self._resolve(pending)

    def _old_subtree(self, old: Node | None) -> list[Node] | None:
        if old is None or old.type != "dir" or old.subtree is None:
            return None
        return load_tree(self.repo, old.subtree)

    def _archive_entry(
        self, full: str, name: str, st: os.stat_result, old: Node | None,
        missing: set[bytes] | None = None,
    ) -> Pending:
        """`missing`: blobs known absent from the index (checked for a whole directory at
        once); None means check this entry's blobs here."""
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            return self._archive_dir(full, name, st, old)
        if stat.S_ISREG(mode):
            if (not self.options.force and old is not None and unchanged(old, st)
                    and self._content_present(old.content, missing)):
                self.counters.unchanged_file(st.st_size)
                self.progress.advance(files=1, nbytes=st.st_size)
                if self.options.observer is not None:
                    self.options.observer.unchanged(full)
                if same_file_node(old, st):
                    return old
                node = node_from_stat(name, st)
                node.content = old.content
                return node
            self.counters.add(total_files_processed=1, total_bytes_processed=st.st_size)
            self._file_slots.acquire()
            return self._files.submit(self._archive_file, full, name, st, old)
        linktarget = ""
        if stat.S_ISLNK(mode):
            try:
                linktarget = os.readlink(full)
            except FileNotFoundError:
                self._vanished(full)
                return None
            except OSError as exc:
                self._error(full, exc)
                return None
        return node_from_stat(name, st, linktarget)

    def _content_present(self, content: list[bytes], missing: set[bytes] | None) -> bool:
        """restic's rule: an unchanged file is reused only if all its blobs are indexed."""
        if missing is None:
            return all(self.repo.has_blob(b) for b in content)
        return not missing.intersection(content)

    def _archive_dir(
        self, full: str, name: str, st: os.stat_result, old: Node | None
    ) -> PendingDir | Node | None:
        """Scan one directory, submitting its files; its tree is written later, when its
        children are done, so the next directories are scanned meanwhile (no barrier)."""
        node = node_from_stat(name, st)
        old_sub = self._old_subtree(old)
        if self.options.one_file_system and st.st_dev != self._root_dev:
            node.subtree = save_tree(self.repo, [])
            return node
        try:
            names = sorted(os.listdir(full))
        except FileNotFoundError:
            self._vanished(full)
            return None
        except OSError as exc:
            self._error(full, exc)
            return None
        old_by_name = {n.name: n for n in old_sub or []}
        pending = PendingDir(node, old, [], old_sub, full)
        entries = []
        for child in names:
            path = full.rstrip("/") + "/" + child
            if self.options.excluder.excluded(path):
                continue
            try:
                entries.append((path, child, os.lstat(path), old_by_name.get(child)))
            except FileNotFoundError:
                self._vanished(path)
            except OSError as exc:
                self._error(path, exc)
        self._record_directory(names, entries, old_sub)
        missing = self.repo.missing_blobs(
            [b for _p, _c, cst, o in entries if o is not None and unchanged(o, cst)
             for b in o.content])
        open_dirs: deque[int] = deque()
        batch: list[FileJob] = []
        batch_bytes = 0
        for path, child, child_st, child_old in entries:
            if self._batchable(child_st, child_old, missing):
                # Small changed files travel in batches: one hand-off per batch instead
                # of per file (thread hand-offs, not I/O, bound many-small-file backups).
                batch.append((path, child, child_st, child_old))
                batch_bytes += child_st.st_size
                if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                    pending.children.append(self._submit_batch(batch))
                    batch, batch_bytes = [], 0
                continue
            item = self._archive_entry(path, child, child_st, child_old, missing)
            pending.children.append(item)
            if isinstance(item, PendingDir):
                open_dirs.append(len(pending.children) - 1)
            # Finish subdirectories whose files are done; never keep too many open.
            while open_dirs and (len(open_dirs) > OPEN_DIRS or
                                 _ready(pending.children[open_dirs[0]])):
                index = open_dirs.popleft()
                pending.children[index] = self._finish(pending.children[index])
        if batch:
            pending.children.append(self._submit_batch(batch))
        return pending

    def _record_directory(self, names: list[str], entries: list[FileJob],
                          old_sub: list[Node] | None) -> None:
        """Change statistics of one directory: what the parent had that is gone, and the
        extensions of its files."""
        present = set(names)
        gone = [n for n in old_sub or [] if n.name not in present]
        deleted = sum(1 if n.type == "file" else self._count_files(n) for n in gone)
        files = [child for _p, child, cst, _o in entries if stat.S_ISREG(cst.st_mode)]
        self.changes.directory(files, old_sub, gone, deleted)

    def _count_files(self, node: Node) -> int:
        """Files below a directory of the parent snapshot (0 for other node types)."""
        if node.type != "dir" or node.subtree is None:
            return 0
        return sum(1 if n.type == "file" else self._count_files(n)
                   for n in load_tree(self.repo, node.subtree))

    def _batchable(self, st: os.stat_result, old: Node | None,
                   missing: set[bytes] | None) -> bool:
        if not stat.S_ISREG(st.st_mode) or st.st_size >= self.content.small:
            return False
        reusable = (not self.options.force and old is not None and unchanged(old, st)
                    and self._content_present(old.content, missing))
        return not reusable

    def _submit_batch(self, batch: list[FileJob]) -> Future[list[Node]]:
        self.counters.add(total_files_processed=len(batch),
                          total_bytes_processed=sum(job[2].st_size for job in batch))
        self._file_slots.acquire()
        self._small_files_seen += len(batch)
        after = self.options.processes_after
        # A batch of a few files costs a process more in messages than it saves (a
        # PACS's <hh>/<hh> directories hold a handful each): those stay in the threads.
        if (self._processes is not None and after is not None
                and self._small_files_seen > after and len(batch) >= PROCESS_BATCH_MIN):
            return self._batch_in_process(batch)
        return self._files.submit(self._archive_batch, batch)

    def _batch_in_process(self, batch: list[FileJob]) -> Future[list[Node]]:
        """Small files read, hashed and sealed by a reader process; the answer is taken
        by the process's own thread in the parent, which claims the new blobs and builds
        the nodes (the bulk of the work leaves the GIL, and the scan never waits)."""
        assert self._processes is not None
        try:
            return self._processes.submit(
                [(full, version(before)) for full, _n, before, _o in batch],
                lambda answer, claim: self._batch_read(batch, answer, claim))
        except BaseException:
            self._file_slots.release()
            raise

    def _batch_read(self, batch: list[FileJob], answer: BatchRead,
                    claim: Callable[[list[bool]], None]) -> list[Node]:
        try:
            ids = [r for r in answer.reads if isinstance(r, bytes) and r]
            wanted = self.repo.claim_new(ids, self.repo.missing_blobs(ids))
            claim(wanted)
            for pack in answer.packs:
                self.repo.store_sealed_pack(pack)
            return self._batch_nodes(batch, answer, iter(zip(wanted, answer.samples,
                                                             strict=True)))
        finally:
            self._file_slots.release()

    def _batch_nodes(self, batch: list[FileJob], answer: BatchRead,
                     stored: Iterator[tuple[bool, Sample]]) -> list[Node]:
        """The nodes of a batch a process read: a file read as scanned has the scan's
        lstat (pack_processes.FileRead); the others are reported or read again here."""
        nodes: list[Node] = []
        new = changed = nbytes = 0
        heads = iter(answer.heads or ())
        for (full, name, before, old), read in zip(batch, answer.reads, strict=True):
            if not isinstance(read, bytes):
                node = self._not_read(full, name, old, read)
                if node is not None:
                    nodes.append(node)
                continue
            node = node_from_stat(name, before)
            sample = ContentSample()
            if read:
                node.content = [read]
                claimed, sampled = next(stored)
                if claimed and sampled is not None:
                    sample.sampled, sample.encrypted = sampled
            if self.options.observer is not None:
                self.options.observer.read(full, before.st_size, next(heads))
            nodes.append(node)
            nbytes += before.st_size
            self.changes.file_stored(before.st_size, old is None, sample)
            new, changed = (new + 1, changed) if old is None else (new, changed + 1)
        self.counters.add(bytes_read=nbytes, files_new=new, files_changed=changed)
        self.progress.advance(files=new + changed, nbytes=nbytes)
        return nodes

    def _not_read(self, full: str, name: str, old: Node | None, read: int | str
                  ) -> Node | None:
        """A file of a batch a reader process did not take: gone, unreadable, or to be
        read again by the full path (changed while read)."""
        if isinstance(read, str):
            self._error(full, read)
        elif read == GONE:
            self._vanished(full)
        else:
            return self._archive_one(full, name, old)
        return None

    def _archive_batch(self, batch: list[FileJob]) -> list[Node]:
        """Small files: read all, hash all, ask the index about all at once, then store
        the new ones; counters and progress move once per batch."""
        try:
            read: list[tuple[str, Node | None, os.stat_result, bytes]] = []
            nodes: list[Node | None] = []
            for full, name, before, old in batch:
                try:
                    data, after = read_small(full, before.st_size)
                except FileNotFoundError:
                    self._vanished(full)
                    continue
                except OSError as exc:
                    self._error(full, exc)
                    continue
                if unchanged_while_read(version(before), after, data, self.content.small):
                    read.append((name, old, after, data))
                    if self.options.observer is not None:
                        self.options.observer.read(full, len(data), data)
                else:  # changed while read, grew, or not a file any more: the full path
                    nodes.append(self._archive_one(full, name, old))
            ids = [self.repo.crypto.blob_id(data) if data else b"" for *_rest, data in read]
            absent = self.repo.missing_blobs([i for i in ids if i])
            samples = iter(self.content.save_new(
                [(blob_id, data) for (*_rest, data), blob_id in zip(read, ids, strict=True)
                 if data], absent))
            new = changed = nbytes = 0
            for (name, old, st, data), blob_id in zip(read, ids, strict=True):
                node = node_from_stat(name, st)
                sample = None
                if data:
                    sample = next(samples)
                    node.content = [blob_id]
                nodes.append(node)
                nbytes += len(data)
                self.changes.file_stored(len(data), old is None, sample or ContentSample())
                new, changed = (new + 1, changed) if old is None else (new, changed + 1)
            self.counters.add(bytes_read=nbytes, files_new=new, files_changed=changed)
            self.progress.advance(files=len(read), nbytes=nbytes)
        finally:
            self._file_slots.release()
        return [n for n in nodes if n is not None]

    def _finish(self, item: Pending) -> Node | None:
        """Wait for one pending entry; for a directory, write its tree."""
        if isinstance(item, Future):
            result = item.result()
            assert not isinstance(result, list), "batches are finished by _collect"
            return result
        if not isinstance(item, PendingDir):
            return item
        nodes = sorted(self._collect(item.children), key=lambda n: n.name)
        node = item.node
        if item.old_nodes is not None and item.old is not None and nodes == item.old_nodes:
            node.subtree = item.old.subtree  # identical entries: the same tree, not re-encoded
        else:
            node.subtree = save_tree(self.repo, nodes)
        old = item.old
        if old is None or old.type != "dir":
            self.counters.add(dirs_new=1)
        elif old.subtree == node.subtree:
            self.counters.add(dirs_unmodified=1)
        else:
            self.counters.add(dirs_changed=1)
        if self.options.observer is not None:
            self.options.observer.directory(
                item.path, old is not None and old.type == "dir" and old.subtree == node.subtree)
        return node

    def _collect(self, pending: list[Pending]) -> list[Node]:
        """The finished nodes of a directory's entries (batches contribute several)."""
        nodes: list[Node] = []
        for item in pending:
            if isinstance(item, Future):
                result = item.result()
                if isinstance(result, list):
                    nodes.extend(result)
                elif result is not None:
                    nodes.append(result)
                continue
            node = self._finish(item)
            if node is not None:
                nodes.append(node)
        return nodes

    def _resolve(self, pending: list[Pending]) -> list[Node]:
        return self._collect(pending)

    # ---- one file ----------------------------------------------------------------

    def _archive_file(
        self, full: str, name: str, st: os.stat_result, old: Node | None
    ) -> Node | None:
        try:
            return self._archive_one(full, name, old)
        finally:
            self._file_slots.release()

    def _archive_one(self, full: str, name: str, old: Node | None) -> Node | None:
        try:
            return self._read_file(full, name, old)
        except FileNotFoundError:
            self._vanished(full)
            return None
        except OSError as exc:
            self._error(full, exc)
            return None

    def _read_file(self, full: str, name: str, old: Node | None) -> Node | None:
        fd = open_for_reading(full)
        read = ReadBytes(self.progress)
        try:
            for attempt in range(REREAD_ATTEMPTS):
                before = os.fstat(fd)
                if not stat.S_ISREG(before.st_mode):
                    read.take_back()
                    return node_from_stat(name, before)
                if attempt:
                    os.lseek(fd, 0, os.SEEK_SET)
                    read.take_back()  # read again: count the file once
                stored = self.content.store_file(fd, before.st_size, read)
                self.counters.add(bytes_read=stored.size)
                after = os.fstat(fd)
                if same_version(before, after) and stored.size == after.st_size:
                    break
            else:
                with self.counters._lock:
                    self.counters.changed_during_backup.append(full)
                self.progress.warn(f"warning: {full} changed while it was read; stored as read")
            if self.options.observer is not None:
                self.options.observer.read(full, stored.size, os.pread(fd, HEAD_BYTES, 0))
        except BaseException:
            read.take_back()
            raise
        finally:
            os.close(fd)
        node = node_from_stat(name, after)
        node.size = stored.size
        node.content = stored.ids
        self.changes.file_stored(stored.size, old is None, stored.sample)
        self.counters.add(**({"files_new": 1} if old is None else {"files_changed": 1}))
        self.progress.advance(files=1)  # its bytes were counted as they were read
        return node


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's or taskset's share, where known)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
