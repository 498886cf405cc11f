"""What a PostgreSQL primary/standby pair is doing, and the two steps of a switch that
happen on the standby: waiting until it has replayed a position, and promoting it.

Every figure comes from the servers' own views (pg_stat_replication,
pg_replication_slots, pg_stat_wal_receiver and the pg_last_* functions); nothing is
estimated where the servers can say it. Fencing the old primary is in fencing.py, turning
it into a standby in reinstate.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from medark.errors import MedarkError, StandbyNotReady, UsageError
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import format_lsn, parse_lsn

PRIMARY = "primary"
STANDBY = "standby"


@dataclass(frozen=True)
class NodeState:
    """One server's replication state. A primary fills `current_lsn`/`flush_lsn`; a
    standby fills the receive/replay fields (`receive_lsn` is None when it replays from an
    archive, not a stream)."""

    role: str
    timeline: int
    server_time: datetime
    current_lsn: int | None = None
    flush_lsn: int | None = None
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    last_replay_at: datetime | None = None
    replay_paused: bool = False
    receiver_status: str | None = None
    slot_name: str | None = None

    def as_dict(self) -> dict[str, object]:
        def lsn(value: int | None) -> str | None:
            return None if value is None else format_lsn(value)
        return {"role": self.role, "timeline": self.timeline,
                "current_lsn": lsn(self.current_lsn), "flush_lsn": lsn(self.flush_lsn),
                "receive_lsn": lsn(self.receive_lsn), "replay_lsn": lsn(self.replay_lsn),
                "last_replay_at": None if self.last_replay_at is None
                else self.last_replay_at.isoformat(),
                "replay_paused": self.replay_paused,
                "receiver_status": self.receiver_status, "slot_name": self.slot_name}


def _lsn(value: object) -> int | None:
    return None if value is None else parse_lsn(str(value))


def _row(conn: psycopg.Connection[Any], query: str) -> tuple[Any, ...]:
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def read_state(conn: psycopg.Connection[Any]) -> NodeState:
    """`node_state` on an open connection (the wait loops poll without reconnecting)."""
    in_recovery, server_time = _row(conn, "SELECT pg_is_in_recovery(), now()")
    if not in_recovery:
        current, flush, walfile = _row(
            conn, "SELECT pg_current_wal_lsn()::text, pg_current_wal_flush_lsn()::text, "
            "pg_walfile_name(pg_current_wal_lsn())")
        # The WAL file name starts with the timeline being written now; the checkpoint's
        # timeline lags a fresh promotion until its first checkpoint.
        return NodeState(PRIMARY, int(str(walfile)[:8], 16), server_time,
                         current_lsn=_lsn(current), flush_lsn=_lsn(flush))
    (receive, replay, replayed_at, paused, status, received_tli, slot,
     checkpoint_tli, recovery_tli) = _row(
        conn, "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, "
        "pg_last_xact_replay_timestamp(), pg_is_wal_replay_paused(), "
        "(SELECT status FROM pg_stat_wal_receiver), "
        "(SELECT received_tli FROM pg_stat_wal_receiver), "
        "(SELECT slot_name FROM pg_stat_wal_receiver), "
        "(SELECT timeline_id FROM pg_control_checkpoint()), "
        "(SELECT min_recovery_end_timeline FROM pg_control_recovery())")
    # Without a WAL receiver (a standby fed by restore_command) the newest timeline known
    # is the minimum recovery point's (pg_rewind sets it; replay moves it as pages are
    # written); the last restartpoint's trails it by up to checkpoint_timeout.
    timeline = received_tli or max(int(checkpoint_tli), int(recovery_tli or 0))
    return NodeState(STANDBY, int(timeline), server_time,
                     receive_lsn=_lsn(receive), replay_lsn=_lsn(replay),
                     last_replay_at=replayed_at, replay_paused=bool(paused),
                     receiver_status=status, slot_name=slot)


def node_state(dsn: str) -> NodeState:
    """Role, timeline and WAL positions of the server at `dsn`."""
    with Dsn.parse(dsn).connect() as conn:
        return read_state(conn)


@dataclass(frozen=True)
class SlotState:
    """A physical slot on a primary and, when a standby is attached, its walsender's view
    (`state` 'streaming' once it has caught up with the backlog)."""

    name: str
    active: bool
    wal_status: str | None
    restart_lsn: int | None
    state: str | None
    sync_state: str | None
    replay_lsn: int | None
    replay_lag_seconds: float | None


def replication_slots(primary_dsn: str) -> list[SlotState]:
    with Dsn.parse(primary_dsn).connect() as conn:
        return read_slots(conn)


def read_slots(conn: psycopg.Connection[Any]) -> list[SlotState]:
    rows = conn.execute(
        "SELECT r.slot_name, r.active, r.wal_status, r.restart_lsn::text, s.state, "
        "s.sync_state, s.replay_lsn::text, extract(epoch FROM s.replay_lag)::float8 "
        "FROM pg_replication_slots r LEFT JOIN pg_stat_replication s ON s.pid = r.active_pid "
        "WHERE r.slot_type = 'physical' ORDER BY r.slot_name").fetchall()
    return [SlotState(str(r[0]), bool(r[1]), r[2], _lsn(r[3]), r[4], r[5], _lsn(r[6]),
                      None if r[7] is None else float(r[7])) for r in rows]


@dataclass(frozen=True)
class Lag:
    """How far the standby's replay is behind what the primary has flushed.

    `seconds` is 0 only when `bytes` is 0. While bytes are behind it is the primary's own
    measure (pg_stat_replication.replay_lag, which keeps growing while replay is stuck),
    else the time since the standby last replayed a commit (an upper bound when the
    primary was idle before its last writes); None when neither is known, never 0.
    `basis` names which one it is."""

    bytes: int
    seconds: float | None
    basis: str
    primary_flush_lsn: int
    standby_replay_lsn: int

    def as_dict(self) -> dict[str, object]:
        return {"bytes": self.bytes, "seconds": self.seconds, "basis": self.basis,
                "primary_flush_lsn": format_lsn(self.primary_flush_lsn),
                "standby_replay_lsn": format_lsn(self.standby_replay_lsn)}


def replication_lag(primary_dsn: str, standby_dsn: str) -> Lag:
    standby_dsn_ = Dsn.parse(standby_dsn)
    with standby_dsn_.connect() as sconn:
        standby = read_state(sconn)
    if standby.role != STANDBY:
        raise StandbyNotReady(f"{standby_dsn_.safe()} is not in recovery: not a standby")
    primary_dsn_ = Dsn.parse(primary_dsn)
    with primary_dsn_.connect() as pconn:
        primary = read_state(pconn)
        slots = read_slots(pconn)
    if primary.role != PRIMARY or primary.flush_lsn is None:
        raise UsageError(f"{primary_dsn_.safe()} is in recovery: not a primary")
    replay = standby.replay_lsn or 0
    behind = primary.flush_lsn - replay
    if behind <= 0:
        return Lag(0, 0.0, "caught up", primary.flush_lsn, replay)
    seconds, basis = _seconds_behind(standby, slots)
    return Lag(behind, seconds, basis, primary.flush_lsn, replay)


def _seconds_behind(standby: NodeState, slots: list[SlotState]) -> tuple[float | None, str]:
    mine = [s for s in slots if standby.slot_name and s.name == standby.slot_name]
    if mine and mine[0].replay_lag_seconds:
        return mine[0].replay_lag_seconds, "pg_stat_replication.replay_lag"
    if standby.last_replay_at is not None:
        age = (standby.server_time - standby.last_replay_at) / timedelta(seconds=1)
        if age > 0:
            return age, "since the last replayed commit"
    return None, "unknown"


def wait_replayed(standby_dsn: str, lsn: int, timeout: float, poll: float = 0.02) -> NodeState:
    """Until the standby has replayed everything up to `lsn` (the fenced primary's final
    flush position: every acknowledged commit ends at or before it). The standby's state
    at that moment is returned; a timeout names the bytes still missing."""
    dsn = Dsn.parse(standby_dsn)
    deadline = time.monotonic() + timeout
    with dsn.connect() as conn:
        while True:
            state = read_state(conn)
            if state.role != STANDBY:
                raise StandbyNotReady(f"{dsn.safe()} is not in recovery: not a standby")
            replay = state.replay_lsn or 0
            if replay >= lsn:
                return state
            if time.monotonic() >= deadline:
                paused = "; replay is paused" if state.replay_paused else ""
                raise StandbyNotReady(
                    f"{dsn.safe()} replayed up to {format_lsn(replay)} after {timeout:g} s, "
                    f"{lsn - replay} bytes short of {format_lsn(lsn)} (WAL receiver: "
                    f"{state.receiver_status or 'not running'}{paused})")
            time.sleep(poll)


def promote(standby_dsn: str, timeout: float) -> NodeState:
    """pg_promote and wait for it; then prove the server writes on a new timeline."""
    dsn = Dsn.parse(standby_dsn)
    with dsn.connect() as conn:
        before = read_state(conn)
        if before.role != STANDBY:
            raise StandbyNotReady(f"{dsn.safe()} is not in recovery: nothing to promote")
        # wait => true polls ten times a second; polling here ends the wait ~0.1 s sooner
        _row(conn, "SELECT pg_promote(wait => false)")
        deadline = time.monotonic() + timeout
        while _row(conn, "SELECT pg_is_in_recovery()")[0]:
            if time.monotonic() >= deadline:
                raise StandbyNotReady(
                    f"{dsn.safe()} did not finish promotion within {timeout:g} s")
            time.sleep(0.005)
        after = read_state(conn)
    if after.role != PRIMARY or after.timeline <= before.timeline:
        raise MedarkError(
            f"{dsn.safe()} after promotion: {after.role} on timeline {after.timeline} "
            f"(was timeline {before.timeline}); expected a primary on a new timeline")
    return after
