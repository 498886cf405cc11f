"""Talking to a MariaDB/MySQL server through its own command-line programs.

No Python driver is a dependency: queries run through `mariadb --batch`, backups through
mariadb-backup or mariadb-dump, streaming through mariadb-binlog. Option files (~/.my.cnf,
/etc/mysql) still apply, so a [client] password there works as usual. A password given in
the DSN never reaches argv, logs or error messages: it travels in MYSQL_PWD, in the child's
environment only, and errors show `Conn.safe()`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

from medark.errors import CommandFailed, DatabasePermission, DatabaseUnavailable, UsageError

CONNECT_TIMEOUT = 10
_KEYS = {"host", "port", "user", "password", "socket"}
# Client errors that mean "cannot reach or log in" (2002 socket, 2003 TCP, 2005 unknown
# host, 2013 lost, 1045 bad credentials), and server errors that mean "lacks a privilege".
_UNAVAILABLE = re.compile(r"ERROR (200[2-6]|2013|1045|1130|1049)\b|Can't connect|Access denied "
                          r"for user|Unknown (MySQL|MariaDB) server host")
_PERMISSION = re.compile(r"ERROR (1227|1044|1142|1143|1370)\b|privilege")


@dataclass(frozen=True)
class Conn:
    """Where and as whom to connect; unset fields are left to the option files."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    socket: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> Conn:
        """`mysql://user:pw@host:port/?socket=/path` (or mariadb://) or `key=value ...`
        with the keys host, port, user, password, socket."""
        if "://" in text:
            parts = urlsplit(text)
            if parts.scheme not in ("mysql", "mariadb"):
                raise UsageError(f"invalid --dsn: scheme {parts.scheme!r} (use mysql://)")
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            try:
                port = parts.port
            except ValueError:
                raise UsageError("invalid --dsn: the port is not a number") from None
            return cls(parts.hostname or None, port,
                       unquote(parts.username) if parts.username else None,
                       query.get("socket"),
                       unquote(parts.password) if parts.password is not None else None)
        fields: dict[str, str] = {}
        for item in text.split():
            key, sep, value = item.partition("=")
            if not sep or key not in _KEYS:
                raise UsageError(f"invalid --dsn item {key!r}: use {', '.join(sorted(_KEYS))}")
            fields[key] = value
        return cls(fields.get("host"), _port(fields.get("port")), fields.get("user"),
                   fields.get("socket"), fields.get("password"))

    def override(self, host: str | None, port: int | None, user: str | None,
                 socket: str | None) -> Conn:
        return replace(self, host=host or self.host, port=port or self.port,
                       user=user or self.user, socket=socket or self.socket)

    def args(self) -> list[str]:
        """Connection options for any MariaDB client program (no password)."""
        out = []
        if self.host:
            out.append(f"--host={self.host}")
        if self.port:
            out.append(f"--port={self.port}")
        if self.user:
            out.append(f"--user={self.user}")
        if self.socket:
            out.append(f"--socket={self.socket}")
        if self.host and self.host != "localhost" and not self.socket:
            out.append("--protocol=TCP")
        return out

    def environment(self) -> dict[str, str]:
        """For client programs: the password (if any) by environment, never by argv; TZ=UTC
        so that every time the tools print or parse is UTC."""
        env = dict(os.environ, TZ="UTC")
        if self.password is not None:
            env["MYSQL_PWD"] = self.password
        return env

    def safe(self) -> str:
        where = self.socket or f"{self.host or 'localhost'}:{self.port or 3306}"
        return f"{self.user + '@' if self.user else ''}{where}"


def _port(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise UsageError(f"invalid port {text!r}")
    return int(text)


def find_program(*names: str, bin_dir: str | None = None) -> str:
    """The first of `names` found in `bin_dir` (if given) or on PATH (MariaDB's names
    first, then MySQL's)."""
    for name in names:
        path = os.path.join(bin_dir, name) if bin_dir else shutil.which(name)
        if path and os.access(path, os.X_OK):
            return path
    raise UsageError(f"{names[0]} not found in {bin_dir or 'PATH'} (install the MariaDB "
                     "client and backup programs, or pass --mysql-bin DIR)")


def have_program(name: str, bin_dir: str | None = None) -> bool:
    try:
        find_program(name, bin_dir=bin_dir)
    except UsageError:
        return False
    return True


def classify(stderr: str, conn: Conn, what: str) -> Exception:
    """One line for a failed client program: unavailable (20), permission (21) or other."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    message = (errors or lines or ["no output"])[-1]
    if conn.password:
        message = message.replace(conn.password, "***")
    if _UNAVAILABLE.search(message):
        return DatabaseUnavailable(f"cannot connect to {conn.safe()}: {message}")
    if _PERMISSION.search(message):
        return DatabasePermission(f"{conn.safe()}: {message} (grant the privileges the "
                                  "backup user needs: RELOAD, PROCESS, LOCK TABLES, "
                                  "BINLOG MONITOR, REPLICATION SLAVE, SELECT)")
    return CommandFailed(f"{what} failed: {message}")


def query(conn: Conn, sql: str, bin_dir: str | None = None) -> list[list[str]]:
    """Rows of one statement, as text (tab-separated batch output, NULL as 'NULL')."""
    argv = [find_program("mariadb", "mysql", bin_dir=bin_dir), *conn.args(),
            f"--connect-timeout={CONNECT_TIMEOUT}", "--batch", "--skip-column-names",
            "--raw", "-e", sql]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=conn.environment(),
                              stdin=subprocess.DEVNULL, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise DatabaseUnavailable(f"{conn.safe()} did not answer within 120 s") from None
    if done.returncode != 0:
        raise classify(done.stderr, conn, "query")
    return [line.split("\t") for line in done.stdout.splitlines()]


@dataclass(frozen=True)
class ServerIdentity:
    server_id: int
    server_uuid: str | None
    """MySQL's @@server_uuid; MariaDB has none."""
    version: str
    log_bin: bool
    binlog_basename: str | None
    """@@log_bin_basename's file part (binlog files are <basename>.NNNNNN)."""
    binlog_format: str

    @property
    def archive_id(self) -> str:
        """Names the server's binlog archive: its UUID (MySQL), else its server_id."""
        return self.server_uuid or str(self.server_id)


def identify(conn: Conn, bin_dir: str | None = None) -> ServerIdentity:
    rows = query(conn, "SELECT @@server_id, @@version, @@log_bin, "
                       "IFNULL(@@log_bin_basename, ''), @@binlog_format; "
                       "SHOW GLOBAL VARIABLES LIKE 'server_uuid'", bin_dir)
    if not rows or len(rows[0]) < 5:
        raise DatabaseUnavailable(f"{conn.safe()}: unexpected answer to the identity query")
    server_id, version, log_bin, basename, fmt = rows[0][:5]
    uuid = rows[1][1] if len(rows) > 1 and len(rows[1]) > 1 and rows[1][1] else None
    return ServerIdentity(int(server_id), uuid, version, log_bin in ("1", "ON"),
                          os.path.basename(basename) or None, fmt)
