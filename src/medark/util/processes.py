"""Whether a process exists on this host (stale locks, a restored server that stopped)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Signal 0 probes without touching the process; EPERM means it exists (another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
