"""The write load of the DR switch-over benchmark: one client that writes one row per
request, each its own transaction, back to back through the clients' entry point, and
records every request (sent, answered, which server answered, or the error).

The row and the answering server come from one statement (``INSERT … RETURNING
current_setting('port')``, autocommit), so an acknowledged write names the server that
committed it. The client keeps its connection, as an application's pool does; after a
failure it drops it, waits ``retry_pause`` (an application's retry delay: without one a
proxy that refuses connections instantly would count thousands of failures a second) and
connects again for the next request.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg

TABLE = "bench_writes"
CREATE_TABLE = f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, " \
    "at timestamptz NOT NULL DEFAULT clock_timestamp())"


@dataclass
class Request:
    """One write request; times are time.monotonic() of this process."""

    id: int
    sent: float
    done: float
    port: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Writer(threading.Thread):
    """Writes ids first_id, first_id+1, … through `dsn` until stop()."""

    def __init__(self, dsn: str, first_id: int, retry_pause: float = 0.05,
                 connect_timeout: int = 5) -> None:
        super().__init__(daemon=True, name="dr-bench-writer")
        self.dsn = dsn
        self.next_id = first_id
        self.retry_pause = retry_pause
        self.connect_timeout = connect_timeout
        self.requests: list[Request] = []
        self._halt = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def stop(self, timeout: float = 130.0) -> None:
        """Ask the loop to end after its current request, and wait for it."""
        self._halt.set()
        self.join(timeout)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            # prepare_threshold=None: pgbouncer in transaction pooling (1.18) cannot carry
            # named prepared statements across server connections.
            self._conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None,
                                         connect_timeout=self.connect_timeout)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def run(self) -> None:
        while not self._halt.is_set():
            rid = self.next_id
            self.next_id += 1
            sent = time.monotonic()
            try:
                row = self._connection().execute(
                    f"INSERT INTO {TABLE} (id) VALUES (%s) "
                    "RETURNING current_setting('port')::int", (rid,)).fetchone()
                assert row is not None
                self.requests.append(Request(rid, sent, time.monotonic(), port=int(row[0])))
            except (psycopg.Error, OSError) as exc:
                first = str(exc).strip().splitlines()
                self.requests.append(Request(rid, sent, time.monotonic(), error=(
                    f"{type(exc).__name__}: {first[0] if first else ''}")[:200]))
                self._drop()
                self._halt.wait(self.retry_pause)
        self._drop()

    def first_ack_on(self, port: int, after: float) -> Request | None:
        """The first acknowledged write that `port` committed, answered after `after`."""
        for req in list(self.requests):
            if req.ok and req.port == port and req.done >= after:
                return req
        return None


def present_ids(dsn: str, first_id: int) -> set[int]:
    """Ids at or above `first_id` present on the server of `dsn` (queried directly)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(f"SELECT id FROM {TABLE} WHERE id >= %s", (first_id,)).fetchall()
    return {int(r[0]) for r in rows}


def server_port(dsn: str) -> int:
    """The port of the server a connection through `dsn` reaches (entry point checks)."""
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None,
                         connect_timeout=5) as conn:
        row = conn.execute("SELECT current_setting('port')::int").fetchone()
    assert row is not None
    return int(row[0])


def execute(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.encode())
