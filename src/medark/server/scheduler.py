"""The management server's periodic tasks, run by one elected server process.

Several `medark server` processes may serve one catalog (behind a load balancer); the
periodic tasks (mark silent agents offline, fail jobs whose agent stopped reporting,
expire grants) must run in one of them at a time, and each period once. Two guards:

- Leadership. PostgreSQL: `pg_try_advisory_lock` on a connection of its own, held open
  while leading; the lock goes when that connection does, so a leader that is killed or
  cut off is replaced by the next follower's try (every `retry` seconds). SQLite: an
  exclusive `flock` on `<database>.scheduler.lock` beside the file (one host; the lock
  goes with the process).
- One run per slot. A task every N seconds serves the slots that are multiples of N
  since the epoch; the leader first inserts the (task, slot) row of server_task_runs,
  unique, and runs the task only if the insert succeeded: two processes that both
  believed themselves leader for a moment (a lost connection not noticed yet) do not
  both run it.

Tasks register at import of their module (`register`); the server starts a
`ServerScheduler` thread at startup and stops it at shutdown (server/app.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medark.catalog.store import Catalog
from medark.errors import MedarkError
from medark.server.db import transaction
from medark.server.tables_scheduler import ServerTaskRun
from medark.util import clock

log = logging.getLogger("medark.server.scheduler")

LEADER_LOCK = 0x6D6564736368  # "medsch": the advisory lock key of the server's leader
TICK = 1.0
"""Seconds between two looks at the registered tasks."""
RETRY = 2.0
"""Seconds between a follower's tries to become leader."""
ERROR_LIMIT = 500


@dataclass(frozen=True)
class Task:
    name: str
    every_seconds: float
    fn: Callable[[Catalog, datetime], None]

    def slot(self, now: datetime) -> datetime:
        """The start of the period `now` falls in (multiples of the interval since the
        epoch, so every process computes the same slot)."""
        start = math.floor(now.timestamp() / self.every_seconds) * self.every_seconds
        return datetime.fromtimestamp(start, UTC)


_TASKS: dict[str, Task] = {}


def register(name: str, every_seconds: float,
             fn: Callable[[Catalog, datetime], None]) -> None:
    """Run `fn(catalog, now)` once every `every_seconds` in the leader (registering a
    name again replaces the task)."""
    if every_seconds <= 0:
        raise ValueError(f"task {name}: every_seconds must be positive")
    _TASKS[name] = Task(name, float(every_seconds), fn)


def registered() -> list[Task]:
    return sorted(_TASKS.values(), key=lambda task: task.name)


class Leadership(Protocol):
    def try_acquire(self) -> bool: ...

    def holding(self) -> bool: ...

    def release(self) -> None: ...


class PgLeadership:
    """The advisory lock on a dedicated connection (autocommit: no transaction kept
    open, so no snapshot held and no vacuum blocked)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        try:
            connection = self._catalog._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
        except SQLAlchemyError:
            return False  # the database is away: try again later
        try:
            got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                     {"key": LEADER_LOCK}).scalar()
        except SQLAlchemyError:
            connection.close()
            return False
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def holding(self) -> bool:
        """Whether the lock's connection is still there (the lock lives with it)."""
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            self._drop()
            return False

    def release(self) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(SQLAlchemyError):  # gone: the lock went with it
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                     {"key": LEADER_LOCK})
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.invalidate()  # never back to the pool with the lock on it
                connection.close()


class FileLeadership:
    """An exclusive flock on a file beside the SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("scheduler lock %s: %s", self.path, exc.strerror)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def holding(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class Solo:
    """An in-memory SQLite catalog has one process by definition."""

    def __init__(self) -> None:
        self._held = False

    def try_acquire(self) -> bool:
        self._held = True
        return True

    def holding(self) -> bool:
        return self._held

    def release(self) -> None:
        self._held = False


def leadership_for(catalog: Catalog) -> Leadership:
    url = catalog.url
    if url.startswith("sqlite:///"):
        database = url.removeprefix("sqlite:///")
        if database in ("", ":memory:"):
            return Solo()
        return FileLeadership(Path(database + ".scheduler.lock"))
    return PgLeadership(catalog)


class ServerScheduler:
    """The background thread: become leader, then run each task once per slot."""

    def __init__(self, catalog: Catalog, tasks: Iterable[Task] | None = None,
                 tick: float = TICK, retry: float = RETRY,
                 leadership: Leadership | None = None) -> None:
        self.catalog = catalog
        self.tasks = list(registered() if tasks is None else tasks)
        self.tick = tick
        self.retry = retry
        self.leadership = leadership or leadership_for(catalog)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leader = False
        self._done: dict[str, datetime] = {}
        self.host = socket.gethostname()

    @property
    def is_leader(self) -> bool:
        return self._leader

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="medark-server-scheduler",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to end, wait for the task it may be running, let go of the
        leadership."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        next_try = 0.0
        try:
            while not self._stop.is_set():
                if self._leader and not self.leadership.holding():
                    log.warning("scheduler: lost the leadership (catalog connection gone)")
                    self._leader = False
                if not self._leader and clock.monotonic() >= next_try:
                    self._leader = self.leadership.try_acquire()
                    next_try = clock.monotonic() + self.retry
                    if self._leader:
                        log.info("scheduler: leading (pid %d)", os.getpid())
                if self._leader:
                    self.run_due(clock.now())
                self._stop.wait(self.tick)
        finally:
            self._leader = False
            self.leadership.release()

    def run_due(self, now: datetime) -> list[str]:
        """Run every task whose current slot has not run (here or in another process);
        the names of those run."""
        ran = []
        for task in self.tasks:
            if self._stop.is_set():
                break
            slot = task.slot(now)
            if self._done.get(task.name) == slot:
                continue
            run_id = self._claim(task, slot, now)
            self._done[task.name] = slot
            if run_id is None:
                continue
            error = None
            try:
                task.fn(self.catalog, now)
            except Exception as exc:  # a task's failure must not stop the others
                error = f"{type(exc).__name__}: {exc}".splitlines()[0][:ERROR_LIMIT]
                if not isinstance(exc, MedarkError):
                    log.error("scheduler: task %s failed: %s", task.name, type(exc).__name__)
            self._finish(run_id, error)
            ran.append(task.name)
        return ran

    def _claim(self, task: Task, slot: datetime, now: datetime) -> int | None:
        row = ServerTaskRun(task=task.name, slot=slot, started_at=now,
                            leader_host=self.host[:255], leader_pid=os.getpid())
        try:
            with transaction(self.catalog) as session:
                session.add(row)
                session.flush()
                return int(row.id)
        except IntegrityError:
            return None  # another leader ran this slot
        except MedarkError as exc:
            log.warning("scheduler: cannot record task %s: %s", task.name, exc)
            return None

    def _finish(self, run_id: int, error: str | None) -> None:
        try:
            with transaction(self.catalog) as session:
                row = session.get(ServerTaskRun, run_id)
                if row is not None:
                    row.finished_at = clock.now()
                    row.error = error
        except MedarkError as exc:
            log.warning("scheduler: cannot record the end of run %d: %s", run_id, exc)


def task_runs(catalog: Catalog, task: str | None = None) -> list[dict[str, Any]]:
    """The recorded runs, oldest first (tests, diagnostics)."""
    query = select(ServerTaskRun).order_by(ServerTaskRun.id)
    if task is not None:
        query = query.where(ServerTaskRun.task == task)
    with transaction(catalog) as session:
        return [{"task": r.task, "slot": r.slot, "leader_host": r.leader_host,
                 "leader_pid": r.leader_pid, "error": r.error,
                 "finished": r.finished_at is not None} for r in session.scalars(query)]
