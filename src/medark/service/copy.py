"""Replication use cases: copy once, follow a repository, report the offsite lag.

Both repositories stay open for the whole command (unlocking a key costs a KDF run);
locks are taken per pass, so a `copy --follow` running for weeks never keeps the
source's or the destination's prune waiting for more than one pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from medark.engine.copy import (
    ARCHIVE_PREFIXES,
    Copier,
    CopyStats,
    newest_record_time,
    origin,
)
from medark.engine.copy import (
    Event as Event,
)
from medark.engine.copy_map import CopyMap
from medark.engine.group_tree import group_snapshots as group_snapshots_of
from medark.engine.pg_wal import WAL_PREFIX
from medark.errors import MedarkError
from medark.policy.retention import RetentionPolicy, apply_policy, group_snapshots
from medark.repo.repository import Repository
from medark.service.copy_group import PointParts, wal_records, with_group_parts
from medark.service.residency import repository_residency
from medark.service.session import locked
from medark.snapshot.model import Snapshot
from medark.snapshot.store import SNAPSHOTS_PREFIX, all_snapshots, filter_snapshots
from medark.util import clock

STATUS_FILE = "copy-status.json"
RELIST_SECONDS = 600.0
"""A follower lists the destination's WAL/binlog records again after this long (between
listings it knows them from what it copied): a large archive on S3 is many LIST calls."""


@dataclass
class Selection:
    """Which source snapshots to copy: ids (None = all), restic's filters; with `keep`,
    only those the destination's retention would keep among its own snapshots that
    `peers` selects (so a snapshot its forget removed is not sent again)."""
    pick: Callable[[Repository], list[Snapshot]]
    archives: bool = True
    keep: RetentionPolicy | None = None
    peers: Callable[[Repository], list[Snapshot]] | None = None

    def choose(self, src: Repository, dst: Repository) -> list[Snapshot]:
        return self.choose_parts(src, dst)[0]

    def choose_parts(self, src: Repository, dst: Repository
                     ) -> tuple[list[Snapshot], list[PointParts]]:
        """The snapshots to send, with what each group point among them restores from
        (its base backup and files snapshot, whatever the filters and --keep-* say), and
        those points' parts."""
        candidates = self.pick(src)
        if self.keep is not None and not self.keep.empty():
            there = (self.peers or self.pick)(dst)
            candidates = retained(candidates, there, self.keep, clock.now())
        if not group_snapshots_of(candidates):
            return candidates, []
        return with_group_parts(all_snapshots(src), candidates)


def retained(candidates: list[Snapshot], there: list[Snapshot], policy: RetentionPolicy,
             now: datetime) -> list[Snapshot]:
    """The candidates the destination has, and those missing there that `policy` keeps
    when judged per host and paths together with the destination's snapshots (as its
    forget will judge them); oldest first, as given."""
    present = {origin(s) for s in there}
    missing = [s for s in candidates if origin(s) not in present]
    kept: set[str] = set()
    for _key, group in group_snapshots([*there, *missing], frozenset({"host", "paths"})):
        kept.update(s.id for s in apply_policy(group, policy, now).kept_snapshots)
    return [s for s in candidates if origin(s) in present or s.id in kept]


@dataclass
class Endpoint:
    repo: Repository
    location: str


@dataclass
class PassResult:
    stats: CopyStats
    source_newest: datetime | None = None
    group: list[PointParts] = field(default_factory=list)
    """The group points sent and what they brought along."""


class Replicator:
    def __init__(self, src: Endpoint, dst: Endpoint, cache_dir: Path | None,
                 selection: Selection, workers: int = 2,
                 warn: Callable[[str], None] = lambda _line: None) -> None:
        self.src = src
        self.dst = dst
        self.cache_dir = cache_dir
        self.selection = selection
        self.workers = workers
        self.warn = warn
        path = None
        if cache_dir is not None:
            path = cache_dir / dst.repo.config.id / f"copy-from-{src.repo.config.id}.sqlite"
        self.map = CopyMap(path)
        self._dst_records: dict[str, set[str]] = {}
        self._records_listed_at = 0.0

    def close(self) -> None:
        self.map.close()

    def run_pass(self, on_event: Event | None = None,
                 on_bytes: Callable[[int], None] | None = None) -> PassResult:
        if clock.monotonic() - self._records_listed_at >= RELIST_SECONDS:
            self._dst_records = {}
            self._records_listed_at = clock.monotonic()
        with self._locks():
            self.src.repo.sync_index()
            self.dst.repo.sync_index()
            copier = Copier(self.src.repo, self.dst.repo, self.map, self.workers,
                            on_event, on_bytes, self._dst_records)
            try:
                if self.selection.archives:
                    copier.copy_archives()
                snapshots, parts = self.selection.choose_parts(self.src.repo, self.dst.repo)
                needed = wal_records(self.src.repo, parts)
                if not self.selection.archives:  # (else every record went above)
                    copier.copy_records(needed)
                copier.copy_snapshots(snapshots)
                stats = copier.finish()
            except BaseException:
                self._dst_records = {}  # list again: the pass may have stopped anywhere
                raise
            finally:
                copier.close()
        newest = max((s.time for s in snapshots), default=None)
        if self.selection.archives:
            newest = _later(newest, newest_record_time(self.src.repo, copier.src_records))
        result = PassResult(stats, newest, parts)
        if self.cache_dir is not None:
            save_status(self.cache_dir, self.src.location, self.dst.location, result)
        return result

    @contextmanager
    def _locks(self) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(locked(self.src.repo, False, "copy (source)", self.warn))
            stack.enter_context(locked(self.dst.repo, False, "copy", self.warn))
            yield

    def source_fingerprint(self) -> tuple[int, int]:
        """Changes when the source gains a snapshot or an archive record (cheap: names)."""
        names = [*self.src.repo.list_names(SNAPSHOTS_PREFIX)]
        if self.selection.archives:
            for prefix in ARCHIVE_PREFIXES:
                names.extend(self.src.repo.list_names(prefix))
        return len(names), hash(frozenset(names))

    def follow(self, stop: threading.Event, interval: float,
               on_pass: Callable[[PassResult], None], on_event: Event | None = None,
               on_error: Callable[[Exception], None] | None = None) -> None:
        """Copy, then again whenever the source changes, until `stop` is set. A failed
        pass is reported and retried at the next change or after a minute."""
        seen: tuple[int, int] | None = None
        retry_at = 0.0
        while not stop.is_set():
            current = self.source_fingerprint()
            due = current != seen or (retry_at and clock.monotonic() >= retry_at)
            if due:
                try:
                    on_pass(self.run_pass(on_event))
                    seen, retry_at = current, 0.0
                except (MedarkError, OSError) as exc:
                    if on_error is None:
                        raise
                    on_error(exc)
                    seen, retry_at = current, clock.monotonic() + 60
            stop.wait(interval)


def select_snapshots(refs: list[str], hosts: list[str] | None, tags: list[str] | None,
                     paths: list[str] | None) -> Callable[[Repository], list[Snapshot]]:
    """By id prefix (or all), then restic's filters; oldest first."""
    def pick(repo: Repository) -> list[Snapshot]:
        snaps = filter_snapshots(all_snapshots(repo), hosts=hosts, tags=tags, paths=paths)
        if refs:
            wanted = [r.lower() for r in refs]
            snaps = [s for s in snaps if any(s.id.startswith(w) for w in wanted)]
        return snaps
    return pick


# ---- status (the offsite RPO) ---------------------------------------------------------


@dataclass
class DestinationStatus:
    source: str
    destination: str
    last_pass: datetime | None
    newest_point: datetime | None
    """Newest snapshot or archived WAL/binlog time the destination holds."""
    source_newest: datetime | None = None
    pending: dict[str, int] = field(default_factory=dict)
    destination_location: str | None = None
    """The destination's recorded location (ISO 3166 code); only read live."""
    destination_residency: str | None = None
    """Its residency verdict (policy/residency.py); None when not read live."""

    def public(self, now: datetime) -> dict[str, Any]:
        def fmt(t: datetime | None) -> str | None:
            return clock.format_time(t) if t else None
        age = (now - self.newest_point).total_seconds() if self.newest_point else None
        return {"source": self.source, "destination": self.destination,
                "last_pass": fmt(self.last_pass), "newest_point": fmt(self.newest_point),
                "age_seconds": None if age is None else round(age, 3),
                "source_newest": fmt(self.source_newest), "pending": self.pending,
                "destination_location": self.destination_location,
                "destination_residency": self.destination_residency}


def save_status(cache_dir: Path, source: str, destination: str, result: PassResult) -> None:
    """Remember the pass in the cache directory (temp file, fsync, rename)."""
    path = cache_dir / STATUS_FILE
    doc = _load_status_doc(path)
    newest = result.stats.newest_point
    doc[f"{source}\n{destination}"] = {
        "source": source, "destination": destination,
        "last_pass": clock.format_time(clock.now()),
        "newest_point": clock.format_time(newest) if newest else None,
        "source_newest": (clock.format_time(result.source_newest)
                          if result.source_newest else None),
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".copy-status-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def recorded_status(cache_dir: Path) -> list[DestinationStatus]:
    out = []
    for entry in _load_status_doc(cache_dir / STATUS_FILE).values():
        out.append(DestinationStatus(
            entry["source"], entry["destination"], _time(entry.get("last_pass")),
            _time(entry.get("newest_point")), _time(entry.get("source_newest"))))
    return sorted(out, key=lambda s: (s.source, s.destination))


def live_status(src: Endpoint | None, dst: Endpoint,
                selection: Selection | None = None) -> DestinationStatus:
    """Read the destination itself (and the source, when open): newest point held and
    what a copy would send. With `selection` (the copy's filters and the destination's
    retention), pending counts only what that copy sends: a point the destination's
    retention drops on purpose, or another plan's, is not behind."""
    dst_snaps = all_snapshots(dst.repo)
    newest = max((s.time for s in dst_snaps), default=None)
    newest = _later(newest, newest_record_time(dst.repo))
    status = DestinationStatus("" if src is None else src.location, dst.location,
                               None, newest)
    residency = repository_residency(dst.repo)
    status.destination_residency = residency.verdict
    status.destination_location = residency.location.code if residency.location else None
    if src is not None:
        copied = {s.original for s in dst_snaps if s.original}
        archives = selection is None or selection.archives
        wanted, parts = ((all_snapshots(src.repo), []) if selection is None
                         else selection.choose_parts(src.repo, dst.repo))
        status.source_newest = _later(max((s.time for s in wanted), default=None),
                                      newest_record_time(src.repo) if archives else None)
        status.pending["snapshots"] = sum(1 for s in wanted if origin(s) not in copied)
        status.pending["records"] = 0
        if archives:
            have = {n for p in ARCHIVE_PREFIXES for n in dst.repo.list_names(p)}
            status.pending["records"] = sum(1 for p in ARCHIVE_PREFIXES
                                            for n in src.repo.list_names(p) if n not in have)
        elif parts:  # only the WAL the group points restore from
            have = set(dst.repo.list_names(WAL_PREFIX))
            status.pending["records"] = sum(1 for n in wal_records(src.repo, parts)
                                            if n not in have)
    return status


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _time(text: str | None) -> datetime | None:
    return clock.parse_time(text) if text else None


def _load_status_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
