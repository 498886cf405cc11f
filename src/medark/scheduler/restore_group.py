"""Restore tests of a consistency group (docs/pacs.md): the plan's newest group point
restored as a pair, as an operator restores it in a disaster, and proven to agree.

`medark group restore --plan PLAN --group NAME --start` brings the index database to the
point's LSN in a throwaway server on a free port (archiving off) and the files from the
group's tree under a throwaway directory; `medark group check --dsn --files-root` then
reads the restored index's file references and compares them with the restored files.
Every index row must have its file; files without a row (written after the point) are
counted, not failed. The pair's time, from the start of the restore to the check's
answer, is its RTO; the restored server then goes through the same checks as any
restored database (restore_db.verify_database).

A point on Orthanc's SQLite index restores without a server: `group restore` writes the
index file into the throwaway directory and `group check --index-sqlite` reads it.

A point on MariaDB restores into a server started on a free port (the backup, the binlogs
replayed to the point's position); `group check --dsn mysql://USER@127.0.0.1:PORT/DB`
connects as the source DSN's user (its password, if any, in MYSQL_PWD)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from medark.config.plans import Source
from medark.engine.pg_restore import socket_dir
from medark.scheduler.restore_db import (
    MYSQL_OS_USER,
    PG_OS_USER,
    RestoreTestFailed,
    SandboxServer,
    free_port,
    stop_database,
)
from medark.scheduler.runner import Launcher, Step
from medark.sources.pacs.mariadb_point import index_conn
from medark.sources.postgres.server import Dsn
from medark.util import clock

GROUP_INCOMPLETE = 35
"""`group check`'s exit when an index row has no file (errors.GroupIncomplete)."""


@dataclass(frozen=True)
class RestoredGroup:
    server: SandboxServer | None
    """None for a point on SQLite (a file, no server)."""
    point: str
    files: int
    bytes: int
    evidence: dict[str, Any]


def restore_group(plan: str, name: str, database: Source, files: Source, data_dir: Path,
                  files_target: Path, env: dict[str, str], launcher: Launcher,
                  medark: list[str]) -> RestoredGroup:
    """Restore the plan's newest point of group `name` (the database into `data_dir`,
    the files under `files_target`) and check the pair."""
    t0 = clock.monotonic()
    if database.type == "sqlite":
        return _restore_sqlite(plan, name, files, data_dir, files_target, env, launcher,
                               medark, t0)
    if database.type == "mariadb":
        return _restore_mariadb(plan, name, database, files, data_dir, files_target, env,
                                launcher, medark, t0)
    port = free_port()
    out = _medark(launcher, [*medark, "--json", "group", "restore", "--plan", plan,
                             "--group", name, "--target-dir", str(data_dir),
                             "--files-target", str(files_target), "--start", "--port",
                             str(port), "--archive-mode-off",
                             "--medark-command", shlex.join(medark)],
                  env, f"restoring group {name}")
    doc = _last_json(out.stdout, f"restoring group {name}")
    db, restored = doc["database"], doc["files"]
    source_dsn = Dsn.parse(database.dsn or "")
    server = SandboxServer(
        "postgres", str(db["target_dir"]), port, PG_OS_USER if os.geteuid() == 0 else None,
        float(db.get("ready_seconds") or 0), major=_major(db.get("backup") or {}),
        database=source_dsn.params.get("dbname", "postgres"))
    check = _check(doc, files, server, source_dsn, env, launcher, medark)
    evidence = _evidence(name, doc, check, t0)
    # files: the regular files under the restored root (the restore also counts the
    # directories above it)
    return RestoredGroup(server, str(doc["snapshot_id"]), int(check["files"]),
                         int(restored.get("bytes_restored") or 0), evidence)


def _restore_sqlite(plan: str, name: str, files: Source, data_dir: Path, files_target: Path,
                    env: dict[str, str], launcher: Launcher, medark: list[str], t0: float
                    ) -> RestoredGroup:
    """The point's SQLite index into `data_dir`, its files under `files_target`, then
    `group check --index-sqlite` of that pair."""
    what = f"restoring group {name}"
    doc = _last_json(_medark(launcher, [*medark, "--json", "group", "restore", "--plan", plan,
                                        "--group", name, "--target-dir", str(data_dir),
                                        "--files-target", str(files_target)], env,
                             what).stdout, what)
    query = ["--index-query", files.index_query] if files.index_query else []
    what = f"checking the restored group {name}"
    check = _last_json(_medark(
        launcher, [*medark, "--json", "group", "check", str(doc["snapshot_id"]),
                   "--index-sqlite", str(doc["database"]["index"]), "--files-root",
                   str(doc["files_root"]), *query], env, what,
        accept=(GROUP_INCOMPLETE,)).stdout, what)
    evidence = _evidence(name, doc, check, t0)
    return RestoredGroup(None, str(doc["snapshot_id"]), int(check["files"]),
                         int(doc["files"].get("bytes_restored") or 0)
                         + int(doc["database"].get("bytes") or 0), evidence)


def _restore_mariadb(plan: str, name: str, database: Source, files: Source, data_dir: Path,
                     files_target: Path, env: dict[str, str], launcher: Launcher,
                     medark: list[str], t0: float) -> RestoredGroup:
    """The point's MariaDB into a server on a free port, its files under `files_target`,
    then `group check` of that pair over TCP as the source's user."""
    port = free_port()
    what = f"restoring group {name}"
    doc = _last_json(_medark(launcher, [*medark, "--json", "group", "restore", "--plan", plan,
                                        "--group", name, "--target-dir", str(data_dir),
                                        "--files-target", str(files_target), "--start",
                                        "--port", str(port)], env, what).stdout, what)
    db = doc["database"]
    server = SandboxServer("mariadb", str(db["target_dir"]), port,
                           MYSQL_OS_USER if os.geteuid() == 0 else None,
                           float(db.get("ready_seconds") or 0), pid=db.get("pid"),
                           socket=str(db.get("socket") or ""), database="")
    try:
        return _check_mariadb(name, doc, server, database, files, env, launcher, medark, t0)
    except BaseException:
        stop_database(server)  # the test's own cleanup only sees what was returned
        raise


def _check_mariadb(name: str, doc: dict[str, Any], server: SandboxServer, database: Source,
                   files: Source, env: dict[str, str], launcher: Launcher,
                   medark: list[str], t0: float) -> RestoredGroup:
    port = server.port
    source, schema = index_conn(database.dsn or "")
    user = f"{quote(source.user, safe='')}@" if source.user else ""
    dsn = f"mysql://{user}127.0.0.1:{port}/{quote(schema or '', safe='')}"
    query = ["--index-query", files.index_query] if files.index_query else []
    what = f"checking the restored group {name}"
    password = {"MYSQL_PWD": source.password} if source.password is not None else {}
    check = _last_json(_medark(
        launcher, [*medark, "--json", "group", "check", str(doc["snapshot_id"]), "--dsn",
                   dsn, "--files-root", str(doc["files_root"]), *query], {**env, **password},
        what, accept=(GROUP_INCOMPLETE,)).stdout, what)
    evidence = {**_evidence(name, doc, check, t0), "binlog": doc["point"].get("binlog")}
    return RestoredGroup(server, str(doc["snapshot_id"]), int(check["files"]),
                         int(doc["files"].get("bytes_restored") or 0), evidence)


def _evidence(name: str, doc: dict[str, Any], check: dict[str, Any], t0: float
              ) -> dict[str, Any]:
    """The step's evidence; fails the test when an index row has no file."""
    rows = check["rows_without_files"]
    if rows:
        raise RestoreTestFailed(f"group {name}: the restored index names {len(rows)} "
                                f"file(s) the restored files lack (first: {rows[0]})")
    db = doc["database"]
    # objects on storages the group does not map (dcm4chee's nearline...): not part of
    # the point, so neither restored nor missing; the auditor sees how many, and where
    not_covered = {str(k): int(v) for k, v in (check.get("not_covered") or {}).items()}
    return {"restore": "group", "group": name, "point": doc["snapshot_id"],
            "database": db.get("kind", "postgres"), "lsn": doc["point"]["lsn"],
            "point_time": doc["point"]["time"],
            "recovery_target": db.get("recovery_target"),
            "check": {"references": check["references"], "files": check["files"],
                      "rows_without_files": len(rows),
                      "files_without_rows": len(check["files_without_rows"]),
                      "not_covered": sum(not_covered.values()),
                      "not_covered_by_storage": dict(sorted(not_covered.items()))},
            "rto_seconds": round(clock.monotonic() - t0, 3)}


def _check(doc: dict[str, Any], files: Source, server: SandboxServer, source_dsn: Dsn,
           env: dict[str, str], launcher: Launcher, medark: list[str]) -> dict[str, Any]:
    """`group check` of the restored pair, connecting as the source's user over the
    restored server's socket (its password, if any, in the environment, never argv)."""
    params = {k: v for k, v in source_dsn.params.items()
              if k not in ("host", "hostaddr", "port", "password", "service")}
    dsn = Dsn({**params, "host": socket_dir(server.data_dir), "port": str(server.port),
               "dbname": server.database})
    query = ["--index-query", files.index_query] if files.index_query else []
    argv = [*medark, "--json", "group", "check", str(doc["snapshot_id"]), "--dsn",
            dsn.without_password(), "--files-root", str(doc["files_root"]), *query]
    what = f"checking the restored group {doc['group']}"
    password = source_dsn.params.get("password")
    result = _medark(launcher, argv, {**env, **({"PGPASSWORD": password} if password else {})},
                     what, accept=(GROUP_INCOMPLETE,))
    return _last_json(result.stdout, what)


def _medark(launcher: Launcher, argv: list[str], env: dict[str, str], what: str,
            accept: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    result = launcher(Step(what, argv, env))
    if result.returncode != 0 and result.returncode not in accept:
        lines = [ln.removeprefix("medark: ") for ln in result.stderr.splitlines() if ln]
        raise RestoreTestFailed(f"{what}: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result


def _last_json(out: str, what: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            doc: dict[str, Any] = json.loads(line)
            return doc
    raise RestoreTestFailed(f"{what}: no result was printed")


def _major(backup: dict[str, Any]) -> int:
    match = re.match(r"(\d+)", str(backup.get("server_version") or ""))
    return int(match.group(1)) if match else 0
