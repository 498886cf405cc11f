"""Starting and stopping a DR node's database server through its configured `control`:
a data directory with pg_ctl, a systemd unit, or start/stop/status commands."""

from __future__ import annotations

import os

from medark.errors import FencingFailed, MedarkError
from medark.service.dr.apps import run_command, systemctl
from medark.service.dr.nodes import Member, one_line

SERVER_TIMEOUT = 120.0


def stop_server(node: Member, timeout: float = SERVER_TIMEOUT) -> str:
    """Stop the server (pg_ctl -m fast: its standby receives all WAL first); FencingFailed
    when it cannot be stopped, since stopping is how it is fenced."""
    try:
        if node.datadir is not None:
            from medark.sources.postgres.fencing import fence_stop

            fence_stop(node.datadir, timeout, node.bin_dir)
            return f"pg_ctl stop {node.datadir}"
        return _unit_or_command(node, "stop", timeout)
    except FencingFailed:
        raise
    except MedarkError as exc:
        raise FencingFailed(f"cannot stop {node.address}: {one_line(exc)}") from None


def start_server(node: Member, timeout: float = SERVER_TIMEOUT) -> str:
    """Start the server again (a switch that rolls back after stopping it)."""
    if node.datadir is not None:
        from medark.sources.postgres import control as pg_control

        log = node.datadir / "log" / "medark-start.log"
        log.parent.mkdir(mode=0o700, exist_ok=True)
        os.chown(log.parent, *pg_control.owner(node.datadir))
        done = pg_control.start(node.datadir, log, timeout, node.bin_dir)
        if done.returncode != 0:
            raise MedarkError(f"cannot start {node.address}: {pg_control.last_line(done)}")
        return f"pg_ctl start {node.datadir}"
    return _unit_or_command(node, "start", timeout)


def _unit_or_command(node: Member, verb: str, timeout: float) -> str:
    """`verb` (start or stop) through the node's systemd unit, else its command."""
    control = node.node.control
    if control.unit is not None:
        return systemctl(verb, control.unit, timeout)
    run_command(str(getattr(control, verb)), {}, timeout, f"{verb} command of {node.address}")
    return f"{verb} command"
