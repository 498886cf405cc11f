"""The server a restore builds and replays into: a MariaDB data directory prepared from a
backup, started twice.

First privately, to replay: no network (--skip-networking), a socket inside the data
directory, no privilege checks (--skip-grant-tables, so no password of the restored server
is needed) and no event scheduler (scheduled events must not change data between replayed
transactions). The replaying session first runs FLUSH PRIVILEGES, which loads the grant
tables so that replayed CREATE USER/GRANT statements work, and keeps its own rights. Then,
with `start`, normally: grants enforced, on the requested port of 127.0.0.1.

Servers run as the database's OS user when we are root (mariadbd refuses root).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterable
from typing import Any

from medark.errors import CommandFailed

CONFIG = "medark-server.cnf"
SERVER_LOG = "medark-server.log"
SOCKET = "mysqld.sock"


def run_as(user: str | None) -> dict[str, Any]:
    """subprocess keyword arguments that run a child as `user` when we are root."""
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["no output"])[-1][-300:]


def feed(argv: list[str], chunks: Iterable[bytes], what: str, **kwargs: Any) -> None:
    """Run `argv` with `chunks` on its standard input; CommandFailed unless it exits 0."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    finally:
        stderr = proc.stderr.read().decode("utf-8", "replace")
        status = proc.wait()
    if status != 0:
        raise CommandFailed(f"{what} failed: {_last_line(stderr)}")


def run(argv: list[str], what: str, timeout: float, **kwargs: Any) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False, **kwargs)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{what} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        raise CommandFailed(f"{what} failed: {_last_line(done.stderr or done.stdout)}")


def backup_settings(text: str) -> list[str]:
    """The [mysqld] lines of mariadb-backup's backup-my.cnf: the InnoDB geometry (page
    size, log and undo layout) the copied files need."""
    lines, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == "[mysqld]"
        elif inside and line and not line.startswith("#"):
            lines.append(line)
    return lines


def write_config(data_dir: str, settings: list[str], port: int | None) -> str:
    """The restored server's own option file (read with --defaults-file, so nothing from
    /etc/mysql leaks in); review it before serving production traffic."""
    path = os.path.join(data_dir, CONFIG)
    body = ["# Written by medark mysql restore.", "[mysqld]", *settings,
            f"datadir={data_dir}", f"socket={os.path.join(data_dir, SOCKET)}",
            f"pid-file={os.path.join(data_dir, 'mysqld.pid')}",
            f"log-error={os.path.join(data_dir, SERVER_LOG)}",
            "bind-address=127.0.0.1", "max_allowed_packet=1G", "skip-slave-start"]
    if port is not None:
        body.append(f"port={port}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(body) + "\n")
    os.chmod(path, 0o644)  # mariadbd ignores world-writable option files
    return path


class RestoreServer:
    """mariadbd on a restored data directory."""

    def __init__(self, mariadbd: str, admin: str, data_dir: str, user: str | None) -> None:
        self.mariadbd = mariadbd
        self.admin = admin
        self.data_dir = data_dir
        self.user = user
        self.socket = os.path.join(data_dir, SOCKET)
        self.log = os.path.join(data_dir, SERVER_LOG)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, private: bool, timeout: float) -> None:
        argv = [self.mariadbd, f"--defaults-file={os.path.join(self.data_dir, CONFIG)}"]
        if private:
            argv += ["--skip-networking", "--skip-grant-tables", "--event-scheduler=DISABLED"]
        # A new session: the final server outlives this command and its terminal.
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True, cwd=self.data_dir,
                                      env=dict(os.environ, TZ="UTC"), **run_as(self.user))
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        argv = [self.admin, "--no-defaults", f"--socket={self.socket}", "--connect-timeout=5",
                "ping"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise CommandFailed(f"the restored server stopped while starting: "
                                    f"{self.last_error()} (see {self.log})")
            done = subprocess.run(argv, capture_output=True, check=False, timeout=60)
            if done.returncode == 0:  # 0 also when access is denied: the server is up
                return
            time.sleep(0.3)
        raise CommandFailed(f"the restored server did not start within {timeout:g} s "
                            f"(see {self.log})")

    def stop(self, timeout: float = 300) -> None:
        """A clean shutdown (SIGTERM), so that InnoDB is consistent on disk."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise CommandFailed(f"the restored server did not shut down within {timeout:g} s"
                                ) from None
        self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def last_error(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return "no server log"
        errors = [ln for ln in lines if "[ERROR]" in ln]
        return (errors or lines or ["no server log"])[-1].strip()

    def client(self, program: str, init_command: str | None = None) -> list[str]:
        argv = [program, "--no-defaults", f"--socket={self.socket}", "--user=root",
                "--binary-mode", "--max-allowed-packet=1G"]
        if init_command:
            argv.append(f"--init-command={init_command}")
        return argv

    def load(self, program: str, chunks: Iterable[bytes], what: str) -> None:
        feed(self.client(program), chunks, what)

    def replay(self, binlog: str, program: str, files: list[str], start_position: int,
               stop: str | None, timeout: float) -> None:
        """mariadb-binlog FILES | mariadb: the first file from `start_position`, up to (not
        including) the first event at or after `stop` (UTC, whole seconds)."""
        argv = [binlog, "--no-defaults", f"--start-position={start_position}"]
        if stop:
            argv.append(f"--stop-datetime={stop}")
        env = dict(os.environ, TZ="UTC")
        reader = subprocess.Popen([*argv, *files], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        assert reader.stdout is not None and reader.stderr is not None
        try:
            # LOCAL: not binlogged, where a standby logs what it replays under the
            # original GTIDs (service/mysql_standby.py)
            done = subprocess.run(self.client(program, "FLUSH LOCAL PRIVILEGES"),
                                  stdin=reader.stdout, capture_output=True, timeout=timeout,
                                  check=False, env=env)
        except subprocess.TimeoutExpired:
            reader.kill()
            raise CommandFailed(f"replaying the binary log took over {timeout:g} s") from None
        finally:
            reader.stdout.close()
            reader_err = reader.stderr.read().decode("utf-8", "replace")
            reader_status = reader.wait()
        if reader_status != 0:
            raise CommandFailed(f"mariadb-binlog failed: {_last_line(reader_err)}")
        if done.returncode != 0:
            raise CommandFailed("replaying the binary log failed: "
                                f"{_last_line(done.stderr.decode('utf-8', 'replace'))}")
