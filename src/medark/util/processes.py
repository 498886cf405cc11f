"""Whether a process exists on this host (stale locks, a restored server that stopped),
and starting Medark's own helper processes."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # multiprocessing at run time only for a helper: not at every start
    from multiprocessing.connection import Connection

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


class StderrReader(threading.Thread):
    """Drains a child's stderr in the background (so a chatty tool never blocks on a full
    pipe while its stdout is being consumed); `text` holds it all once joined."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.stream = stream
        self.text = ""

    def run(self) -> None:
        self.text = self.stream.read().decode("utf-8", "replace")


def start_helper(entry: str) -> tuple[socket.socket, subprocess.Popen[bytes], Connection]:
    """A helper process running `python -c entry` with its end of a socket pair as
    argv[1]: the parent's socket (to shut down), the process, and a Connection over the
    socket. A new interpreter, not a fork of a threaded parent; not multiprocessing's
    spawn either, which would start a resource tracker and re-import __main__. In a
    process group of its own: a terminal's Ctrl-C reaches the parent only, even while the
    helper is still starting (the parent then closes the socket)."""
    ours, theirs = socket.socketpair()
    with theirs:
        process = subprocess.Popen([sys.executable, "-c", entry, str(theirs.fileno())],
                                   pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                   process_group=0)
    from multiprocessing.connection import Connection

    return ours, process, Connection(os.dup(ours.fileno()))


def helper_task(conn: Connection) -> Any:
    """In a helper: its task, the parent's first message; None if the parent closed the
    socket first. Ctrl-C is the parent's to handle (it ends a helper by closing the
    socket), so the helper ignores SIGINT from here on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return conn.recv()
    except EOFError:
        return None
