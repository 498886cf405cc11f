"""Repository locks: sealed lock objects under locks/, refreshed while held.

Backups take shared locks and may run side by side (from many hosts); prune and
other destructive commands take an exclusive lock. A lock is stale when its owner
is a dead process on this host or it was not refreshed within STALE_AFTER.

A lock that cannot be read or verified (damaged, truncated, not sealed with this
repository's master key, which every key of the repository shares) fails closed: an
exclusive locker treats it as a live conflicting lock, since it may be a running
prune's or backup's; a shared locker warns and proceeds (stopping every backup for a
damaged lock file would trade a possible conflict for certain missed backups).
`medark unlock --remove-all` removes it, restic's way.

A command that finds the repository locked fails at once (exit 11) unless it was told
to wait (`--retry-lock`, restic's option; the daemon's backups wait): it then tries
again, backing off, until the other lock is gone or the wait is over.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from medark.errors import MedarkError, ObjectNotFound, RepositoryCorrupt, RepositoryLocked
from medark.storage.base import Backend
from medark.util import clock, jsondoc
from medark.util.pids import pid_alive

LOCKS_PREFIX = "locks/"
REMOVE_HINT = ("if no medark command is running against this repository on any host, "
               "`medark unlock --remove-all` removes it")
REFRESH_EVERY = timedelta(minutes=5)
RETRY_BACKOFF_MAX = 10.0  # seconds between tries while waiting for a lock
STALE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class LockInfo:
    name: str
    time: datetime
    hostname: str
    pid: int
    username: str
    exclusive: bool
    command: str

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (
            f"{kind} lock {self.name.removeprefix(LOCKS_PREFIX)[:8]} held by PID {self.pid} on "
            f"{self.hostname} ({self.command}) since {clock.format_time(self.time)}"
        )

    def stale(self, now: datetime) -> bool:
        if now - self.time > STALE_AFTER:
            return True
        if self.hostname == os.uname().nodename:
            return not pid_alive(self.pid)
        return False


@dataclass(frozen=True)
class UnreadableLock:
    """A lock object that is there but cannot be read or verified."""

    name: str
    problem: str

    def describe(self) -> str:
        return f"lock {self.name} cannot be read or verified ({self.problem})"


Sealer = Callable[[bytes], bytes]


PID_MAX = (1 << 31) - 1
"""The largest process id a lock may name (os.kill takes a C int)."""


def parse_lock(name: str, plaintext: bytes) -> LockInfo:
    """RepositoryCorrupt, naming the lock, unless every field has the type the writer
    gives it (a planted or damaged record must not raise anything else: survey_locks
    reports it as unreadable, and the exclusive lock fails closed)."""
    try:
        doc = jsondoc.load_object(plaintext)
        return LockInfo(
            name=name,
            time=jsondoc.timestamp(doc, "time"),
            hostname=jsondoc.text(doc, "hostname", None),
            pid=jsondoc.integer(doc, "pid", 1, PID_MAX),
            username=jsondoc.text(doc, "username"),
            exclusive=jsondoc.flag(doc, "exclusive"),
            command=jsondoc.text(doc, "command"),
        )
    except KeyError as exc:
        raise RepositoryCorrupt(f"{name}: field {exc} is missing") from None
    except jsondoc.MALFORMED as exc:
        raise RepositoryCorrupt(f"{name}: not a valid lock record ({exc})") from None


def survey_locks(backend: Backend, unseal: Sealer) -> tuple[list[LockInfo], list[UnreadableLock]]:
    """Every lock object: (readable locks, unreadable ones). A lock removed while we
    listed is neither."""
    locks: list[LockInfo] = []
    unreadable: list[UnreadableLock] = []
    for info in backend.list(LOCKS_PREFIX):
        try:
            locks.append(parse_lock(info.name, unseal(backend.load(info.name))))
        except ObjectNotFound:
            continue  # removed while we listed
        except MedarkError as exc:
            problem = str(exc).removeprefix(f"{info.name}: ") or type(exc).__name__
            unreadable.append(UnreadableLock(info.name, problem))
    return locks, unreadable


class LockManager:
    """Creates, checks, refreshes and removes lock objects."""

    def __init__(self, backend: Backend, seal: Sealer, unseal: Sealer, store: Sealer) -> None:
        self.backend = backend
        self._seal = seal
        self._unseal = unseal
        self._store = store  # saves sealed bytes, returns the object name (as bytes)
        self.retry_for = 0.0
        """Seconds to keep trying when another command holds a conflicting lock."""

    def _write(self, exclusive: bool, command: str) -> str:
        doc = {
            "time": clock.format_time(clock.now()),
            "hostname": os.uname().nodename,
            "pid": os.getpid(),
            "username": os.environ.get("USER", ""),
            "exclusive": exclusive,
            "command": command,
        }
        return self._store(self._seal(json.dumps(doc).encode())).decode()

    def read(self, name: str) -> LockInfo:
        return parse_lock(name, self._unseal(self.backend.load(name)))

    def survey(self) -> tuple[list[LockInfo], list[UnreadableLock]]:
        return survey_locks(self.backend, self._unseal)

    def all(self) -> list[LockInfo]:
        """The locks that can be read (survey() also names the unreadable ones)."""
        return self.survey()[0]

    def acquire(self, exclusive: bool, command: str, warn: Callable[[str], None]) -> HeldLock:
        """Take the lock; while another command holds a conflicting one, try again for
        up to retry_for seconds (each warning said once), then fail (RepositoryLocked)."""
        deadline = clock.monotonic() + self.retry_for
        said: set[str] = set()

        def warn_once(line: str) -> None:
            if line not in said:
                said.add(line)
                warn(line)

        delay, waiting = 0.5, False
        while True:
            try:
                return self._try_acquire(exclusive, command, warn_once)
            except RepositoryLocked as exc:
                left = deadline - clock.monotonic()
                if left <= 0:
                    if self.retry_for > 0:
                        raise RepositoryLocked(
                            f"{exc} (waited {self.retry_for:g} s for it)") from None
                    raise
                if not waiting:
                    warn(f"medark: {exc}; waiting up to {self.retry_for:g} s for it")
                    waiting = True
                clock.sleep(min(delay, left))
                delay = min(delay * 2, RETRY_BACKOFF_MAX)

    def _try_acquire(self, exclusive: bool, command: str,
                     warn: Callable[[str], None]) -> HeldLock:
        name = self._write(exclusive, command)
        now = clock.now()
        locks, unreadable = self.survey()
        stale: list[LockInfo] = []
        for other in locks:
            if other.name == name:
                continue
            if other.stale(now):
                warn(f"ignoring stale {other.describe()}; `medark unlock` removes it")
                stale.append(other)
                continue
            if exclusive or other.exclusive:
                self.backend.remove(name)
                raise RepositoryLocked(
                    f"repository is locked: {other.describe()}; "
                    "if that process is gone, run `medark unlock`"
                )
        for bad in (u for u in unreadable if u.name != name):
            if exclusive:  # it may be a running command's lock: fail closed
                self.backend.remove(name)
                raise RepositoryLocked(
                    f"repository is locked: {bad.describe()}, so it counts as held by a "
                    f"running command; `medark check` lists such locks; {REMOVE_HINT}"
                )
            warn(f"warning: {bad.describe()}; commands that need the exclusive lock "
                 f"(prune, forget) refuse to run while it exists; {REMOVE_HINT}")
        return HeldLock(self, name, exclusive, command, stale)

    def remove_stale(self, remove_all: bool = False) -> list[LockInfo]:
        now = clock.now()
        removed = []
        for lock in self.all():
            if remove_all or lock.stale(now):
                self.backend.remove(lock.name)
                removed.append(lock)
        return removed


class HeldLock:
    """A lock we hold; a daemon thread refreshes it until release()."""

    def __init__(self, manager: LockManager, name: str, exclusive: bool, command: str,
                 stale: list[LockInfo] | None = None) -> None:
        self._manager = manager
        self.stale = stale or []
        """Stale locks seen when this one was taken: traces of commands that were killed
        (their packs may be stored but not indexed: repo/adopt.py)."""
        self.name = name
        self._exclusive = exclusive
        self._command = command
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True, name="lock")
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_EVERY.total_seconds()):
            try:
                new_name = self._manager._write(self._exclusive, self._command)
                old, self.name = self.name, new_name
                self._manager.backend.remove(old)
            except MedarkError:
                continue  # try again at the next interval

    def release(self) -> None:
        self._stop.set()
        self._manager.backend.remove(self.name)
