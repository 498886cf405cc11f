"""The MariaDB/MySQL binary log archive inside a repository, and `mysql binlog-stream`.

Archive: like the PostgreSQL WAL archive (pg_wal), each binlog file is stored as fixed-size
data blobs plus one sealed record named by meaning, ``binlog/<server>/<file>`` (server: the
UUID on MySQL, the server_id on MariaDB), because a restore asks for files by name and
number. A complete file's record is written once; pushing it again succeeds only with
identical content, so a different server reusing the id (or a RESET MASTER) is refused
rather than overwriting history. The file being written is stored as versions,
``<file>.partial-<stamp>``, each holding whole events only; the newest wins until the
complete record lands, and then the versions are removed (their blobs go at the next prune).

Stream: mariadb-binlog (sources.mysql.receiver) writes the server's binlogs into a spool.
Every `interval` the spool is swept: a file the server has rotated away from (it ends in a
Rotate event and a newer file exists) is archived complete and removed; the newest is
archived as a new version when it grew. Only the bytes past the last whole 256 KiB block
are read again, so a sweep costs what arrived, not the file's size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from medark.engine.binlog_names import BINLOG_PREFIX, PARTIAL
from medark.engine.pg_wal import WalRepo, record_content, write_file_atomically
from medark.errors import (
    AlreadyExists,
    IntegrityError,
    ObjectNotFound,
    RepositoryCorrupt,
    UsageError,
    WalConflict,
)
from medark.repo.pack import BlobType
from medark.sources.mysql.binlog import (
    EventScan,
    check_archive_id,
    parse_file_name,
    scan_events,
)
from medark.sources.mysql.receiver import BinlogReceiver
from medark.util import clock, jsondoc

BLOCK = 256 * 1024
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
EVENT_TIME_MAX = (1 << 32) - 1
"""An event header's timestamp is 32 bits."""


@dataclass
class BinlogRecord:
    file: str
    archive_id: str
    size: int
    sha256: str
    blobs: list[bytes]
    archived: str
    version: str = ""
    """Empty for a complete file; a sortable stamp for a version of the file being written."""
    last_event_time: int | None = None

    def to_json(self) -> bytes:
        return json.dumps({"v": 1, "file": self.file, "archive_id": self.archive_id,
                           "size": self.size, "sha256": self.sha256,
                           "blobs": [b.hex() for b in self.blobs], "archived": self.archived,
                           "version": self.version, "last_event_time": self.last_event_time},
                          sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> BinlogRecord:
        """RepositoryCorrupt unless every field has the writer's type (pg_wal's rule)."""
        try:
            d = jsondoc.load_object(raw)
            event_time = d.get("last_event_time")
            record = cls(jsondoc.text(d, "file", None), jsondoc.text(d, "archive_id", None),
                         jsondoc.integer(d, "size"), jsondoc.text(d, "sha256", None),
                         jsondoc.hex_ids(d, "blobs"), jsondoc.text(d, "archived", None),
                         jsondoc.text(d, "version"),
                         None if event_time is None
                         else jsondoc.integer(d, "last_event_time", high=EVENT_TIME_MAX))
            clock.parse_time(record.archived)
            return record
        except KeyError as exc:
            raise RepositoryCorrupt(f"{where}: malformed binlog record: field {exc} is "
                                    "missing") from None
        except jsondoc.MALFORMED as exc:
            raise RepositoryCorrupt(f"{where}: malformed binlog record: {exc}") from None

    @property
    def complete(self) -> bool:
        return not self.version


def record_name(archive_id: str, file: str, version: str = "") -> str:
    if parse_file_name(file) is None:
        raise UsageError(f"{file!r} is not a binary log file name")
    suffix = f"{PARTIAL}{version}" if version else ""
    return f"{BINLOG_PREFIX}{check_archive_id(archive_id)}/{file}{suffix}"


@dataclass
class Inventory:
    complete: set[str] = field(default_factory=set)
    versions: dict[str, list[str]] = field(default_factory=dict)
    """file → its version stamps, oldest first."""

    def files(self) -> list[str]:
        """Every file name, in binlog order."""
        names = self.complete | set(self.versions)
        return sorted(names, key=lambda n: parse_file_name(n) or ("", 0))


class BinlogArchive:
    """One server's binary logs in one repository."""

    def __init__(self, repo: WalRepo, archive_id: str) -> None:
        self.repo = repo
        self.archive_id = check_archive_id(archive_id)

    def store_blocks(self, data: memoryview) -> tuple[list[bytes], int]:
        ids, added = [], 0
        for offset in range(0, len(data), BLOCK):
            result = self.repo.save_blob(BlobType.DATA, data[offset:offset + BLOCK])
            ids.append(result.id)
            added += result.stored
        return ids, added

    def push(self, record: BinlogRecord) -> bool:
        """Write the record (after its blobs are flushed); False when an identical
        complete file was already archived."""
        self.repo.flush()  # packs and index before the record that refers to them
        name = record_name(self.archive_id, record.file, record.version)
        if record.complete and self.repo.object_exists(name):
            return self._already(name, record)
        try:
            self.repo.save_object(name, self.repo.seal(record.to_json()), record.blobs)
        except AlreadyExists:
            if not record.complete:
                raise
            return self._already(name, record)
        if record.complete:
            self._drop_versions(record.file)
        return True

    def _already(self, name: str, record: BinlogRecord) -> bool:
        if self.read_record(name).sha256 != record.sha256:
            raise WalConflict(
                f"binlog {record.file} of server {self.archive_id} is already archived with "
                "different content (RESET MASTER, or another server with the same "
                "server_id?); refusing to overwrite it")
        self._drop_versions(record.file)
        return False

    def _drop_versions(self, file: str) -> None:
        prefix = record_name(self.archive_id, file, "x")[:-1]
        for name in list(self.repo.list_names(prefix)):
            with contextlib.suppress(ObjectNotFound):
                self.repo.remove_object(name)

    def read_record(self, name: str) -> BinlogRecord:
        raw = self.repo.load_object(name)
        try:
            record = BinlogRecord.from_json(self.repo.unseal(raw), name)
        except IntegrityError as exc:
            raise IntegrityError(f"{name}: {exc}") from None
        try:
            expected = record_name(record.archive_id, record.file, record.version)
        except UsageError:
            raise IntegrityError(f"{name}: the record names no binlog file") from None
        if expected != name or record.archive_id != self.archive_id:
            raise IntegrityError(f"{name}: the record names another file")
        return record

    def inventory(self) -> Inventory:
        inv = Inventory()
        for name in self.repo.list_names(f"{BINLOG_PREFIX}{self.archive_id}/"):
            base = name.rsplit("/", 1)[-1]
            file, sep, version = base.partition(PARTIAL)
            if parse_file_name(file) is None:
                continue
            if sep:
                inv.versions.setdefault(file, []).append(version)
            else:
                inv.complete.add(file)
        for versions in inv.versions.values():
            versions.sort()
        return inv

    def newest(self, file: str, inv: Inventory | None = None) -> BinlogRecord | None:
        """The complete file, else its newest version, else None."""
        inv = inv or self.inventory()
        if file in inv.complete:
            return self.read_record(record_name(self.archive_id, file))
        versions = inv.versions.get(file)
        if versions:
            with contextlib.suppress(ObjectNotFound):  # completed meanwhile
                return self.read_record(record_name(self.archive_id, file, versions[-1]))
            return self.newest(file, None)
        return None

    def content(self, record: BinlogRecord) -> bytes:
        return record_content(self.repo, record.blobs, record.size, record.sha256,
                              f"binlog {record.file}")

    def fetch_to(self, record: BinlogRecord, destination: str) -> None:
        write_file_atomically(destination, self.content(record))


def binlog_record_blobs(repo: WalRepo) -> Iterator[tuple[str, list[bytes]]]:
    """(record name, blob ids) of every binlog record of every server, for prune."""
    for name in repo.list_names(BINLOG_PREFIX):
        try:
            raw = repo.unseal(repo.load_object(name))
        except ObjectNotFound:
            continue  # a version removed once its file was archived complete
        except IntegrityError as exc:
            raise RepositoryCorrupt(f"binlog record {name}: {exc}") from None
        yield name, BinlogRecord.from_json(raw, name).blobs


# ---- the stream ------------------------------------------------------------------------


@dataclass
class StreamStats:
    files: int = 0
    versions: int = 0
    bytes_added: int = 0
    restarts: int = 0
    last_push: str | None = None
    newest_file: str | None = None
    newest_position: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _FileState:
    """What is already stored of one spool file: its whole blocks and the events seen."""

    blobs: list[bytes] = field(default_factory=list)
    hasher: Any = field(default_factory=hashlib.sha256)
    scan: EventScan = field(default_factory=lambda: EventScan(0))
    archived: int = 0
    """Valid length of the newest archived version (never archive a shorter one)."""
    mtime: int = -1


class BinlogStreamer:
    def __init__(self, archive: BinlogArchive, receiver: BinlogReceiver, first_file: str,
                 interval: float, stop_after: float | None,
                 report: Callable[[str], None]) -> None:
        self.archive = archive
        self.receiver = receiver
        self.first_file = first_file
        self.interval = interval
        self.stop_after = stop_after
        self.report = report
        self.stats = StreamStats()
        self.stop = threading.Event()
        self._files: dict[str, _FileState] = {}
        self._inventory = archive.inventory()

    @property
    def spool(self) -> str:
        return self.receiver.spool

    def run(self) -> StreamStats:
        os.makedirs(self.spool, mode=0o700, exist_ok=True)
        deadline = None if self.stop_after is None else clock.monotonic() + self.stop_after
        failures, next_start = 0, 0.0
        try:
            while not self.stop.is_set():
                now = clock.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if not self.receiver.running and now >= next_start:
                    self.receiver.start(self._resume_from())
                elif (status := self.receiver.exited()) is not None:
                    failures += 1
                    self.stats.restarts += 1
                    delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1]
                    reason = self.receiver.failure()
                    self.stats.errors.append(reason)
                    self.report(f"mariadb-binlog exited ({status}): {reason}; restarting in "
                                f"{delay:g} s")
                    next_start = now + delay
                if self.sweep():
                    failures = 0
                self.stop.wait(self.interval)
        finally:
            self.receiver.stop()
            self.sweep()  # whatever arrived before the receiver stopped
        return self.stats

    def _spool_files(self) -> list[str]:
        try:
            names = os.listdir(self.spool)
        except FileNotFoundError:
            return []
        found = [n for n in names if parse_file_name(n) is not None]
        return sorted(found, key=lambda n: parse_file_name(n) or ("", 0))

    def _resume_from(self) -> str:
        """The newest file in the spool (fetched again from its start), else where the
        stream was told to begin."""
        files = self._spool_files()
        return files[-1] if files else self.first_file

    def sweep(self) -> bool:
        """Archive what the spool holds now; True if anything was stored."""
        files = self._spool_files()
        stored = False
        for index, name in enumerate(files):
            stored |= self._sweep_file(name, newest=index == len(files) - 1)
        return stored

    def _state(self, name: str) -> _FileState:
        state = self._files.get(name)
        if state is None:
            state = self._files[name] = _FileState()
            versions = self._inventory.versions.get(name)
            if versions:  # a restarted stream: never archive less than is archived
                with contextlib.suppress(ObjectNotFound):
                    state.archived = self.archive.read_record(
                        record_name(self.archive.archive_id, name, versions[-1])).size
        return state

    def _sweep_file(self, name: str, newest: bool) -> bool:
        path = os.path.join(self.spool, name)
        state = self._state(name)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return False
        if info.st_mtime_ns == state.mtime and newest:
            return False  # untouched since the last sweep: no read
        full = len(state.blobs) * BLOCK
        if info.st_size < state.scan.end:
            return False  # being rewritten by a restarted mariadb-binlog: wait
        with open(path, "rb") as f:
            f.seek(full)
            tail = f.read()
        state.mtime = info.st_mtime_ns
        try:
            state.scan = scan_events(tail, state.scan.end, full, state.scan)
        except ValueError as exc:
            raise RepositoryCorrupt(f"spool file {path}: {exc}") from None
        complete = not newest and state.scan.closed and state.scan.end == info.st_size
        if not complete and state.scan.end <= state.archived:
            return False
        record, added = self._record(name, state, memoryview(tail), complete)
        self.archive.push(record)
        self.stats.bytes_added += added
        self.stats.last_push = record.archived
        self.stats.newest_file, self.stats.newest_position = name, record.size
        if complete:
            self.stats.files += 1
            os.unlink(path)
            del self._files[name]
        else:
            self.stats.versions += 1
            state.archived = record.size
        return True

    def _record(self, name: str, state: _FileState, tail: memoryview, complete: bool
                ) -> tuple[BinlogRecord, int]:
        full = len(state.blobs) * BLOCK
        new = tail[:state.scan.end - full]
        whole = len(new) // BLOCK * BLOCK
        ids, added = self.archive.store_blocks(new[:whole])
        state.blobs += ids
        state.hasher.update(new[:whole])
        hasher = state.hasher.copy()
        rest, more = self.archive.store_blocks(new[whole:])
        hasher.update(new[whole:])
        version = "" if complete else f"{clock.now().timestamp() * 1e6:017.0f}"
        record = BinlogRecord(name, self.archive.archive_id, state.scan.end, hasher.hexdigest(),
                              state.blobs + rest, clock.format_time(clock.now()), version,
                              state.scan.last_time)
        return record, added + more
