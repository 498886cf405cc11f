"""Restore tests: restore a plan's newest points into a sandbox, prove them, and measure
the time from start to verified — the achieved RTO the compliance engine reports.

For every source of the plan's system the newest snapshot tagged `plan=PLAN` is restored:
a file or command source's by a `medark restore` child (which authenticates and hashes
every block it writes), after which every file of the snapshot's listing must be in the
sandbox with its recorded size; a database source's into a throwaway server on a free port
(restore_db.py), which must answer, pass its structural check and the plan's SQL checks.
The two sources of a consistency group are restored as a pair instead (restore_group.py:
`group restore` to the point's LSN, then `group check` of the restored pair).
Then each of the plan's `checks` (a command, run in the sandbox, with PGHOST/PGPORT or
MYSQL_UNIX_PORT pointing at the restored servers) must exit 0. Servers are stopped and the
sandbox removed afterwards, whatever the outcome.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.groups import groups_of
from medark.config.plans import RESTORE_TEST, MedarkConfig, Source
from medark.errors import MedarkError
from medark.scheduler.restore_db import (
    RestoreTestFailed,
    SandboxServer,
    restore_database,
    stop_database,
    stop_leftover,
    verify_database,
)
from medark.scheduler.restore_group import restore_group
from medark.scheduler.runner import (
    Launcher,
    Outcome,
    Step,
    launch,
    medark_command,
    repository_env,
)
from medark.util import clock

CHECK_TIMEOUT = 3600.0
STOP_ERRORS = (MedarkError, OSError, subprocess.SubprocessError)


@dataclass(frozen=True)
class Restored:
    snapshot: str
    files: int
    bytes: int
    server: SandboxServer | None = None
    group: dict[str, Any] | None = None
    """A consistency group's evidence (restore_group.py): its point, check and RTO."""

    def step(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"snapshot": self.snapshot, "files": self.files,
                               "bytes": self.bytes}
        if self.server is not None:
            doc.update(kind=self.server.kind, ready_seconds=self.server.ready_seconds,
                       **self.server.checked)
        if self.group is not None:
            doc.update(self.group)
        return doc


def run_restore_test(config: MedarkConfig, plan_name: str, catalog: Catalog,
                     scheduled_for: datetime | None = None, launcher: Launcher = launch,
                     sandbox_root: Path | None = None, kind: str = RESTORE_TEST) -> Outcome:
    """`kind`: `restore_test` (from the plan's repository) or `restore_test:TARGET` (from
    that copy: the offsite RTO); the plan's test of that kind gives the checks."""
    plan = config.plans[plan_name]
    tests = {k: (repository, test) for k, repository, test in plan.restore_tests()}
    # a test the plan does not schedule (`verify --from`) restores from the kind's source
    repository, test = tests.get(kind, (kind.partition(":")[2] or plan.repository, None))
    started = clock.now()
    job_id = catalog.start(plan_name, kind, scheduled_for)
    outcome = Outcome(job_id, SUCCEEDED, started, started)
    if job_id is None:
        outcome.status, outcome.error = "skipped", "this schedule slot already ran"
        return outcome
    env = {"MEDARK_REPO": config.repositories[repository].url,
           **repository_env(config, repository)}
    sandbox = Path(tempfile.mkdtemp(prefix="medark-restore-test-", dir=sandbox_root))
    sandbox.chmod(0o711)  # restored servers run as the database's OS user
    restored: list[Restored] = []
    try:
        snapshots = _newest_points(plan_name, env, launcher)
        sources = config.systems[plan.system].sources
        groups = {g.database: g for g in groups_of(sources)}
        grouped = {i for g in groups.values() for i in (g.database, g.files)}
        for i, source in enumerate(sources):
            if i in groups:  # a consistency group: both stores as a pair, to one point
                restored.append(_restore_group(plan_name, groups[i].name, source,
                                               sources[groups[i].files], sandbox / str(i),
                                               env, launcher))
            elif i not in grouped:
                restored.append(_restore_source(source, sources, snapshots,
                                                sandbox / str(i), env, launcher))
        servers = [r.server for r in restored if r.server is not None]
        for server in servers:
            verify_database(server, test.sql if test else [])
        check_env = {k: v for server in servers for k, v in server.environment().items()}
        for check in test.checks if test else []:
            _run_check(check, sandbox, check_env)
    except RestoreTestFailed as exc:
        outcome.status, outcome.error = FAILED, str(exc)
    finally:
        _stop_servers(config.systems[plan.system].sources, restored, sandbox)
        shutil.rmtree(sandbox, ignore_errors=True)
    outcome.finished_at = clock.now()
    rto = (outcome.finished_at - started).total_seconds()
    outcome.snapshot_ids = [r.snapshot for r in restored]
    outcome.bytes_added = sum(r.bytes for r in restored)
    outcome.steps = [r.step() for r in restored]
    catalog.finish(job_id, outcome.status, bytes_added=outcome.bytes_added,
                   snapshot_id=outcome.snapshot_ids[-1] if outcome.snapshot_ids else None,
                   error=outcome.error,
                   details={"rto_seconds": rto if outcome.status == SUCCEEDED else None,
                            "repository": repository,
                            "restored": outcome.steps})
    return outcome


def _stop_servers(sources: list[Source], restored: list[Restored], sandbox: Path) -> None:
    """Every server the test started, including one a failed restore left behind."""
    for server in (r.server for r in restored if r.server is not None):
        try:
            stop_database(server)
        except STOP_ERRORS:  # the others must still stop; the sandbox goes anyway
            continue
    for i, source in enumerate(sources):
        try:
            stop_leftover(source.type, sandbox / str(i))
        except STOP_ERRORS:
            continue


def _child(argv: list[str], env: dict[str, str], launcher: Launcher, what: str) -> str:
    result = launcher(Step(what, argv, env))
    if result.returncode != 0:
        lines = [ln.removeprefix("medark: ") for ln in result.stderr.splitlines() if ln]
        raise RestoreTestFailed(f"{what}: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout


def _newest_points(plan: str, env: dict[str, str], launcher: Launcher
                   ) -> dict[tuple[str, ...], dict[str, Any]]:
    """The newest snapshot of the plan for each set of paths."""
    out = _child([*medark_command(), "--json", "snapshots", "--tag", f"plan={plan}"], env,
                 launcher, "listing the plan's snapshots")
    newest: dict[tuple[str, ...], dict[str, Any]] = {}
    for snap in json.loads(out or "[]"):
        key = tuple(snap.get("paths") or [])
        if key not in newest or snap["time"] > newest[key]["time"]:
            newest[key] = snap
    return newest


def _source_paths(source: Source) -> tuple[str, ...]:
    if source.type == "files":
        return tuple(str(Path(p).resolve()) for p in source.paths)
    return (f"/{source.filename or 'dump'}",)


SNAPSHOT_KIND = {"postgres": "postgres", "mariadb": "mysql"}


def _database_point(source: Source, sources: list[Source],
                    snapshots: dict[tuple[str, ...], dict[str, Any]]) -> dict[str, Any]:
    """The newest base backup of a database source: the plan's newest snapshot of that
    kind (a system with two databases of one kind cannot tell them apart yet)."""
    if sum(1 for s in sources if s.type == source.type) > 1:
        raise RestoreTestFailed(f"the system has several {source.type} sources; restore "
                                "tests need one per system (give each its own system)")
    kind = SNAPSHOT_KIND[source.type]
    points = [snap for snap in snapshots.values()
              if (snap.get("source") or {}).get("kind") == kind]
    if not points:
        raise RestoreTestFailed(f"no {source.type} backup of the plan to restore")
    return max(points, key=lambda snap: str(snap["time"]))


def _restore_source(source: Source, sources: list[Source],
                    snapshots: dict[tuple[str, ...], dict[str, Any]],
                    target: Path, env: dict[str, str], launcher: Launcher) -> Restored:
    medark = medark_command()
    if source.type in SNAPSHOT_KIND:
        point = _database_point(source, sources, snapshots)
        server = restore_database(
            source, point, target,
            lambda args, what: _child([*medark, "--json", *args], env, launcher, what),
            medark)
        summary = point.get("summary") or {}
        return Restored(point["id"], int(summary.get("total_files_processed") or 0),
                        int(summary.get("total_bytes_processed") or 0), server)
    paths = _source_paths(source)
    snap = snapshots.get(paths)
    if snap is None:
        raise RestoreTestFailed(f"no snapshot of {', '.join(paths)} to restore")
    _child([*medark, "restore", snap["id"], "--target", str(target)], env, launcher,
           f"restoring {snap['short_id']}")
    listing = _child([*medark, "--json", "ls", snap["id"]], env, launcher,
                     f"listing {snap['short_id']}")
    files = total = 0
    for line in listing.splitlines():
        node = json.loads(line)
        if node.get("message_type") != "node" or node.get("type") != "file":
            continue
        restored = target / str(node["path"]).lstrip("/")
        size = restored.stat().st_size if restored.is_file() else None
        if size is None or size != node.get("size"):
            found = "missing" if size is None else f"{size} bytes"
            raise RestoreTestFailed(f"{node['path']} restored from {snap['short_id']}: "
                                    f"{found}, the snapshot records {node.get('size')}")
        files += 1
        total += size
    return Restored(snap["id"], files, total)


def _restore_group(plan: str, name: str, database: Source, files: Source, target: Path,
                   env: dict[str, str], launcher: Launcher) -> Restored:
    done = restore_group(plan, name, database, files, target,
                         target.with_name(target.name + "-files"), env, launcher,
                         medark_command())
    return Restored(done.point, done.files, done.bytes, done.server, done.evidence)


def _run_check(check: str, sandbox: Path, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(shlex.split(check), cwd=sandbox, capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT, check=False, env={**os.environ, **env})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RestoreTestFailed(f"check {check!r}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise RestoreTestFailed(f"check {check!r} exited {done.returncode}"
                                + (f": {tail[-1]}" if tail else ""))
