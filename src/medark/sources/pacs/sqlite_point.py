"""A PACS's database point on Orthanc's SQLite index (docs/pacs.md, "A group on SQLite").

A running Orthanc holds its index (`IndexDirectory/index`, WAL in `index-wal`) in
SQLite's exclusive locking mode: no other process can read it, not even read-only. So
the point is taken with Orthanc stopped, as Orthanc's own book says to back it up: the
configured stop_command, a copy of the index through SQLite's online backup API (which
reads the WAL's committed pages too: the copy is one self-contained file), then the
start_command, always, even when the copy failed. The references are read from the copy,
so they are exactly what the copied index names. Nothing here touches the repository."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from medark.errors import SourceError
from medark.sources.pacs.index import Reference, read_references
from medark.util import clock

COMMAND_TIMEOUT = 600.0
"""How long stop_command or start_command may take (a PACS finishing its jobs)."""
BUSY_TIMEOUT = 10.0
"""How long the copy waits for the index's lock (a stop_command that returns before the
PACS has exited)."""
SIDE_FILES = ("-wal", "-shm", "-journal")
"""SQLite's files beside a database: never copied or restored beside another state."""


@dataclass
class SqlitePoint:
    copy: str
    """The copy of the index (a temporary file the caller removes)."""
    time: datetime
    """When the copy was taken (the index does not change while the PACS is stopped)."""
    size: int
    references: list[Reference]
    stopped: bool
    """The PACS was stopped for the copy (stop_command ran)."""
    start_error: str = ""
    """start_command failed: the point is good, but the PACS may be down."""


def take_sqlite_point(index: str, kind: str, root: str, query: str | None, *,
                      stop_command: str | None = None, start_command: str | None = None,
                      tmp_dir: str | None = None, busy_timeout: float = BUSY_TIMEOUT,
                      command_timeout: float = COMMAND_TIMEOUT) -> SqlitePoint:
    """Stop the PACS, copy its index, start it again; then read the copy's references."""
    if not os.path.isfile(index):
        raise SourceError(f"{index}: no such file (a sqlite source's path is the index "
                          "file itself, e.g. /var/lib/orthanc/db/index)")
    if stop_command:
        failed = run_command("stop_command", stop_command, command_timeout)
        if failed:  # nothing else is done: the PACS is in whatever state the command left
            raise SourceError(f"{failed}; no copy was taken and start_command was not run")
    if tmp_dir:
        os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
    fd, copy = tempfile.mkstemp(prefix="medark-index-", suffix=".sqlite", dir=tmp_dir)
    os.close(fd)
    copy_error: SourceError | None = None
    start_error = ""
    try:
        try:
            when = _copy(index, copy, busy_timeout, bool(stop_command))
        except SourceError as exc:
            copy_error = exc
        finally:  # always: a PACS stopped for a backup must come back
            if start_command:
                start_error = run_command("start_command", start_command, command_timeout)
        if copy_error is not None:
            raise SourceError(str(copy_error) + (f"; and {start_error}: the PACS may be "
                                                 "down, start it by hand" if start_error
                                                 else "")) from None
        references = sqlite_index_references(copy, kind, root, query, what=index)
        return SqlitePoint(copy, when, os.path.getsize(copy), references, bool(stop_command),
                           start_error)
    except BaseException:
        _remove(copy)
        raise


def _copy(index: str, copy: str, busy_timeout: float, stopped: bool) -> datetime:
    """The index (with its WAL's committed pages) into `copy`, by SQLite's backup API.
    Opened read-write (never created): a read-only connection leaves `-wal` and `-shm`
    files of its own beside the index (owned by whoever runs medark, which may keep the
    PACS from opening its index), while the last read-write connection to close removes
    them. It writes nothing but what SQLite itself does on opening: recovering a WAL the
    PACS left (killed), as the PACS would on its next start."""
    uri = f"{Path(index).absolute().as_uri()}?mode=rw"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=busy_timeout,
                                     isolation_level=None)) as src, \
                closing(sqlite3.connect(copy)) as dst:
            # A read transaction first: its shared lock is waited for (busy_timeout) and
            # then held through the copy, since Python's backup() retries a locked source
            # forever.
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchall()
            src.backup(dst)
            when = clock.now()
            src.execute("COMMIT")
            return when
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            if stopped:
                raise SourceError(f"{index} is still locked after stop_command: make it "
                                  "wait until the PACS has exited (e.g. systemctl stop)"
                                  ) from None
            raise SourceError(f"{index} is locked: Orthanc holds its SQLite index alone "
                              "while it runs; set stop_command and start_command on the "
                              "sqlite source (e.g. \"systemctl stop orthanc\" and "
                              "\"systemctl start orthanc\"), or --stop-command and "
                              "--start-command") from None
        raise SourceError(f"cannot copy the SQLite index {index}: {exc}") from None
    except sqlite3.Error as exc:
        raise SourceError(f"cannot copy the SQLite index {index}: {exc}") from None


def sqlite_index_references(index_file: str, kind: str, root: str, query: str | None,
                            what: str | None = None) -> list[Reference]:
    """The references of a SQLite index (a copy, or a restored one), opened read-only."""
    uri = f"{Path(index_file).absolute().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            return read_references(conn.cursor(), kind, root, query)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read the {kind} index in {what or index_file}: {exc} "
                          "(is it the PACS's index file?)") from None


def run_command(what: str, command: str, timeout: float) -> str:
    """Run a configured shell command; "" when it succeeded, else what went wrong. Its
    output goes to a file, not a pipe: a command that starts a daemon leaves it running
    with our pipe open."""
    with tempfile.TemporaryFile() as out:
        try:
            done = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return f"{what} {command!r} did not finish within {timeout:g} s"
        except OSError as exc:
            return f"{what} {command!r} could not run: {exc.strerror}"
        if done.returncode == 0:
            return ""
        out.seek(0)
        tail = out.read()[-4000:].decode("utf-8", "replace").strip().splitlines()
    return f"{what} {command!r} exited {done.returncode}" + (f": {tail[-1]}" if tail else "")


def _remove(path: str) -> None:
    with suppress(OSError):
        os.unlink(path)
