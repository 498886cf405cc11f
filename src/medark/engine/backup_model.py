"""What a backup is asked to do, what it counts and what it returns (engine/backup.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from threading import Lock
from typing import Any

from medark.engine.change_stats import ChangeStats
from medark.engine.file_observer import FileObserver
from medark.policy.anomaly import Thresholds, Verdict
from medark.repo.pack import WriteStats
from medark.snapshot.model import Snapshot
from medark.sources.files.excludes import Excluder
from medark.util import clock
from medark.util.progress import Progress

PROCESSES_AFTER = 2048
"""Small changed files a backup stores in its own threads before it starts reader
processes for the rest (engine/pack_processes.py): a small backup pays no start-up."""


@dataclass
class BackupOptions:
    paths: list[str]
    tags: list[str] = field(default_factory=list)
    host: str = ""
    excluder: Excluder = field(default_factory=Excluder)
    one_file_system: bool = False
    parent: str | None = None
    force: bool = False
    workers: int = 0
    anomaly: Thresholds = field(default_factory=Thresholds)
    """Ransomware detection thresholds (policy/anomaly.py)."""
    observer: FileObserver | None = None
    """Told of every file stored or reused (the DICOM catalog; engine/file_observer.py)."""
    processes_after: int | None = PROCESSES_AFTER
    """Small files stored in threads before reader processes take over; None: never."""


@dataclass
class BackupCounters:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unmodified: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    bytes_read: int = 0
    vanished: list[str] = field(default_factory=list)
    changed_during_backup: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _lock: Lock = field(default_factory=Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for key, value in deltas.items():
                setattr(self, key, getattr(self, key) + value)

    def unchanged_file(self, size: int) -> None:
        """One file reused from the parent (`add` for the commonest case, without the
        keyword dictionary: a no-change backup calls it once a file)."""
        with self._lock:
            self.total_files_processed += 1
            self.total_bytes_processed += size
            self.files_unmodified += 1


@dataclass
class BackupResult:
    snapshot: Snapshot
    summary: dict[str, Any]
    errors: list[str]
    verdict: Verdict | None = None


def worker_count(requested: int) -> int:
    return requested or max(2, os.cpu_count() or 2)


class ReadBytes:
    """Reports a file's bytes to the progress as its chunks are read (a large file moves
    the bar while it is read), and takes them back if the file is read again or fails."""

    __slots__ = ("counted", "progress")

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.counted = 0

    def __call__(self, nbytes: int) -> None:
        self.counted += nbytes
        self.progress.advance(nbytes=nbytes)

    def take_back(self) -> None:
        if self.counted:
            self.progress.advance(nbytes=-self.counted)
            self.counted = 0


def backup_summary(c: BackupCounters, s: WriteStats, changes: ChangeStats, started: datetime,
                   duration: float) -> dict[str, Any]:
    """The snapshot's summary (restic's names, and the change statistics)."""
    return {
        "backup_start": clock.format_time(started),
        "backup_end": clock.format_time(clock.now()),
        "files_new": c.files_new,
        "files_changed": c.files_changed,
        "files_unmodified": c.files_unmodified,
        "dirs_new": c.dirs_new,
        "dirs_changed": c.dirs_changed,
        "dirs_unmodified": c.dirs_unmodified,
        "data_blobs": s.data_blobs,
        "tree_blobs": s.tree_blobs,
        "data_added": s.plain_added,
        "data_added_packed": s.stored_added,
        "total_files_processed": c.total_files_processed,
        "total_bytes_processed": c.total_bytes_processed,
        "bytes_read": c.bytes_read,
        "files_vanished": len(c.vanished),
        "files_changed_during_backup": len(c.changed_during_backup),
        "errors": len(c.errors),
        **changes.summary(),
    }
