"""Throwaway MariaDB servers for tests: mariadb-install-db in a temporary directory under
/tmp, a free port on 127.0.0.1, run as the `mysql` OS user (mariadbd refuses root), with
ROW binary logging (or none: log_bin=False), always stopped afterwards. The machine's own
server (3306) is never touched: every client call names this server's socket or port.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import Result
from medark_command import MEDARK

MY_USER = "mysql"
BACKUP_USER = "medark"
BACKUP_PASSWORD = "Hosp1tal-backup-pw"
PROGRAMS = ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-binlog", "mariadb-admin",
            "mariadb-dump")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def can_run_servers() -> str | None:
    """None when throwaway servers can run here, else the reason."""
    missing = [p for p in PROGRAMS if _which(p) is None]
    if missing:
        return f"MariaDB programs missing: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "tests start servers as the mysql user, which needs root"
    try:
        pwd.getpwnam(MY_USER)
    except KeyError:
        return "no mysql OS user"
    return None


def have_mariadb_backup() -> bool:
    return _which("mariadb-backup") is not None and _which("mbstream") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chown_mysql(path: Path) -> None:
    entry = pwd.getpwnam(MY_USER)
    for p in [path, *path.rglob("*")]:
        os.lchown(p, entry.pw_uid, entry.pw_gid)


def make_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="medark-my-", dir="/tmp"))
    base.chmod(0o755)
    chown_mysql(base)
    return base


def sql(query: str, *, socket_path: Path | None = None, port: int | None = None) -> str:
    """One query: as root over a socket, or as the backup user over TCP."""
    if socket_path is not None:
        where = [f"--socket={socket_path}", "--user=root"]
        env = dict(os.environ)
    else:
        where = ["--protocol=TCP", "--host=127.0.0.1", f"--port={port}",
                 f"--user={BACKUP_USER}"]
        env = dict(os.environ, MYSQL_PWD=BACKUP_PASSWORD)
    done = subprocess.run(["mariadb", "--no-defaults", *where, "--batch",
                           "--skip-column-names", "-e", query], capture_output=True,
                          text=True, check=False, timeout=120, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"mariadb failed: {done.stderr.strip()}")
    return done.stdout.strip()


def stop_pid(pid: int, timeout: float = 60) -> None:
    """Stop a server we started (by its pid) and wait until it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@dataclass
class MariaServer:
    base: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_bin: bool = True
    """False: binary logging off, as on a server nobody configured for point-in-time
    restore."""

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return self.base / "sock"

    @property
    def dsn(self) -> str:
        return f"mysql://{BACKUP_USER}:{BACKUP_PASSWORD}@127.0.0.1:{self.port}"

    @property
    def tmpdir(self) -> Path:
        """The server's own: bootstraps run side by side by the test workers must not
        meet in /tmp (one removed another's #sql-temptable file there)."""
        return self.base / "tmp"

    def init(self) -> None:
        self.data.mkdir(mode=0o750)
        chown_mysql(self.data)
        self.tmpdir.mkdir(mode=0o700, exist_ok=True)
        chown_mysql(self.tmpdir)
        done = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.data}",
                               f"--user={MY_USER}", "--auth-root-authentication-method=socket",
                               "--skip-test-db", f"--tmpdir={self.tmpdir}"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stderr[-500:]}")

    def start(self) -> None:
        entry = pwd.getpwnam(MY_USER)
        if not self.tmpdir.is_dir():  # a data directory restored rather than initialised
            self.tmpdir.mkdir(mode=0o700)
            chown_mysql(self.tmpdir)
        argv = [_which("mariadbd") or "mariadbd", "--no-defaults", f"--datadir={self.data}",
                f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.socket}",
                *([f"--log-bin={self.base / 'binlog'}"] if self.log_bin else []),
                "--server-id=1", "--binlog-format=ROW", f"--log-error={self.base / 'error.log'}",
                f"--pid-file={self.base / 'pid'}", f"--tmpdir={self.tmpdir}",
                "--skip-name-resolve", "--max-binlog-size=524288",
                "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2"]
        self.proc = subprocess.Popen(argv, user=entry.pw_uid, group=entry.pw_gid,
                                     extra_groups=[], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, TZ="UTC"), cwd=str(self.base))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.socket}",
                                   "ping"], capture_output=True, check=False)
            if done.returncode == 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {self.log()}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"mariadbd did not start: {self.log()}")
        self.root_sql(
            "DROP USER IF EXISTS ''@'localhost'; "
            f"CREATE USER IF NOT EXISTS '{BACKUP_USER}'@'%' IDENTIFIED BY '{BACKUP_PASSWORD}'; "
            f"GRANT ALL ON *.* TO '{BACKUP_USER}'@'%'")

    def root_sql(self, query: str) -> str:
        return sql(query, socket_path=self.socket)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        try:
            return (self.base / "error.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


class Load:
    """Rows inserted continuously (autocommit, ~100/s) by one client session."""

    def __init__(self, server: MariaServer) -> None:
        self.proc = subprocess.Popen(
            ["mariadb", "--no-defaults", f"--socket={server.socket}", "--user=root",
             "--batch"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdin is not None
        n = 0
        while not self._stop:
            n += 1
            self.proc.stdin.write(
                f"INSERT INTO h.load (note) VALUES ('load {n}');\n".encode())
            self.proc.stdin.flush()
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop = True
        self.thread.join(timeout=10)
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        status = self.proc.wait(timeout=60)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        if status != 0:
            raise RuntimeError(f"the load failed: {err}")


@dataclass
class MariaSite:
    """A throwaway server and the repository `medark` backs it up to, for the end-to-end
    modules: `medark` run against that repository (a failure shows the server's log), the
    binlog stream, and the servers a test restored (stopped by its fixture)."""

    server: MariaServer
    repo: Path
    env: dict[str, str]
    restored: list[int] = field(default_factory=list)
    """pids of restored servers, stopped at the end whatever happens."""

    def medark(self, *args: str, check: bool = True, timeout: float = 300,
               repo: Path | None = None, env: dict[str, str] | None = None) -> Result:
        done = subprocess.run([MEDARK, "--repo", str(repo or self.repo), *args],
                              env={**self.env, **(env or {})},
                              capture_output=True, text=True, check=False, timeout=timeout)
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"medark {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr}\nserver log:\n{self.server.log()}")
        return result

    @contextmanager
    def running(self, schema: str) -> Iterator[None]:
        """The server initialised and started, the repository initialised, `schema` run as
        root; at the end, whatever happens, the restored servers and the server stopped and
        the base directory (and those named after it) removed, unless $KEEP_MY."""
        base = self.server.base
        try:
            self.server.init()
            self.server.start()
            self.medark("init")
            self.server.root_sql(schema)
            yield
        finally:
            for pid in self.restored:
                stop_pid(pid)
            self.server.stop()
            if not os.environ.get("KEEP_MY"):
                shutil.rmtree(base, ignore_errors=True)
                for extra in base.parent.glob(base.name + "*"):
                    shutil.rmtree(extra, ignore_errors=True)

    def stream(self) -> subprocess.Popen[str]:
        """`medark mysql binlog-stream` of the server into the repository (--json)."""
        return subprocess.Popen([MEDARK, "--repo", str(self.repo), "mysql", "binlog-stream",
                                 "--dsn", self.server.dsn, "--json", "--interval", "0.2"],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


def stop_stream(stream: subprocess.Popen[str]) -> dict[str, Any]:
    """Stop a MariaSite.stream() as the daemon does (SIGTERM); its summary line."""
    stream.send_signal(signal.SIGTERM)
    out, err = stream.communicate(timeout=60)
    assert stream.returncode == 0, err
    return dict(json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]))
