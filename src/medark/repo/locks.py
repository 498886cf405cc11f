"""Repository locks: sealed lock objects under locks/, refreshed while held.

Backups take shared locks and may run side by side (from many hosts); prune and
other destructive commands take an exclusive lock. A lock is stale when its owner
is a dead process on this host or it was not refreshed within STALE_AFTER.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from medark.errors import MedarkError, ObjectNotFound, RepositoryLocked
from medark.storage.base import Backend
from medark.util import clock
from medark.util.processes import pid_alive

LOCKS_PREFIX = "locks/"
REFRESH_EVERY = timedelta(minutes=5)
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
        if self.hostname == socket.gethostname():
            return not pid_alive(self.pid)
        return False


Sealer = Callable[[bytes], bytes]


class LockManager:
    """Creates, checks, refreshes and removes lock objects."""

    def __init__(self, backend: Backend, seal: Sealer, unseal: Sealer, store: Sealer) -> None:
        self.backend = backend
        self._seal = seal
        self._unseal = unseal
        self._store = store  # saves sealed bytes, returns the object name (as bytes)

    def _write(self, exclusive: bool, command: str) -> str:
        doc = {
            "time": clock.format_time(clock.now()),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "username": os.environ.get("USER", ""),
            "exclusive": exclusive,
            "command": command,
        }
        return self._store(self._seal(json.dumps(doc).encode())).decode()

    def read(self, name: str) -> LockInfo:
        doc = json.loads(self._unseal(self.backend.load(name)))
        return LockInfo(
            name=name,
            time=clock.parse_time(doc["time"]),
            hostname=doc["hostname"],
            pid=int(doc["pid"]),
            username=doc.get("username", ""),
            exclusive=bool(doc["exclusive"]),
            command=doc.get("command", ""),
        )

    def all(self) -> list[LockInfo]:
        locks = []
        for info in self.backend.list(LOCKS_PREFIX):
            try:
                locks.append(self.read(info.name))
            except ObjectNotFound:
                continue  # removed while we listed
            except (MedarkError, ValueError, KeyError):
                continue  # unreadable with this key: not ours to judge
        return locks

    def acquire(self, exclusive: bool, command: str, warn: Callable[[str], None]) -> HeldLock:
        name = self._write(exclusive, command)
        now = clock.now()
        for other in self.all():
            if other.name == name:
                continue
            if other.stale(now):
                warn(f"ignoring stale {other.describe()}; `medark unlock` removes it")
                continue
            if exclusive or other.exclusive:
                self.backend.remove(name)
                raise RepositoryLocked(
                    f"repository is locked: {other.describe()}; "
                    "if that process is gone, run `medark unlock`"
                )
        return HeldLock(self, name, exclusive, command)

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

    def __init__(self, manager: LockManager, name: str, exclusive: bool, command: str) -> None:
        self._manager = manager
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
