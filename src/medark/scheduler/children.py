"""The daemon's child processes: started, waited for, and stopped together at shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from medark.scheduler.runner import Step
from medark.util.pids import PARENT_ENV

TIMED_OUT = 124
"""The exit code a launch reports for a child stopped at its timeout (as timeout(1))."""
TERM_WAIT = 10.0
"""Seconds a child stopped at its timeout gets after SIGTERM before SIGKILL."""


class Children:
    def __init__(self) -> None:
        self._running: dict[subprocess.Popen[str], bool] = {}
        """Running children, and whether each is a continuous one."""
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()

    def launch(self, step: Step, continuous: bool = False,
               timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run one step to its end (the runner's Launcher); refused once stopping, except
        to a job admitted before (its grace period is for its remaining steps). With
        `timeout`, a child still running after that many seconds gets SIGTERM (SIGKILL
        after TERM_WAIT more) and the result says it timed out (exit 124)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_PASSWORD")}
        with self._lock:
            if self._closed and not getattr(self._local, "admitted", False):
                return subprocess.CompletedProcess(step.argv, 130, "",
                                                   "medark: the daemon is shutting down")
            env[PARENT_ENV] = str(os.getpid())  # the child ends with the daemon
            # its own process group: a stop reaches what it started too (a dump command,
            # a shell's children), which would otherwise outlive it holding our pipes
            proc = subprocess.Popen(step.argv, env={**env, **step.env}, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
            self._running[proc] = continuous
        try:
            if step.on_output is not None:
                out, err, timed_out = _follow(proc, step.on_output, timeout)
            else:
                try:
                    out, err = proc.communicate(timeout=timeout)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    (out, err), timed_out = _stop(proc), True
            if timed_out:
                return subprocess.CompletedProcess(
                    step.argv, TIMED_OUT, out,
                    f"{err}medark: {step.source} timed out after {timeout:g} s\n")
        finally:
            with self._lock:
                self._running.pop(proc, None)
        return subprocess.CompletedProcess(step.argv, proc.returncode, out, err)

    def count(self) -> int:
        with self._lock:
            return len(self._running)

    @contextmanager
    def job(self) -> Iterator[bool]:
        """Around one job on this thread: True when it may start (its children then start
        even once the daemon is stopping), False when the daemon is already stopping (it
        must not start: no row, no failure, the slot stays open for the catch-up)."""
        with self._lock:
            admitted = not self._closed
        self._local.admitted = admitted
        try:
            yield admitted
        finally:
            self._local.admitted = False

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
                _signal_group(proc, signal.SIGTERM)
        return len(running)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, then SIGKILL if it lingers; what it wrote until then."""
    _signal_group(proc, signal.SIGTERM)
    try:
        return proc.communicate(timeout=TERM_WAIT)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        return proc.communicate()


def _follow(proc: subprocess.Popen[str], on_output: Callable[[str], None],
            timeout: float | None) -> tuple[str, str, bool]:
    """communicate(), but each line of standard output goes to `on_output` as it comes
    (read on threads of their own, so neither pipe fills up); at `timeout` the child is
    stopped as _stop() does. Its output, its errors, and whether it timed out."""
    out: list[str] = []
    err: list[str] = []

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            # a listener's failure must not stop the reading: the child would block
            with contextlib.suppress(Exception):
                on_output(line.rstrip("\n"))

    def read_err() -> None:
        assert proc.stderr is not None
        err.append(proc.stderr.read())

    readers = [threading.Thread(target=read_out, name="child-stdout", daemon=True),
               threading.Thread(target=read_err, name="child-stderr", daemon=True)]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=TERM_WAIT)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    for reader in readers:
        reader.join()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return "".join(out), "".join(err), timed_out


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    """The signal to the child's whole process group (it leads one: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(proc.pid, sig)
