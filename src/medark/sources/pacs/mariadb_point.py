"""A PACS's database point on MariaDB: one InnoDB consistent snapshot whose binlog
position MariaDB reports (`binlog_snapshot_file` / `binlog_snapshot_position`), the
index's file references read in that same snapshot, then FLUSH BINARY LOGS so the file
holding the point is closed and archived (docs/pacs.md, "A group on MariaDB").

medark has no MariaDB driver (sources/mysql/client.py): the transaction is one `mariadb
--batch --unbuffered` session fed statement by statement on its standard input, each
followed by a marker row, so `Session` is a DB-API-like cursor over one connection that
sources/pacs/index.py reads through like any other. Nothing here touches the
repository."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

from medark.errors import DatabasePermission, SourceError
from medark.sources.mysql.client import CONNECT_TIMEOUT, Conn, classify, find_program
from medark.sources.pacs.index import Reference, read_references

_UNESCAPE = {"t": "\t", "n": "\n", "\\": "\\", "0": "\0", "r": "\r", "b": "\b",
             "Z": "\x1a"}


def index_conn(text: str) -> tuple[Conn, str | None]:
    """A MariaDB DSN with the index's database: `mysql://user:pw@host:port/DB` or the
    key=value form with `database=DB` (which the other mysql commands do not take, so it
    is split off here)."""
    if "://" in text:
        database = urlsplit(text).path.strip("/") or None
        return Conn.parse(text), database
    items, database = [], None
    for item in text.split():
        key, sep, value = item.partition("=")
        if sep and key in ("database", "dbname"):
            database = value or None
        else:
            items.append(item)
    return Conn.parse(" ".join(items)), database


def unescape(field: str) -> str | None:
    """One field of `mariadb --batch` output: NULL, or the text with \\t \\n \\\\ undone."""
    if field == "NULL":
        return None
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        ch = field[i]
        if ch == "\\" and i + 1 < len(field):
            out.append(_UNESCAPE.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Session:
    """One `mariadb` client session: statements in, rows out, in order; the connection
    (and so its transaction) lives until close()."""

    def __init__(self, conn: Conn, database: str | None = None,
                 bin_dir: str | None = None) -> None:
        self.conn = conn
        self._marker = f"medark-end-{secrets.token_hex(8)}"
        argv = [find_program("mariadb", "mysql", bin_dir=bin_dir), *conn.args(),
                f"--connect-timeout={CONNECT_TIMEOUT}", "--batch", "--skip-column-names",
                "--unbuffered", *([f"--database={database}"] if database else [])]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=conn.environment(),
                                      text=True, encoding="utf-8", errors="replace")
        self._done = True

    def execute(self, query: Any, params: Any = None) -> None:
        """Send one statement (no parameters: the queries are the index readers' own)."""
        self._drain()
        stdin = self._stdin()
        try:
            stdin.write(f"{str(query).strip().rstrip(';')};\nSELECT '{self._marker}';\n")
            stdin.flush()
        except BrokenPipeError:
            self._fail()
        self._done = False

    def fetchmany(self, size: int = 1000) -> Sequence[tuple[str | None, ...]]:
        out: list[tuple[str | None, ...]] = []
        while not self._done and len(out) < size:
            line = self._stdout().readline()
            if not line:
                self._fail()
            line = line.rstrip("\n")
            if line == self._marker:
                self._done = True
                break
            out.append(tuple(unescape(f) for f in line.split("\t")))
        return out

    def fetchall(self) -> list[tuple[str | None, ...]]:
        rows: list[tuple[str | None, ...]] = []
        while batch := self.fetchmany(10_000):
            rows.extend(batch)
        return rows

    def one(self, query: str) -> tuple[str | None, ...]:
        self.execute(query)
        rows = self.fetchall()
        if not rows:
            raise SourceError(f"{self.conn.safe()}: no answer to {query!r}")
        return rows[0]

    def _drain(self) -> None:
        while not self._done:
            self.fetchmany(10_000)

    def _stdin(self) -> IO[str]:
        assert self._proc.stdin is not None
        return self._proc.stdin

    def _stdout(self) -> IO[str]:
        assert self._proc.stdout is not None
        return self._proc.stdout

    def _fail(self) -> None:
        """The client exited (a failed statement ends a batch session): its error."""
        assert self._proc.stderr is not None
        stderr = self._proc.stderr.read()
        self._proc.wait()
        error = classify(stderr, self.conn, "reading the PACS index")
        if isinstance(error, DatabasePermission):
            raise error
        if "ERROR 1046" in str(error):  # No database selected
            raise SourceError(f"{self.conn.safe()}: no database selected: name the index's "
                              "database in the DSN (mysql://user@host:port/DB)")
        raise (SourceError(f"{self.conn.safe()}: {error}") if "failed:" in str(error)
               else error)

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self._stdin().close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class MariadbPoint:
    file: str
    """binlog_snapshot_file: the binlog holding the end of the snapshot's last commit."""
    position: int
    """binlog_snapshot_position: the offset just past that commit (an event boundary):
    the replay stops there."""
    time: datetime
    """The server's clock (UTC) inside the snapshot."""
    references: list[Reference]
    flushed: bool
    """FLUSH BINARY LOGS closed the point's file (so the stream archives it whole now)."""
    flush_error: str = ""


def take_mariadb_point(conn: Conn, database: str | None, kind: str, root: str,
                       query: str | None, bin_dir: str | None = None) -> MariadbPoint:
    """The point and the references the index holds at it, then a binlog rotation."""
    with Session(conn, database, bin_dir) as session:
        # InnoDB's snapshot and the binlog position of its last commit are taken together
        # (MariaDB blocks commits between the two); both hold for the whole transaction
        session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        session.fetchall()
        session.execute("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        status = {str(row[0]): str(row[1]) for row in session.fetchall() if len(row) > 1}
        file = status.get("Binlog_snapshot_file", "")
        if not file:
            raise SourceError(f"{conn.safe()}: binary logging is off: a MariaDB group's "
                              "point is a binlog position (set log_bin and stream the "
                              "binlogs with `medark mysql binlog-stream`)")
        position = int(status.get("Binlog_snapshot_position") or 0)
        when = datetime.strptime(str(session.one("SELECT UTC_TIMESTAMP(6)")[0]),
                                 "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        references = read_references(session, kind, root, query)
        session.execute("ROLLBACK")
        session.fetchall()
    flushed, error = True, ""
    try:
        with Session(conn, None, bin_dir) as session:
            session.execute("FLUSH BINARY LOGS")
            session.fetchall()
    except (SourceError, DatabasePermission) as exc:
        flushed, error = False, str(exc)
    return MariadbPoint(file, position, when, references, flushed, error)
