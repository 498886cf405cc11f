"""mariadb-binlog as a replica: it asks the server for its binary logs and writes them,
byte for byte (--raw), into a spool directory, waiting for more (--stop-never).

It flushes every event as it arrives, and names each file as the server does; when the
server rotates, it closes the file (ending in a Rotate event) and starts the next. This
class only starts, watches and stops the process; archiving is the engine's job.
"""

from __future__ import annotations

import os
import subprocess

from medark.sources.mysql.client import Conn
from medark.util.processes import stop_process


class BinlogReceiver:
    def __init__(self, program: str, conn: Conn, spool: str, replica_id: int | None) -> None:
        self.program = program
        self.conn = conn
        self.spool = spool
        self.replica_id = replica_id
        self.log_path = os.path.join(spool, ".mariadb-binlog.log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    def start(self, first_file: str) -> None:
        """Stream from the start of `first_file` (a file already in the spool is fetched
        again from its start and rewritten in place)."""
        argv = [self.program, *self.conn.args(), "--read-from-remote-server", "--raw",
                "--stop-never", f"--result-file={self.spool.rstrip('/')}/"]
        if self.replica_id is not None:
            argv.append(f"--stop-never-slave-server-id={self.replica_id}")
        argv.append(first_file)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=log,
                                          env=self.conn.environment(), cwd=self.spool)

    def exited(self) -> int | None:
        """The exit status if the process ended (it is then forgotten), else None."""
        if self._proc is None or self._proc.poll() is None:
            return None
        status = self._proc.returncode
        self._proc = None
        return status

    def failure(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        except OSError:
            return "no output"
        line = lines[-1] if lines else "no output"
        return line.replace(self.conn.password, "***") if self.conn.password else line

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
