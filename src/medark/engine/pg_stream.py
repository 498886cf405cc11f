"""`pg wal-stream`: WAL over a replication slot into the repository, for an RPO of seconds.

pg_receivewal (supervised, restarted with backoff) receives WAL into a local spool and
flushes it as it arrives (--synchronous, so the slot advances only past what is on disk).
Every `interval` the spool is scanned: completed segments and timeline history files are
archived like `wal-push` does and then removed from the spool (the newest completed one is
kept, so a restarted pg_receivewal knows where to resume); the segment still being written
(`.partial`) is archived as a new version whenever it changed. Only its changed blocks are
stored, and `wal-fetch` serves the newest version until the complete segment lands.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from medark.engine.pg_wal import WalArchive
from medark.errors import CommandFailed, RepositoryLocked
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import (
    DEFAULT_SEGMENT_SIZE,
    PARTIAL_RE,
    SEGMENT_RE,
    Segment,
    format_lsn,
    wal_file_kind,
)
from medark.util import clock
from medark.util.processes import stop_process

RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class StreamOptions:
    dsn: Dsn
    slot: str
    spool: str
    receivewal: str
    """Path of pg_receivewal."""
    interval: float = 0.2
    stop_after: float | None = None
    """Seconds to run (tests and benchmarks); None: until stopped."""
    segment_size: int = DEFAULT_SEGMENT_SIZE
    on_archived: Callable[[dict[str, object]], None] | None = None
    """Told of every file archived, with the WAL position now durable in the repository
    (the RPO benchmark measures commit → that moment)."""


@dataclass
class StreamStats:
    segments: int = 0
    partial_versions: int = 0
    histories: int = 0
    bytes_added: int = 0
    restarts: int = 0
    last_push: str | None = None
    errors: list[str] = field(default_factory=list)


class WalStreamer:
    def __init__(self, archive: WalArchive, options: StreamOptions,
                 report: Callable[[str], None],
                 lock: Callable[[], AbstractContextManager[object]]) -> None:
        """`lock`: a shared repository lock, taken for each sweep rather than for the
        whole stream, so that forget and prune can run between sweeps (pg_receivewal
        keeps receiving into the spool while they hold the repository)."""
        self.archive = archive
        self.lock = lock
        self._locked_out = False
        self.options = options
        self.report = report
        self.stats = StreamStats()
        self.stop = threading.Event()
        self._partial_digest: dict[str, str] = {}
        self._partial_mtime: dict[str, int] = {}
        self._pushed: set[str] = set()
        """Complete files archived and still in the spool (see _trim)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_path = os.path.join(options.spool, ".pg_receivewal.log")

    # ---- the receiver --------------------------------------------------------------

    def _start_receiver(self) -> None:
        argv = [self.options.receivewal, "-D", self.options.spool, "-S", self.options.slot,
                "--synchronous", "--no-loop", "-d", self.options.dsn.without_password()]
        with open(self._stderr_path, "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=log,
                                          env=self.options.dsn.environment())

    def _receiver_failure(self) -> str:
        try:
            with open(self._stderr_path, encoding="utf-8", errors="replace") as f:
                lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        except OSError:
            return "no output"
        return lines[-1] if lines else "no output"

    def _stop_receiver(self) -> None:
        stop_process(self._proc)
        self._proc = None

    # ---- the loop ------------------------------------------------------------------

    def run(self) -> StreamStats:
        os.makedirs(self.options.spool, mode=0o700, exist_ok=True)
        deadline = (clock.monotonic() + self.options.stop_after
                    if self.options.stop_after is not None else None)
        failures = 0
        next_start = 0.0
        try:
            while not self.stop.is_set():
                now = clock.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if self._proc is None and now >= next_start:
                    self._start_receiver()
                elif self._proc is not None and self._proc.poll() is not None:
                    status = self._proc.returncode
                    self._proc = None
                    failures += 1
                    self.stats.restarts += 1
                    delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1]
                    reason = self._receiver_failure()
                    self.stats.errors.append(reason)
                    self.report(f"pg_receivewal exited ({status}): {reason}; restarting in "
                                f"{delay:g} s")
                    next_start = now + delay
                if self.locked_sweep():
                    failures = 0
                self.stop.wait(self.options.interval)
        finally:
            self._stop_receiver()
            self.locked_sweep()  # whatever arrived before the receiver stopped
        return self.stats

    def locked_sweep(self) -> bool:
        """Archive what arrived; the lock (and an index refresh inside it) is taken only
        when there is something to archive."""
        work = self._work()
        if not work:
            return False
        try:
            with self.lock():
                stored = False
                for kind, name in work:
                    stored |= (self._push_partial(name) if kind == "partial"
                               else self._push_file(name))
        except RepositoryLocked as exc:
            if not self._locked_out:
                self.report(f"waiting for the repository ({exc}); WAL keeps arriving in "
                            f"{self.options.spool}")
            self._locked_out = True
            return False
        if self._locked_out:
            self.report("repository available again: archiving what arrived meanwhile")
            self._locked_out = False
        self._trim()
        return stored

    def _work(self) -> list[tuple[str, str]]:
        """(kind, name) of each spool file not archived in its current state."""
        try:
            names = os.listdir(self.options.spool)
        except FileNotFoundError:
            return []
        work = [("file", n) for n in sorted(names)
                if wal_file_kind(n) in ("history", "segment") and n not in self._pushed]
        for name in sorted(n for n in names if PARTIAL_RE.match(n)):
            try:
                mtime = os.stat(os.path.join(self.options.spool, name)).st_mtime_ns
            except FileNotFoundError:
                continue  # completed meanwhile: seen on the next sweep
            if self._partial_mtime.get(name) != mtime:
                work.append(("partial", name))
        return work

    def _trim(self) -> None:
        """Remove archived files from the spool, except the newest complete segment
        (a restarted pg_receivewal resumes after the newest file it finds)."""
        archived = sorted(self._pushed)
        segments = [n for n in archived if SEGMENT_RE.match(n)]
        keep = segments[-1] if segments else None
        for name in archived:
            if name != keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.options.spool, name))
                self._pushed.discard(name)

    def _archived(self, name: str, end: int) -> None:
        if self.options.on_archived is not None:
            self.options.on_archived({"message_type": "wal_archived", "file": name,
                                      "end_lsn": format_lsn(end),
                                      "time": clock.format_time(clock.now())})

    def _read(self, name: str) -> bytes | None:
        try:
            with open(os.path.join(self.options.spool, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None  # renamed by pg_receivewal meanwhile: seen on the next sweep

    def _push_file(self, name: str) -> bool:
        data = self._read(name)
        if data is None:
            return False
        result = self.archive.push(name, data, "stream")
        self._pushed.add(name)
        if result.stored:
            if SEGMENT_RE.match(name):
                self.stats.segments += 1
                segno = Segment.parse(name, self.options.segment_size).segno
                self._archived(name, (segno + 1) * self.options.segment_size)
            else:
                self.stats.histories += 1
            self.stats.bytes_added += result.bytes_added
            self.stats.last_push = clock.format_time(clock.now())
        return result.stored

    def _push_partial(self, name: str) -> bool:
        match = PARTIAL_RE.match(name)
        assert match is not None
        path = os.path.join(self.options.spool, name)
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return False
        data = self._read(name)
        if data is None:
            return False
        digest = hashlib.sha256(data).hexdigest()
        if self._partial_digest.get(name) != digest:
            valid = len(data.rstrip(b"\0"))
            result = self.archive.push_partial(match.group(1), data, {"valid_bytes": valid})
            self._partial_digest[name] = digest
            self.stats.partial_versions += 1
            segno = Segment.parse(match.group(1), self.options.segment_size).segno
            self._archived(name, segno * self.options.segment_size + valid)
            self.stats.bytes_added += result.bytes_added
            self.stats.last_push = clock.format_time(clock.now())
        self._partial_mtime[name] = mtime  # only once archived: a failure is retried
        return True


def create_slot(dsn: Dsn, slot: str) -> bool:
    """A physical slot that reserves WAL at once; False if it already existed."""
    with dsn.connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                              (slot,)).fetchone()
        if exists:
            return False
        try:
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        except Exception as exc:
            raise CommandFailed(f"cannot create replication slot {slot!r}: "
                                f"{str(exc).strip().splitlines()[0]}") from None
    return True
