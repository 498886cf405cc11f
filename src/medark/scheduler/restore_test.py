"""Restore tests: restore a plan's newest points into a sandbox, prove them, and measure
the time from start to verified — the achieved RTO the compliance engine reports.

For every source of the plan's system the newest snapshot tagged `plan=PLAN` with that
source's paths is restored by a `medark restore` child (which authenticates and hashes
every block it writes), then every file of the snapshot's listing must be in the sandbox
with its recorded size, and each of the plan's `checks` (a command, run in the sandbox)
must exit 0. The sandbox is removed afterwards, whatever the outcome.

Database sources (PostgreSQL, MariaDB) need a throwaway server started on the restored
data directory; that is not built yet, so a plan with one fails its restore test and says
so — it is never reported as verified.
"""

from __future__ import annotations

import json
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
from medark.config.plans import MedarkConfig, Source
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


class RestoreTestFailed(Exception):
    """One reason the restore test did not verify (the job's error)."""


@dataclass(frozen=True)
class Restored:
    snapshot: str
    files: int
    bytes: int


def run_restore_test(config: MedarkConfig, plan_name: str, catalog: Catalog,
                     scheduled_for: datetime | None = None, launcher: Launcher = launch,
                     sandbox_root: Path | None = None) -> Outcome:
    started = clock.now()
    job_id = catalog.start(plan_name, "restore_test", scheduled_for)
    outcome = Outcome(job_id, SUCCEEDED, started, started)
    if job_id is None:
        outcome.status, outcome.error = "skipped", "this schedule slot already ran"
        return outcome
    plan = config.plans[plan_name]
    env = {"MEDARK_REPO": config.repositories[plan.repository].url,
           **repository_env(config, plan.repository)}
    sandbox = Path(tempfile.mkdtemp(prefix="medark-restore-test-", dir=sandbox_root))
    restored: list[Restored] = []
    try:
        snapshots = _newest_points(plan_name, env, launcher)
        for i, source in enumerate(config.systems[plan.system].sources):
            restored.append(_restore_source(source, snapshots, sandbox / str(i), env,
                                            launcher))
        checks = plan.restore_test.checks if plan.restore_test else []
        for check in checks:
            _run_check(check, sandbox)
    except RestoreTestFailed as exc:
        outcome.status, outcome.error = FAILED, str(exc)
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
    outcome.finished_at = clock.now()
    rto = (outcome.finished_at - started).total_seconds()
    outcome.snapshot_ids = [r.snapshot for r in restored]
    outcome.bytes_added = sum(r.bytes for r in restored)
    outcome.steps = [{"snapshot": r.snapshot, "files": r.files, "bytes": r.bytes}
                     for r in restored]
    catalog.finish(job_id, outcome.status, bytes_added=outcome.bytes_added,
                   snapshot_id=outcome.snapshot_ids[-1] if outcome.snapshot_ids else None,
                   error=outcome.error,
                   details={"rto_seconds": rto if outcome.status == SUCCEEDED else None,
                            "restored": outcome.steps})
    return outcome


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


def _source_paths(source: Source) -> tuple[str, ...] | None:
    if source.type == "files":
        return tuple(str(Path(p).resolve()) for p in source.paths)
    if source.type == "command":
        return (f"/{source.filename or 'dump'}",)
    return None


def _restore_source(source: Source, snapshots: dict[tuple[str, ...], dict[str, Any]],
                    target: Path, env: dict[str, str], launcher: Launcher) -> Restored:
    paths = _source_paths(source)
    if paths is None:
        raise RestoreTestFailed(f"restore tests of {source.type} sources are not supported "
                                "yet (they need a throwaway database server)")
    snap = snapshots.get(paths)
    if snap is None:
        raise RestoreTestFailed(f"no snapshot of {', '.join(paths)} to restore")
    medark = medark_command()
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


def _run_check(check: str, sandbox: Path) -> None:
    try:
        done = subprocess.run(shlex.split(check), cwd=sandbox, capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RestoreTestFailed(f"check {check!r}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise RestoreTestFailed(f"check {check!r} exited {done.returncode}"
                                + (f": {tail[-1]}" if tail else ""))
