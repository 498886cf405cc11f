"""Starting and stopping a DR node's database server through its configured `control`:
a data directory with pg_ctl, a systemd unit, or start/stop/status commands."""

from __future__ import annotations

import os

from medark.errors import FencingFailed, MedarkError
from medark.service.dr.apps import run_command
from medark.service.dr.nodes import Member, one_line

SERVER_TIMEOUT = 120.0


def stop_server(node: Member, timeout: float = SERVER_TIMEOUT) -> str:
    """Stop the server (pg_ctl -m fast: its standby receives all WAL first); FencingFailed
    when it cannot be stopped, since stopping is how it is fenced."""
    control = node.node.control
    try:
        if node.datadir is not None:
            from medark.sources.postgres.fencing import fence_stop

            fence_stop(node.datadir, timeout, node.bin_dir)
            return f"pg_ctl stop {node.datadir}"
        if control.unit is not None:
            run_command(f"systemctl stop -- '{control.unit}'", {}, timeout,
                        f"systemctl stop {control.unit}")
            return f"systemctl stop {control.unit}"
        run_command(str(control.stop), {}, timeout, f"stop command of {node.address}")
        return "stop command"
    except FencingFailed:
        raise
    except MedarkError as exc:
        raise FencingFailed(f"cannot stop {node.address}: {one_line(exc)}") from None


def start_server(node: Member, timeout: float = SERVER_TIMEOUT) -> str:
    """Start the server again (a switch that rolls back after stopping it)."""
    control = node.node.control
    if node.datadir is not None:
        from medark.sources.postgres import control as pg_control

        log = node.datadir / "log" / "medark-start.log"
        log.parent.mkdir(mode=0o700, exist_ok=True)
        os.chown(log.parent, *pg_control.owner(node.datadir))
        done = pg_control.start(node.datadir, log, timeout, node.bin_dir)
        if done.returncode != 0:
            raise MedarkError(f"cannot start {node.address}: {pg_control.last_line(done)}")
        return f"pg_ctl start {node.datadir}"
    if control.unit is not None:
        run_command(f"systemctl start -- '{control.unit}'", {}, timeout,
                    f"systemctl start {control.unit}")
        return f"systemctl start {control.unit}"
    run_command(str(control.start), {}, timeout, f"start command of {node.address}")
    return "start command"
