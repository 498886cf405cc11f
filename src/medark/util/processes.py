"""Starting and stopping processes: Medark's own helpers, and the tools it runs
(whether a process exists: util/pids)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # multiprocessing at run time only for a helper: not at every start
    from multiprocessing.connection import Connection


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


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C waits until the block is done: a helper being started is known to its
    parent before KeyboardInterrupt can unwind it, so the parent stops it and waits for
    it instead of exiting with the helper still running. Only the main thread is ever
    interrupted, and only it may set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        if pending:
            signal.raise_signal(signal.SIGINT)


def helper_task(conn: Connection) -> Any:
    """In a helper: its task, the parent's first message; None if the parent closed the
    socket first. Ctrl-C is the parent's to handle (it ends a helper by closing the
    socket), so the helper ignores SIGINT from here on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return conn.recv()
    except EOFError:
        return None
