"""A throwaway pgbouncer for tests: its own ini, auth file, socket directory and pidfile in
a temporary directory, a free port, run as the `postgres` OS user (pgbouncer refuses
root), always stopped afterwards.

Settings for a fast switch (see src/medark/sources/postgres/pooler.py): transaction
pooling so PAUSE waits only for in-flight transactions, server_login_retry 0.1 s instead
of 15 s, server_connect_timeout 2 s, query_wait_timeout 120 s (above any switch).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pg_server import as_pg, chown_pg, free_port, wait_for

PGBOUNCER = "/usr/sbin/pgbouncer"


def pgbouncer_bin() -> str | None:
    return shutil.which("pgbouncer") or (PGBOUNCER if os.path.exists(PGBOUNCER) else None)


@dataclass
class PgbouncerServer:
    """pgbouncer listening on 127.0.0.1:port, with one database entry `db` -> host:target."""

    target_port: int
    db: str = "his"
    target_host: str = "127.0.0.1"
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(
        prefix="medark-pgb-", dir="/tmp")))
    port: int = field(default_factory=free_port)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ini(self) -> Path:
        return self.base / "pgbouncer.ini"

    @property
    def pidfile(self) -> Path:
        return self.base / "pgbouncer.pid"

    @property
    def admin_dsn(self) -> str:
        """The admin console, over the unix socket as the admin user."""
        return f"host={self.base} port={self.port} user=postgres dbname=pgbouncer"

    @property
    def client_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={self.db}"

    def write_config(self) -> None:
        settings = {
            "listen_addr": "127.0.0.1", "listen_port": str(self.port),
            "unix_socket_dir": str(self.base), "auth_type": "trust",
            "auth_file": str(self.base / "userlist.txt"), "admin_users": "postgres",
            "pool_mode": "transaction", "default_pool_size": "10", "max_client_conn": "200",
            "server_login_retry": "0.1", "server_connect_timeout": "2",
            "query_wait_timeout": "120", "pidfile": str(self.pidfile),
            "logfile": str(self.base / "pgbouncer.log"), "ignore_startup_parameters":
                "extra_float_digits,options",
            **self.extra,
        }
        self.base.chmod(0o755)
        (self.base / "userlist.txt").write_text('"postgres" ""\n', encoding="utf-8")
        lines = [
            "; throwaway pgbouncer for Medark's tests",
            "[databases]",
            f"{self.db} = host={self.target_host} port={self.target_port} dbname=postgres"
            " user=postgres",
            "",
            "[pgbouncer]",
            *(f"{k} = {v}" for k, v in settings.items()),
            "",
        ]
        self.ini.write_text("\n".join(lines), encoding="utf-8")
        self.ini.chmod(0o640)
        chown_pg(self.base)

    def start(self) -> None:
        self.write_config()
        binary = pgbouncer_bin()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (make debs)")
        done = as_pg([binary, "-d", str(self.ini)])
        if done.returncode != 0:
            raise RuntimeError(f"pgbouncer failed to start: {done.stderr[-300:]}\n{self.log()}")
        wait_for(lambda: self.pid() is not None and os.path.exists(
            self.base / f".s.PGSQL.{self.port}"), timeout=15, what="pgbouncer to listen",
            detail=self.log)

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """SIGTERM (immediate shutdown), then SIGKILL if it lingers; removes the directory."""
        pid = self.pid()
        if pid is not None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.05)
                if not _alive(pid):
                    break
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.base / "pgbouncer.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
    return True
