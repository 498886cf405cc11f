"""The daemon's child processes: started, waited for, and stopped together at shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from medark.scheduler.runner import Step
from medark.util.processes import PARENT_ENV


class Children:
    def __init__(self) -> None:
        self._running: dict[subprocess.Popen[str], bool] = {}
        """Running children, and whether each is a continuous one."""
        self._lock = threading.Lock()
        self._closed = False

    def launch(self, step: Step, continuous: bool = False) -> subprocess.CompletedProcess[str]:
        """Run one step to its end (the runner's Launcher); refused once stopping."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_PASSWORD")}
        with self._lock:
            if self._closed:
                return subprocess.CompletedProcess(step.argv, 130, "",
                                                   "medark: the daemon is shutting down")
            env[PARENT_ENV] = str(os.getpid())  # the child ends with the daemon
            proc = subprocess.Popen(step.argv, env={**env, **step.env}, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self._running[proc] = continuous
        try:
            out, err = proc.communicate()
        finally:
            with self._lock:
                self._running.pop(proc, None)
        return subprocess.CompletedProcess(step.argv, proc.returncode, out, err)

    def count(self) -> int:
        with self._lock:
            return len(self._running)

    def close(self) -> None:
        """No new children from now on."""
        with self._lock:
            self._closed = True

    def launch_continuous(self, step: Step) -> subprocess.CompletedProcess[str]:
        return self.launch(step, continuous=True)

    def terminate(self, continuous: bool = False) -> int:
        """SIGTERM to every running child, or only the continuous ones (a backup stops
        cleanly and leaves nothing a rerun cannot use); how many were signalled."""
        with self._lock:
            running = [p for p, kind in self._running.items() if kind or not continuous]
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return len(running)
