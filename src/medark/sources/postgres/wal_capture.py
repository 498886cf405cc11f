"""The WAL a base backup needs, when nothing archives it into the repository.

A base backup is only consistent with the WAL written from its start to its stop
position. Normally that WAL reaches the repository through archive_command
(`medark pg wal-push`) or `medark pg wal-stream`. When neither is set up, `pg backup`
streams it itself, as `pg_basebackup -X stream` does (which cannot write the tar to
stdout): a temporary replication slot, held by one SQL session for the length of the
backup, keeps the server from recycling that WAL (dropped by the server when the session
ends, even if Medark is killed); pg_receivewal, started before the backup, writes it to a
private temporary directory, and the complete segments are handed back by name.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import psycopg

from medark.errors import DatabasePermission, WalGap
from medark.sources.postgres.server import Dsn, ServerIdentity
from medark.sources.postgres.wal import format_lsn, parse_lsn, segment_name, segment_of
from medark.util import clock
from medark.util.processes import stop_process

START_TIMEOUT = 30.0
"""Seconds pg_receivewal may take to start streaming (connect, IDENTIFY_SYSTEM)."""
_START_RE = re.compile(r"START_REPLICATION\s+(?:SLOT\s+\S+\s+)?(?:PHYSICAL\s+)?"
                       r"([0-9A-Fa-f]+/[0-9A-Fa-f]+)")


@dataclass(frozen=True)
class ArchiveSetup:
    """How (and whether) the server's WAL reaches a Medark repository, as the server
    tells it: read from pg_settings and the replication views, not guessed by waiting."""

    archive_mode: str
    archive_command: str | None
    """None: this role may not read it."""
    streaming: bool
    """A pg_receivewal (as `pg wal-stream` runs) is attached to a physical slot."""

    def reaches_medark(self) -> bool:
        if self.streaming:
            return True
        if self.archive_mode not in ("on", "always"):
            return False
        if self.archive_command is None:
            return True  # cannot tell: keep the archive check, which says what is missing
        return "wal-push" in self.archive_command

    def describe(self) -> str:
        if self.archive_mode not in ("on", "always"):
            return f"archive_mode is {self.archive_mode}"
        if not (self.archive_command or "").strip():
            return "archive_command is empty"
        return "archive_command does not run `medark pg wal-push`"


def archive_setup(dsn: Dsn) -> ArchiveSetup:
    with dsn.connect() as conn:
        row = conn.execute("SELECT current_setting('archive_mode')").fetchone()
        mode = str(row[0]) if row else "off"
        command: str | None
        try:
            found = conn.execute("SELECT current_setting('archive_command')").fetchone()
            command = str(found[0]) if found else ""
        except psycopg.Error:
            command = None  # superuser-only on some versions
        attached = conn.execute(
            "SELECT count(*) FROM pg_replication_slots s "
            "JOIN pg_stat_activity a ON a.pid = s.active_pid "
            "WHERE s.slot_type = 'physical' AND s.active "
            "AND a.application_name = 'pg_receivewal'").fetchone()
    return ArchiveSetup(mode, command, bool(attached and int(str(attached[0]))))


class WalCapture:
    """Streams the server's WAL into a temporary directory for the length of a backup.

    Use as a context manager around the backup; `segments()` then waits for the complete
    segments of a range and returns their paths. Everything is cleaned up on exit: the
    receiver stopped, the slot's session closed, the directory removed."""

    def __init__(self, dsn: Dsn, identity: ServerIdentity, receivewal: str,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.dsn = dsn
        self.identity = identity
        self.receivewal = receivewal
        self.start_timeout = start_timeout
        self.name = f"medark_backup_{os.getpid()}_{secrets.token_hex(4)}"
        self.reserved = False
        """Whether the temporary slot holds the WAL (False: max_replication_slots full;
        the range is still checked complete, so a recycled segment fails the backup)."""
        self.start_lsn = 0
        self.directory = ""
        self._hold: psycopg.Connection[tuple[object, ...]] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = ""

    def __enter__(self) -> WalCapture:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="medark-pg-wal-")
        self._log = os.path.join(self.directory, ".pg_receivewal.log")
        self._hold = self.dsn.connect()
        try:
            self._hold.execute("SELECT pg_create_physical_replication_slot(%s, true, true)",
                               (self.name,))
            self.reserved = True
        except psycopg.Error:
            self.reserved = False
        receiver = Dsn({**self.dsn.params, "application_name": self.name})
        argv = [self.receivewal, "-D", self.directory, "--no-loop",
                "-d", receiver.without_password()]
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=log,
                                          env=self.dsn.environment())
        self.start_lsn = self._wait_streaming()

    def _wait_streaming(self) -> int:
        """The position pg_receivewal asked to stream from, once it has asked: the backup
        must start after it, or its first segment would never be received."""
        assert self._hold is not None
        deadline = clock.monotonic() + self.start_timeout
        while True:
            row = self._hold.execute(
                "SELECT query FROM pg_stat_activity WHERE application_name = %s "
                "AND backend_type = 'walsender'", (self.name,)).fetchone()
            match = _START_RE.search(str(row[0])) if row else None
            if match:
                return parse_lsn(match.group(1))
            self._check_alive()
            if clock.monotonic() >= deadline:
                raise WalGap(f"pg_receivewal did not start streaming the backup's WAL within "
                             f"{self.start_timeout:g} s ({self._last_error()}); no snapshot "
                             "was written")
            clock.sleep(0.1)

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            message = self._last_error()
            if any(h in message for h in ("replication", "permission denied",
                                          "pg_hba.conf")) and "slots" not in message:
                raise DatabasePermission(f"pg_receivewal: {message}")
            raise WalGap(f"streaming the backup's WAL failed: pg_receivewal: {message} "
                         "(max_wal_senders too low?); no snapshot was written")

    def _last_error(self) -> str:
        try:
            with open(self._log, encoding="utf-8", errors="replace") as f:
                lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        except OSError:
            lines = []
        text = lines[-1] if lines else "no output"
        return re.sub(r"password=\S+", "password=***", text)

    def segments(self, start_lsn: int, stop_lsn: int, timeline: int, timeout: float,
                 waiting: Callable[[list[str]], None] | None = None) -> list[str]:
        """Paths of the complete segments from `start_lsn` to `stop_lsn`, once received.
        The server closes the stop segment when the backup ends, so it arrives at once;
        `timeout` only bounds a stalled stream. `waiting` is told, once, the segments
        still missing when the wait begins (so the user knows what the pause is)."""
        size = self.identity.segment_size
        first, last = segment_of(start_lsn, size), segment_of(stop_lsn, size)
        if segment_of(self.start_lsn, size) > first:
            raise WalGap(f"the WAL stream began at {format_lsn(self.start_lsn)}, after the "
                         f"backup's start {format_lsn(start_lsn)}; no snapshot was written")
        names = [segment_name(timeline, n, size) for n in range(first, last + 1)]
        deadline = clock.monotonic() + timeout
        while True:
            missing = [n for n in names
                       if not os.path.isfile(os.path.join(self.directory, n))]
            if not missing:
                return [os.path.join(self.directory, n) for n in names]
            if waiting is not None:
                waiting(missing)
                waiting = None
            self._check_alive()
            if clock.monotonic() >= deadline:
                raise WalGap(f"the backup's WAL {missing[0]}..{missing[-1]} was not received "
                             f"within {timeout:g} s; no snapshot was written")
            clock.sleep(0.1)

    def close(self) -> None:
        stop_process(self._proc)
        self._proc = None
        if self._hold is not None:
            self._hold.close()  # the server drops the temporary slot with the session
            self._hold = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
