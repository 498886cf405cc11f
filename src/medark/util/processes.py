"""Whether a process exists on this host (stale locks, a restored server that stopped)."""

from __future__ import annotations

import os
import subprocess
import threading
from typing import IO


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
