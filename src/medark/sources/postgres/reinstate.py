"""Turning an old primary into a standby of the server that replaced it, so the reverse
switch is ready: rewind what it wrote after the fork, point it at the new primary (or, for
a repository feed, at the repository the new primary archives to), start it and wait
until it streams (or replays)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from psycopg import conninfo as pg_conninfo

from medark.errors import StandbyNotReady
from medark.sources.postgres import control
from medark.sources.postgres.replication import PRIMARY, node_state
from medark.sources.postgres.server import Dsn
from medark.util.files import atomic_write

KEPT_CONFIG = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")
"""pg_rewind copies these from the source server; the node keeps its own (its port, its
paths, its access rules)."""

REPLACED_SETTINGS = ("primary_conninfo", "primary_slot_name", "default_transaction_read_only")
"""Written anew (with any other setting written); a read-only fence left by the switch is
lifted (a standby is read-only anyway, and it must not come back read-only when it is
promoted again)."""


@dataclass(frozen=True)
class Reinstated:
    rewound: bool
    """False when pg_rewind found nothing to undo (a clean switch loses no WAL) or the
    timelines had not diverged."""
    timeline: int
    replaced: Path | None = None
    """pg_rewind could not run (the WAL back to the fork recycled, no wal_log_hints):
    the node was copied anew from the new primary, and its old directory kept here."""
    rewind_error: str | None = None
    """Why pg_rewind could not run, when the node was copied anew."""

    def how(self) -> str:
        if self.replaced:
            return (f"copied anew: pg_rewind could not run ({self.rewind_error}); its old "
                    f"directory is {self.replaced}")
        return "rewound with pg_rewind" if self.rewound else "no rewind needed"


def ensure_slot(dsn: Dsn, slot: str) -> None:
    """Create the physical slot on the new primary, reserving WAL from now on, so nothing
    the reinstated standby needs is recycled before it connects."""
    with dsn.connect() as conn:
        row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)).fetchone()
        if row is None:
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        elif row[0]:
            raise StandbyNotReady(f"slot {slot!r} on {dsn.safe()} is in use by another "
                                  "standby")


def reinstate_as_standby(datadir: Path, new_primary_conninfo: str, slot: str | None,
                         timeout: float = 120.0, bin_dir: str | None = None,
                         log_file: Path | None = None, restore_command: str | None = None
                         ) -> Reinstated:
    """Stop the old primary, pg_rewind it from the new primary when their timelines
    diverged, make it a standby streaming through `slot`, start it, wait for streaming.
    With `restore_command` (and no slot) it is fed from a repository instead: no
    streaming source; started, it waits until it accepts read-only connections."""
    control.check_datadir(datadir)
    source = Dsn.parse(new_primary_conninfo)
    new_state = node_state(new_primary_conninfo)
    if new_state.role != PRIMARY:
        raise StandbyNotReady(f"{source.safe()} is in recovery: not a primary to follow")
    if slot is not None:
        ensure_slot(source, slot)
    if control.is_running(datadir, bin_dir):
        done = control.stop(datadir, "fast", timeout, bin_dir)
        if done.returncode != 0:
            raise StandbyNotReady(f"cannot stop {datadir}: {control.last_line(done)}")
    old_timeline = int(control.controldata(datadir, bin_dir)["Latest checkpoint's TimeLineID"])
    archive_feed = None if restore_command is None else [
        "primary_conninfo = ''", "primary_slot_name = ''",
        f"restore_command = {_quote(restore_command)}",
        "recovery_target_timeline = 'latest'", "hot_standby = on"]
    if archive_feed is not None:
        # before the rewind: pg_rewind -c fetches the WAL back to the fork through it,
        # where the old primary has archived and recycled it already
        _write_settings(datadir, archive_feed)
    rewound, replaced, rewind_error = False, None, None
    if old_timeline != new_state.timeline:
        # read now: a pg_rewind that fails half-way may have overwritten them already
        kept = {name: (datadir / name).read_bytes() for name in KEPT_CONFIG
                if (datadir / name).is_file()}
        try:
            rewound = _rewind(datadir, source, kept, timeout, bin_dir,
                              restore_target_wal=archive_feed is not None)
        except StandbyNotReady as exc:
            rewind_error = str(exc)
            replaced = _rebuild(datadir, source, kept, slot, timeout, bin_dir, rewind_error)
    if archive_feed is not None:
        _write_standby_settings(datadir, archive_feed)
        # A rewound node is consistent only past the source's position at the end of the
        # rewind, which lies in the segment the new primary is writing: switched now, it
        # reaches the repository at once instead of when it fills up.
        with source.connect() as conn:
            conn.execute("SELECT pg_switch_wal()")
    else:
        assert slot is not None, "a streaming standby needs its slot"
        _make_standby(datadir, new_primary_conninfo, slot)
    log = log_file or datadir / "log" / "medark-standby.log"
    if log_file is None:
        log.parent.mkdir(mode=0o700, exist_ok=True)
        os.chown(log.parent, *control.owner(datadir))
    done = control.start(datadir, log, timeout, bin_dir)
    if done.returncode != 0:
        raise StandbyNotReady(f"the reinstated standby {datadir} did not start: "
                              f"{_log_reason(log) or control.last_line(done)} (see {log})")
    if slot is not None:  # a repository feed: pg_ctl -w waited until it answers
        _wait_streaming(source, slot, timeout, log)
    return Reinstated(rewound, new_state.timeline, replaced, rewind_error)


def _rebuild(datadir: Path, source: Dsn, kept: dict[str, bytes], slot: str | None,
             timeout: float, bin_dir: str | None, why: str) -> Path:
    """A fresh copy of the new primary (pg_basebackup through `slot`, else a temporary
    one) where pg_rewind could not run. The old directory is renamed aside, never
    deleted: it holds what the old primary wrote after the fork, which a failover
    reported lost. Its own configuration files (`kept`) are put back into the copy. The
    copy takes as long as the database's size asks, and needs the same room again on
    this filesystem."""
    owner = control.owner(datadir)
    aside = datadir.with_name(f"{datadir.name}.medark-replaced-{int(time.time())}")
    os.rename(datadir, aside)
    datadir.mkdir(mode=0o700)
    os.chown(datadir, *owner)
    done = control.run_as_owner(
        datadir, [control.program(aside, "pg_basebackup", bin_dir), "-d",
                  source.without_password(), "-D", str(datadir), "-X", "stream",
                  *(["-S", slot] if slot else []), "-c", "fast"],
        timeout=max(timeout, 3600.0), env=source.environment())
    if done.returncode != 0:
        raise StandbyNotReady(f"{why}; copying {datadir} anew from {source.safe()} failed "
                              f"too: {control.last_line(done)} (the old directory is "
                              f"{aside})")
    for name, data in kept.items():
        atomic_write(datadir / name, data, owner=owner)
    return aside


def _rewind(datadir: Path, source: Dsn, kept: dict[str, bytes], timeout: float,
            bin_dir: str | None, restore_target_wal: bool = False) -> bool:
    """pg_rewind --source-server; a target that crashed is recovered by pg_rewind itself
    (single-user mode) first. The node's own configuration files (`kept`) are put back.
    `restore_target_wal`: the WAL back to the fork may come from the node's
    restore_command (-c)."""
    # pg_rewind (before PG 16) takes the source's timeline from its control file, which a
    # fresh promotion updates only at its first checkpoint: without this it finds "no
    # rewind required" and the node then refuses to follow the new timeline.
    with source.connect() as conn:
        conn.execute("CHECKPOINT")
    # A crashed target is first recovered by pg_rewind in single-user mode, which refuses
    # standby mode: a standby.signal (a failover's guard) is removed meanwhile and put
    # back if the rewind fails, so the directory never starts as a primary. (Not moved
    # aside inside the directory: pg_rewind removes what the source does not have.)
    signal = datadir / "standby.signal"
    guarded = signal.exists()
    if guarded:
        signal.unlink()
    done = control.run_as_owner(
        datadir, [control.program(datadir, "pg_rewind", bin_dir), "-D", str(datadir),
                  "--source-server", source.without_password(), "--progress",
                  *(["--restore-target-wal"] if restore_target_wal else [])],
        timeout=timeout, env=source.environment())
    if guarded and done.returncode != 0:
        atomic_write(signal, b"", owner=control.owner(datadir))
    if done.returncode != 0:
        raise StandbyNotReady(f"pg_rewind of {datadir} from {source.safe()} failed: "
                              f"{control.last_line(done)}")
    owner = control.owner(datadir)
    for name, data in kept.items():
        atomic_write(datadir / name, data, owner=owner)
    return "no rewind required" not in done.stdout + done.stderr


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _make_standby(datadir: Path, conninfo: str, slot: str) -> None:
    """standby.signal, and primary_conninfo/primary_slot_name in postgresql.auto.conf
    (the server is down, so ALTER SYSTEM cannot write them)."""
    # make_conninfo normalises quoting; the password stays (the standby needs it), in a
    # file only the server's user can read, as pg_basebackup -R writes it.
    normalized = pg_conninfo.make_conninfo(conninfo)
    _write_standby_settings(datadir, [f"primary_conninfo = {_quote(normalized)}",
                                      f"primary_slot_name = {_quote(slot)}"])


def _write_standby_settings(datadir: Path, settings: list[str]) -> None:
    """`settings` in place of every REPLACED_SETTINGS line, and standby.signal."""
    _write_settings(datadir, settings)
    atomic_write(datadir / "standby.signal", b"", owner=control.owner(datadir))


def _write_settings(datadir: Path, settings: list[str]) -> None:
    """`settings` in postgresql.auto.conf in place of their old lines and of every
    REPLACED_SETTINGS line (the server is down, so ALTER SYSTEM cannot write them)."""
    auto = datadir / "postgresql.auto.conf"
    lines = auto.read_text().splitlines() if auto.is_file() else []
    replaced = {*REPLACED_SETTINGS, *(line.split("=", 1)[0].strip() for line in settings)}
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in replaced]
    atomic_write(auto, ("\n".join(kept + settings) + "\n").encode(),
                 owner=control.owner(datadir))


def _wait_streaming(source: Dsn, slot: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    state = None
    with source.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT s.state FROM pg_replication_slots r JOIN pg_stat_replication s "
                "ON s.pid = r.active_pid WHERE r.slot_name = %s", (slot,)).fetchone()
            state = None if row is None else row[0]
            if state == "streaming":
                return
            time.sleep(0.05)
    raise StandbyNotReady(f"the reinstated standby is not streaming from {source.safe()} "
                          f"through slot {slot!r} after {timeout:g} s "
                          f"(walsender: {state or 'none'}; see {log})")


def _log_reason(log: Path) -> str | None:
    """The server's last FATAL or PANIC line: why it stopped, where pg_ctl only says it
    stopped waiting."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-50:]
    except OSError:
        return None
    fatal = [line for line in lines if "FATAL:" in line or "PANIC:" in line]
    return fatal[-1].strip() if fatal else None
