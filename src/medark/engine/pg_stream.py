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

import hashlib
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from medark.engine.pg_wal import WalArchive
from medark.errors import CommandFailed
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import PARTIAL_RE, SEGMENT_RE, wal_file_kind
from medark.util import clock

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
                 report: Callable[[str], None]) -> None:
        self.archive = archive
        self.options = options
        self.report = report
        self.stats = StreamStats()
        self.stop = threading.Event()
        self._partial_digest: dict[str, str] = {}
        self._partial_mtime: dict[str, int] = {}
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
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
                if self.sweep():
                    failures = 0
                self.stop.wait(self.options.interval)
        finally:
            self._stop_receiver()
            self.sweep()  # whatever arrived before the receiver stopped
        return self.stats

    def sweep(self) -> bool:
        """Archive what the spool holds now; True if anything was stored."""
        try:
            names = os.listdir(self.options.spool)
        except FileNotFoundError:
            return False
        stored = False
        complete = sorted(n for n in names if SEGMENT_RE.match(n))
        for name in sorted(n for n in names if wal_file_kind(n) == "history"):
            stored |= self._push_file(name, keep=False)
            self.stats.histories += 1
        for index, name in enumerate(complete):
            stored |= self._push_file(name, keep=index == len(complete) - 1)
        for name in sorted(n for n in names if PARTIAL_RE.match(n)):
            stored |= self._push_partial(name)
        return stored

    def _read(self, name: str) -> bytes | None:
        try:
            with open(os.path.join(self.options.spool, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None  # renamed by pg_receivewal meanwhile: seen on the next sweep

    def _push_file(self, name: str, keep: bool) -> bool:
        data = self._read(name)
        if data is None:
            return False
        result = self.archive.push(name, data, "stream")
        if result.stored:
            self.stats.segments += SEGMENT_RE.match(name) is not None
            self.stats.bytes_added += result.bytes_added
            self.stats.last_push = clock.format_time(clock.now())
        self._partial_digest.pop(name, None)
        if not keep:
            os.unlink(os.path.join(self.options.spool, name))
        return result.stored

    def _push_partial(self, name: str) -> bool:
        match = PARTIAL_RE.match(name)
        assert match is not None
        segment = match.group(1)
        try:
            mtime = os.stat(os.path.join(self.options.spool, name)).st_mtime_ns
        except FileNotFoundError:
            return False
        if self._partial_mtime.get(segment) == mtime:
            return False  # untouched since the last version: no read, no hash
        self._partial_mtime[segment] = mtime
        data = self._read(name)
        if data is None:
            return False
        valid = len(data.rstrip(b"\0"))
        digest = hashlib.sha256(data).hexdigest()
        if self._partial_digest.get(segment) == digest:
            return False
        result = self.archive.push_partial(segment, data, {"valid_bytes": valid})
        self._partial_digest[segment] = digest
        self.stats.partial_versions += 1
        self.stats.bytes_added += result.bytes_added
        self.stats.last_push = clock.format_time(clock.now())
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
