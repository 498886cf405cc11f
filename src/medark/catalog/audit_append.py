"""How audit records reach the catalog fast without giving up a guarantee (issue 16:
more than 1,000 records/s, several server processes on one PostgreSQL catalog).

Two parts, both about the same cost: every commit waits for the disk, and on a shared
catalog it holds the chain head's row lock while it does, so the next process waits too.

- `GroupCommit`: threads of one process that append at the same time share one
  transaction. The first to arrive leads: it takes everything queued (its own record
  first) and writes it; those arriving meanwhile queue, and when the leader's commit is
  done it wakes exactly the threads of its batch and hands the lead to the first queued
  one, who writes the whole queue. Every caller returns only after the transaction that
  holds its record committed (or raises what made it fail). Under load the batch grows
  by itself: the longer a commit (or the wait for another process's lock), the more
  requests queue behind it, so the rate rises with the load instead of the latency. A
  new leader finding fewer queued than the last batch held waits up to 2 ms for the
  rest (see `_lead`).
- `pg_append`: one batch on PostgreSQL in two round trips, the fewest that a chain with
  client-side hashes allows: BEGIN and `SELECT … FOR UPDATE` of the head in one; then
  one INSERT of all the batch's rows (arrays, unnest), the head's UPDATE and COMMIT in
  the other (one query text each: two sends, two receives; psycopg's pipeline mode
  needed as many round trips but four times the system calls, and the default mode
  five round trips, each a wake-up of two processes on a loaded host). The head's lock
  is held for the second round trip, the hashing between the two (microseconds per
  record) and the commit's flush; a batch of N records costs one lock hold, not N.

synchronous_commit is left as the server has it (on, or stronger with a standby), so a
returned append is as durable as any other committed row of the catalog."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # psycopg at run time only for a PostgreSQL catalog's appends
    import psycopg

T = TypeVar("T")

COLUMNS = ("seq", "at", "actor", "source", "action", "target", "result", "institution",
           "detail", "hash_alg", "key_id", "prev_hash", "hash", "signature")
"""audit_trail's columns, in the order `pg_append` is given each row's values."""
_TYPES = ("bigint", "timestamptz") + ("text",) * 12

LOCK_HEAD = "BEGIN; SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
WRITE = (f"INSERT INTO audit_trail ({', '.join(COLUMNS)}) SELECT * FROM unnest("
         + ", ".join(f"%s::{t}[]" for t in _TYPES) + "); "
         "UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1; COMMIT")
"""Sent as one query text (the simple protocol's one round trip: server-side binding
takes one statement per message). Values are quoted by libpq's escaping, as
psycopg's ClientCursor does for any literal."""

Chain = Callable[[int, str], tuple[list[tuple[Any, ...]], str]]
"""Given the head's sequence number and hash: the batch's rows (values in COLUMNS'
order, numbered from head + 1 and chained from the hash) and the new head's hash."""


class NothingSent(Exception):
    """The first round trip failed on a broken connection (a kept one the server closed
    meanwhile, say): nothing of the batch was written, so it may be tried again on a new
    connection."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


def pg_append(connection: psycopg.Connection[Any], count: int, chain: Chain) -> None:
    """Append `count` records made by `chain` in one transaction, committed when this
    returns; `connection` is in autocommit mode (BEGIN and COMMIT are sent here, each
    with its neighbours). The caller drops the connection if it raises: its transaction
    may still be open, and closing it is what rolls it back."""
    import psycopg
    from psycopg import ClientCursor

    with ClientCursor(connection) as cursor:
        try:
            cursor.execute(LOCK_HEAD)  # waits for other writers' commits
        except psycopg.OperationalError as exc:
            if connection.broken:
                raise NothingSent(exc) from exc
            raise
        cursor.nextset()  # BEGIN's result first, then the SELECT's
        found = cursor.fetchone()
        if found is None:
            raise psycopg.DataError("the audit trail's head row is missing")
        seq, prev_hash = found
        rows, last_hash = chain(int(seq), str(prev_hash))
        if len(rows) != count:
            raise ValueError(f"{len(rows)} audit rows made for {count} records")
        columns = [list(column) for column in zip(*rows, strict=True)]
        cursor.execute(WRITE, (*columns, int(seq) + count, last_hash))
        # COMMIT answered: durable as the server's synchronous_commit makes any commit


@dataclass
class _Waiter(Generic[T]):
    item: T
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Leader/follower group commit of `write(batch)` calls (see the module's text)."""

    def __init__(self, write: Callable[[Sequence[T]], None], max_batch: int = 500,
                 window: float = 0.002) -> None:
        self._write = write
        self._max = max_batch
        self._window = window
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[_Waiter[T]] = []
        self._leading = False
        """A leader is writing (or has been handed the lead and is about to)."""
        self._last = 1
        """The last batch's size: how many callers are appending at once."""
        self._want = 0
        """What a leader waiting for its batch to fill waits for (0: none waits)."""

    def submit(self, item: T) -> None:
        """Returns once `item` was written in a batch that succeeded; raises what made
        its batch fail otherwise."""
        me = _Waiter(item)
        with self._lock:
            self._queue.append(me)
            me.lead = not self._leading
            self._leading = True
            if self._want and len(self._queue) >= self._want:
                self._arrived.notify()
        if not me.lead:
            me.woken.wait()
        if me.lead:
            self._lead()
        if me.error is not None:
            raise me.error

    def _lead(self) -> None:
        """Write what is queued. When the last batch was bigger than the queue is now,
        wait up to `window` for it to fill: the callers of the last batch were all woken
        at once and come back at once, and a leader that did not wait would write the
        first of them alone, the rest in the next transaction (seen: batches of 1 and
        16 in turn with 16 threads). The wait holds no lock of the catalog's."""
        with self._lock:
            want = min(self._last, self._max)
            if len(self._queue) < want:
                self._want = want
                self._arrived.wait_for(lambda: len(self._queue) >= want, self._window)
                self._want = 0
            batch, self._queue = self._queue[:self._max], self._queue[self._max:]
            self._last = len(batch)
        error: BaseException | None = None
        try:
            self._write([w.item for w in batch])
        except BaseException as exc:  # every waiter of the batch learns it
            error = exc
        with self._lock:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._leading = False
            else:
                successor.lead = True
        for waiter in batch:
            waiter.error = error
            waiter.woken.set()
        if successor is not None:
            successor.woken.set()
