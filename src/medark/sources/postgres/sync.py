"""Synchronous replication to the DR standby: PostgreSQL's `synchronous_standby_names`.

With the standby named there (and `synchronous_commit = on`, the default) a commit is
acknowledged only once the standby has flushed its WAL, so a failover loses no
acknowledged commit. The cost is the round trip to the standby on every commit, and
when the standby is gone commits wait for ever: `set_synchronous(dsn, None)` turns it
off again (the caller decides when: `on_sync_loss`). Waiting commits go on as soon as
the reload reaches them.

The standby is named by its `application_name` as the primary sees it in
pg_stat_replication (the walreceiver's, `walreceiver` unless the standby's
primary_conninfo or cluster_name says otherwise), found through the DR slot, so the
setting names exactly the standby Medark watches and not another walsender (a
pg_receivewal archiving WAL).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from medark.errors import MedarkError
from medark.sources.postgres.server import Dsn

SETTLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class SyncState:
    setting: str
    """synchronous_standby_names as the server runs with it now."""
    standby_name: str | None
    """The application_name of the walsender on the DR slot (None: not connected)."""
    standby_sync_state: str | None
    """pg_stat_replication.sync_state of that walsender: sync, potential, async, quorum."""

    @property
    def synchronous(self) -> bool:
        return self.standby_sync_state in ("sync", "quorum")


def wanted_setting(standby_name: str) -> str:
    """`FIRST 1 ("name")`: commits wait for this standby alone."""
    return 'FIRST 1 ("' + standby_name.replace('"', '""') + '")'


def sync_state(dsn: str, slot: str) -> SyncState:
    target = Dsn.parse(dsn)
    with target.connect() as conn:
        row = conn.execute(
            "SELECT current_setting('synchronous_standby_names'), s.application_name, "
            "s.sync_state FROM (SELECT 1) one LEFT JOIN pg_replication_slots r ON "
            "r.slot_name = %s LEFT JOIN pg_stat_replication s ON s.pid = r.active_pid",
            (slot,)).fetchone()
    assert row is not None
    return SyncState(str(row[0]), None if row[1] is None else str(row[1]),
                     None if row[2] is None else str(row[2]))


def set_synchronous(dsn: str, standby_name: str | None) -> str:
    """Name `standby_name` as the synchronous standby (None: none, asynchronous) with
    ALTER SYSTEM and a reload; returns the setting once new sessions see it."""
    target = Dsn.parse(dsn)
    value = "" if standby_name is None else wanted_setting(standby_name)
    with target.connect() as conn:
        conn.execute("SET default_transaction_read_only = off")  # a fenced old primary
        if value:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{_quote(value)}'")
        else:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        with target.connect() as conn:
            row = conn.execute("SELECT current_setting('synchronous_standby_names')"
                               ).fetchone()
        if row is not None and str(row[0]) == value:
            return value
        if time.monotonic() >= deadline:
            raise MedarkError(f"{target.safe()}: synchronous_standby_names is still "
                              f"{row[0] if row else '?'!r} {SETTLE_TIMEOUT:g} s after a "
                              "reload")
        time.sleep(0.02)


def _quote(value: str) -> str:
    return value.replace("'", "''")
