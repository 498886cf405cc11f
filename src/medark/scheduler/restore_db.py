"""Restore tests of database sources: the newest point of a PostgreSQL or MariaDB source
restored into a throwaway server on a free port of 127.0.0.1, proven, and stopped.

The restore is a `medark pg restore --latest --start` / `medark mysql restore --latest
--start` child — the very commands an operator runs in a disaster, so the measured time is
the time they will meet. PostgreSQL is restored with archiving off: a sandbox must never
push WAL of its own timeline into the production archive.

"Proven" means: the server accepted connections after recovery (the restore command waits
for that), every database answers a query, the server's own structural checks pass
(`pg_amcheck --all`, which verifies every table and B-tree index; `mariadb-check
--all-databases`), and each of the plan's SQL checks returns a true first value.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medark.config.plans import Source
from medark.engine.pg_restore import as_user, socket_dir, stop_server
from medark.sources.mysql.client import find_program as find_mysql_program
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.tools import find_program as find_pg_program
from medark.util.pids import pid_alive

CHECK_TIMEOUT = 6 * 3600.0
STOP_TIMEOUT = 120.0
PG_OS_USER = "postgres"
MYSQL_OS_USER = "mysql"
FALSE_VALUES = {"", "f", "false", "0", "null"}
"""A check query fails when its first value is one of these (psql -At and mariadb
--batch spellings of false, zero and NULL)."""

RunMedark = Callable[[list[str], str], str]
"""Runs a `medark` child (arguments after the command) and returns its standard output;
raises RestoreTestFailed when it fails."""


class RestoreTestFailed(Exception):
    """One reason the restore test did not verify (the job's error)."""


@dataclass
class SandboxServer:
    """A restored database server the restore test started and must stop."""

    kind: str
    data_dir: str
    port: int
    os_user: str | None
    ready_seconds: float
    major: int = 0
    pid: int | None = None
    socket: str = ""
    database: str = "postgres"
    checked: dict[str, Any] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """What the plan's check commands use to reach this server."""
        if self.kind == "postgres":
            return {"PGHOST": socket_dir(self.data_dir), "PGPORT": str(self.port),
                    "PGDATABASE": self.database}
        return {"MYSQL_UNIX_PORT": self.socket, "MYSQL_TCP_PORT": str(self.port)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def restore_database(source: Source, snapshot: dict[str, Any], target: Path,
                     run_medark: RunMedark, medark: list[str]) -> SandboxServer:
    """Restore `snapshot` (the newest base backup of `source`) and everything archived
    after it into `target`, and start it."""
    port = free_port()
    origin = snapshot.get("source") or {}
    short = snapshot["short_id"]
    if source.type == "postgres":
        user = PG_OS_USER if os.geteuid() == 0 else None
        # restore_command runs medark as the database's OS user: this installation's.
        out = run_medark(["pg", "restore", "--target-dir", str(target), "--latest", "--start",
                          "--port", str(port), "--archive-mode-off",
                          "--medark-command", shlex.join(medark),
                          *_option("--system-id", origin.get("system_id"))],
                         f"restoring PostgreSQL from {short}")
        doc = _last_json(out)
        server = SandboxServer("postgres", doc["target_dir"], port, user,
                               float(doc.get("ready_seconds") or 0),
                               major=int(origin.get("server_version_num") or 0) // 10000,
                               database=Dsn.parse(source.dsn or "").params.get("dbname",
                                                                               "postgres"))
        return server
    user = MYSQL_OS_USER if os.geteuid() == 0 else None
    # A backup taken with binary logging off has nothing to replay: test it as it is.
    goal = "--latest" if origin.get("binlog_file") else "--backup-only"
    out = run_medark(["mysql", "restore", "--target-dir", str(target), goal, "--start",
                      "--port", str(port), *_option("--server", origin.get("archive_id"))],
                     f"restoring MariaDB from {short}")
    doc = _last_json(out)
    return SandboxServer("mariadb", doc["target_dir"], port, user,
                         float(doc.get("ready_seconds") or 0), pid=doc.get("pid"),
                         socket=str(doc.get("socket") or ""), database="")


def _option(flag: str, value: object) -> list[str]:
    return [flag, str(value)] if value else []


def _last_json(out: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            doc: dict[str, Any] = json.loads(line)
            return doc
    raise RestoreTestFailed("the restore printed no result")


def verify_database(server: SandboxServer, queries: list[str]) -> None:
    """Every database answers, the structural check passes, every query is true."""
    if server.kind == "postgres":
        _verify_postgres(server, queries)
    else:
        _verify_mariadb(server, queries)


def stop_database(server: SandboxServer) -> None:
    if server.kind == "postgres":
        stop_server(server.data_dir, server.os_user, server.major or 15, timeout=STOP_TIMEOUT)
        return
    if server.pid is None or not pid_alive(server.pid):
        return
    os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid_alive(server.pid):
        if time.monotonic() > deadline:
            os.kill(server.pid, signal.SIGKILL)
            break
        time.sleep(0.1)


def stop_leftover(kind: str, target: Path) -> None:
    """A server a failed restore left running on `target` (PostgreSQL's pid file)."""
    if kind == "postgres" and (target / "postmaster.pid").exists():
        user = PG_OS_USER if os.geteuid() == 0 else None
        stop_server(str(target), user, 15, timeout=STOP_TIMEOUT)


# ---- PostgreSQL --------------------------------------------------------------------------


def _pg(server: SandboxServer, program: str, args: list[str], what: str) -> str:
    path = find_pg_program(program, server.major or None)
    argv = as_user([path, "-h", socket_dir(server.data_dir), "-p", str(server.port), *args],
                   server.os_user)
    return _run(argv, what)


def _psql(server: SandboxServer, database: str, query: str, what: str) -> str:
    return _pg(server, "psql", ["-d", database, "-AtX", "-v", "ON_ERROR_STOP=1", "-c", query],
               what)


def _verify_postgres(server: SandboxServer, queries: list[str]) -> None:
    listing = _psql(server, "postgres", "SELECT datname FROM pg_database WHERE datallowconn "
                    "ORDER BY datname", "listing the restored databases")
    databases = [name for name in listing.splitlines() if name]
    relations = 0
    for name in databases:
        relations += int(_psql(server, name, "SELECT count(*) FROM pg_class",
                               f"querying database {name}").strip() or 0)
    # Heap and B-tree checks of every relation of every database; amcheck is installed
    # where missing (the sandbox is thrown away).
    _pg(server, "pg_amcheck", ["--all", "--install-missing", "-d", "postgres"],
        "pg_amcheck")
    for query in queries:
        _expect_true(_psql(server, server.database, query, f"check {query!r}"), query)
    server.checked = {"databases": len(databases), "relations": relations, "amcheck": "passed",
                      "queries": len(queries)}


# ---- MariaDB -----------------------------------------------------------------------------


def _mariadb(server: SandboxServer, names: tuple[str, ...], args: list[str], what: str) -> str:
    argv = [find_mysql_program(*names), "--no-defaults", f"--socket={server.socket}",
            "--user=root", *args]
    return _run(argv, what)


def _verify_mariadb(server: SandboxServer, queries: list[str]) -> None:
    listing = _mariadb(server, ("mariadb", "mysql"), ["--batch", "--skip-column-names", "-e",
                                                     "SHOW DATABASES"],
                       "listing the restored databases")
    databases = [name for name in listing.splitlines() if name]
    report = _mariadb(server, ("mariadb-check", "mysqlcheck"), ["--all-databases", "--check"],
                      "mariadb-check")
    problems = _check_problems(report)
    if problems:
        raise RestoreTestFailed(f"mariadb-check: {problems[0]}")
    tables = sum(1 for line in report.splitlines() if re.search(r"\sOK$", line))
    for query in queries:
        out = _mariadb(server, ("mariadb", "mysql"),
                       ["--batch", "--skip-column-names", "-e", query], f"check {query!r}")
        _expect_true(out, query)
    server.checked = {"databases": len(databases), "tables": tables,
                      "mariadb_check": "passed", "queries": len(queries)}


def _check_problems(report: str) -> list[str]:
    """mariadb-check's lines for a table that is not OK: `error : ...` or a `status`
    other than OK."""
    problems = []
    for line in report.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and (key == "error" or (key == "status" and value.strip() != "OK")):
            problems.append(line.strip())
    return problems


# ---- shared ------------------------------------------------------------------------------


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RestoreTestFailed(f"{what}: {exc}") from None
    if done.returncode != 0:
        tail = [ln for ln in (done.stderr or done.stdout).strip().splitlines() if ln.strip()]
        raise RestoreTestFailed(f"{what} exited {done.returncode}"
                                + (f": {tail[-1].strip()}" if tail else ""))
    return done.stdout


def _expect_true(out: str, query: str) -> None:
    first = out.strip().splitlines()[0].split("\t")[0] if out.strip() else ""
    if first.strip().lower() in FALSE_VALUES:
        raise RestoreTestFailed(f"check {query!r} returned {first or 'no rows'!r} on the "
                                "restored database")
