"""Whether a process exists on this host (stale locks, a restored server that stopped)."""

from __future__ import annotations

import os
import subprocess


def pid_alive(pid: int) -> bool:
    """Signal 0 probes without touching the process; EPERM means it exists (another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaps it either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
