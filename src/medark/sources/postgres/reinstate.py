"""Turning an old primary into a standby of the server that replaced it, so the reverse
switch is ready: rewind what it wrote after the fork, point it at the new primary, start
it and wait until it streams."""

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
"""Written anew; a read-only fence left by the switch is lifted (a standby is read-only
anyway, and it must not come back read-only when it is promoted again)."""


@dataclass(frozen=True)
class Reinstated:
    rewound: bool
    """False when pg_rewind found nothing to undo (a clean switch loses no WAL) or the
    timelines had not diverged."""
    timeline: int
    replaced: Path | None = None
    """pg_rewind could not run (the WAL back to the fork recycled, no wal_log_hints):
    the node was copied anew from the new primary, and its old directory kept here."""


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


def reinstate_as_standby(datadir: Path, new_primary_conninfo: str, slot: str,
                         timeout: float = 120.0, bin_dir: str | None = None,
                         log_file: Path | None = None) -> Reinstated:
    """Stop the old primary, pg_rewind it from the new primary when their timelines
    diverged, make it a standby streaming through `slot`, start it, wait for streaming."""
    control.check_datadir(datadir)
    source = Dsn.parse(new_primary_conninfo)
    new_state = node_state(new_primary_conninfo)
    if new_state.role != PRIMARY:
        raise StandbyNotReady(f"{source.safe()} is in recovery: not a primary to follow")
    ensure_slot(source, slot)
    if control.is_running(datadir, bin_dir):
        done = control.stop(datadir, "fast", timeout, bin_dir)
        if done.returncode != 0:
            raise StandbyNotReady(f"cannot stop {datadir}: {control.last_line(done)}")
    old_timeline = int(control.controldata(datadir, bin_dir)["Latest checkpoint's TimeLineID"])
    rewound, replaced = False, None
    if old_timeline != new_state.timeline:
        try:
            rewound = _rewind(datadir, source, timeout, bin_dir)
        except StandbyNotReady as exc:
            replaced = _rebuild(datadir, source, slot, timeout, bin_dir, str(exc))
    _make_standby(datadir, new_primary_conninfo, slot)
    log = log_file or datadir / "log" / "medark-standby.log"
    if log_file is None:
        log.parent.mkdir(mode=0o700, exist_ok=True)
        os.chown(log.parent, *control.owner(datadir))
    done = control.start(datadir, log, timeout, bin_dir)
    if done.returncode != 0:
        raise StandbyNotReady(f"the reinstated standby {datadir} did not start: "
                              f"{control.last_line(done)} (see {log})")
    _wait_streaming(source, slot, timeout, log)
    return Reinstated(rewound, new_state.timeline, replaced)


def _rebuild(datadir: Path, source: Dsn, slot: str, timeout: float, bin_dir: str | None,
             why: str) -> Path:
    """A fresh copy of the new primary (pg_basebackup through `slot`) where pg_rewind
    could not run. The old directory is renamed aside, never deleted: it holds what the
    old primary wrote after the fork, which a failover reported lost. Its own
    configuration files are put back into the copy. The copy takes as long as the
    database's size asks, and needs the same room again on this filesystem."""
    owner = control.owner(datadir)
    kept = {name: (datadir / name).read_bytes() for name in KEPT_CONFIG
            if (datadir / name).is_file()}
    aside = datadir.with_name(f"{datadir.name}.medark-replaced-{int(time.time())}")
    os.rename(datadir, aside)
    datadir.mkdir(mode=0o700)
    os.chown(datadir, *owner)
    done = control.run_as_owner(
        datadir, [control.program(aside, "pg_basebackup", bin_dir), "-d",
                  source.without_password(), "-D", str(datadir), "-X", "stream", "-S", slot,
                  "-c", "fast"], timeout=max(timeout, 3600.0), env=source.environment())
    if done.returncode != 0:
        raise StandbyNotReady(f"{why}; copying {datadir} anew from {source.safe()} failed "
                              f"too: {control.last_line(done)} (the old directory is "
                              f"{aside})")
    for name, data in kept.items():
        atomic_write(datadir / name, data, owner=owner)
    return aside


def _rewind(datadir: Path, source: Dsn, timeout: float, bin_dir: str | None) -> bool:
    """pg_rewind --source-server; a target that crashed is recovered by pg_rewind itself
    (single-user mode) first. The node's own configuration files are put back."""
    kept = {name: (datadir / name).read_bytes() for name in KEPT_CONFIG
            if (datadir / name).is_file()}
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
                  "--source-server", source.without_password(), "--progress"],
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
    owner = control.owner(datadir)
    auto = datadir / "postgresql.auto.conf"
    lines = auto.read_text().splitlines() if auto.is_file() else []
    kept = [line for line in lines
            if line.split("=", 1)[0].strip() not in REPLACED_SETTINGS]
    # make_conninfo normalises quoting; the password stays (the standby needs it), in a
    # file only the server's user can read, as pg_basebackup -R writes it.
    normalized = pg_conninfo.make_conninfo(conninfo)
    kept += [f"primary_conninfo = {_quote(normalized)}",
             f"primary_slot_name = {_quote(slot)}"]
    atomic_write(auto, ("\n".join(kept) + "\n").encode(), owner=owner)
    atomic_write(datadir / "standby.signal", b"", owner=owner)


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
