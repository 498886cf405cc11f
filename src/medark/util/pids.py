"""Whether a process exists on this host (stale locks, a restored server that stopped),
and a daemon's child ending with it. Apart from util/processes (which starts and stops
processes) because every repository command asks the first: subprocess and socket are
not imported for it."""

from __future__ import annotations

import os
import signal
import sys

PARENT_ENV = "MEDARK_PARENT_PID"
"""Set by the daemon for its children: the pid they must not outlive."""
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A daemon's child gets SIGTERM when the daemon dies (Linux's parent-death signal), so
    a job the next daemon marks failed cannot still finish a snapshot behind it; SIGTERM
    stops a command cleanly. Not inherited by what the child starts in turn."""
    expected = os.environ.pop(PARENT_ENV, None)
    if not expected or not expected.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(expected):  # the daemon died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    """Signal 0 probes without touching the process; EPERM means it exists (another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
