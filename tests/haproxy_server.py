"""A throwaway HAProxy for tests: its config and admin socket in a temporary directory, a
`mode tcp` frontend on a free port of 127.0.0.1, one backend with two servers (the second
`backup`, so all traffic first goes to the first), run in the foreground as a subprocess
and always stopped afterwards.

NameServer is the tiny TCP server behind it: it writes its name to every connection and
keeps it open until the client leaves, so a test sees which server HAProxy sent it to and
can hold a session across a switch.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pg_server import free_port, wait_for


def haproxy_bin() -> str | None:
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")


class NameServer:
    """Answers its name on 127.0.0.1:port to every connection, then holds it open."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(self.name.encode() + b"\n")
            while conn.recv(4096):
                pass

    def close(self) -> None:
        self._listener.close()


def ask(port: int, timeout: float = 5.0) -> str:
    """Connect to 127.0.0.1:port and return the name the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        return read_line(conn)


def read_line(conn: socket.socket) -> str:
    """One line from `conn` (empty when it closes first)."""
    data = b""
    while not data.endswith(b"\n") and (chunk := conn.recv(1)):
        data += chunk
    return data.decode(errors="replace").strip()


@dataclass
class HaproxyServer:
    """HAProxy on 127.0.0.1:port; backend `backend` holds `first` -> first_port and
    `second` -> second_port (backup)."""

    first_port: int
    second_port: int
    backend: str = "db"
    first: str = "s1"
    second: str = "s2"
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(
        prefix="medark-haproxy-", dir="/tmp")))
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    """A second admin socket, on TCP: ipv4@127.0.0.1:admin_port."""
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.base / "admin.sock")

    @property
    def operator_socket(self) -> str:
        """An admin socket at level operator: it may look, not change."""
        return str(self.base / "operator.sock")

    @property
    def config(self) -> Path:
        return self.base / "haproxy.cfg"

    def write_config(self) -> None:
        self.config.write_text("\n".join([
            "# throwaway haproxy for Medark's tests",
            "global",
            f"    stats socket {self.socket} mode 600 level admin",
            f"    stats socket ipv4@127.0.0.1:{self.admin_port} level admin",
            f"    stats socket {self.operator_socket} mode 600 level operator",
            "    stats timeout 10s",
            "    maxconn 200",
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 30s",
            "frontend fe",
            f"    bind 127.0.0.1:{self.port}",
            f"    default_backend {self.backend}",
            f"backend {self.backend}",
            f"    server {self.first} 127.0.0.1:{self.first_port}",
            f"    server {self.second} 127.0.0.1:{self.second_port} backup",
            "",
        ]), encoding="utf-8")

    def start(self) -> None:
        self.write_config()
        binary = haproxy_bin()
        if binary is None:
            raise RuntimeError("haproxy is not installed (make debs)")
        log = (self.base / "haproxy.log").open("wb")
        self._proc = subprocess.Popen([binary, "-db", "-f", str(self.config)],
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        wait_for(self._ready, timeout=15, what="haproxy to listen", detail=self.log)

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"haproxy exited {self._proc.returncode}: {self.log()}")
        if not Path(self.socket).exists():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; removes the directory."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.base / "haproxy.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""
