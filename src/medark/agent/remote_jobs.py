"""Restores and DR actions the server asks an agent for (docs/server.md).

The server names things, never a command or a path: a restore names a snapshot, paths
inside it or studies of its DICOM catalog (agent/dicom_job.py), or a point in time
and a database source (agent/pitr_job.py), and a restore target by name, which must be
one of this host's `[agent] restore_targets`; a DR action names a system, which must be
one of this host's `[dr.SYSTEM]` tables. Each runs `medark restore` / `medark dr ACTION`
as the agent's child, so the command's own checks and its access audit (in the agent's
local catalog) apply exactly as for a person at the host's terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.agent_conf import (
    SNAPSHOT_REF,
    dicom_items_problem,
    exact_pattern,
    snapshot_paths_problem,
)
from medark.config.plans import MedarkConfig
from medark.scheduler.runner import Launcher, Step, medark_command, repository_env, run_job

RESTORE = "restore"
DR_KINDS = {"dr_switchover": "switchover", "dr_failover": "failover",
            "dr_failback": "failback", "dr_drill": "drill"}
"""Job kind -> the `medark dr` action it runs."""
OnStep = Callable[[dict[str, Any]], None]
"""Told of each DR step (its stored form) as it ends."""
KINDS = (RESTORE, *DR_KINDS)


@dataclass
class Done:
    """What a remote job's child produced: for the agent's Result."""

    status: str
    error: str | None
    summary: dict[str, Any]
    local_ids: list[int]
    steps: list[dict[str, Any]]


def refusal(config: MedarkConfig, plan: str, kind: str,
            details: dict[str, Any]) -> str | None:
    """Why this host will not run the restore or DR action, or None."""
    if kind == RESTORE:
        return _restore_refusal(config, plan, details)
    system = details.get("system")
    if not isinstance(system, str) or system not in config.dr:
        known = ", ".join(sorted(config.dr)) or "none"
        return (f"unknown system {system!r}: not in this agent's [dr] tables "
                f"(DR systems here: {known})")
    return None


def _restore_refusal(config: MedarkConfig, plan: str, details: dict[str, Any]) -> str | None:
    if plan not in config.plans:
        return f"unknown plan {plan!r}: not in this agent's configuration"
    target = details.get("target")
    targets = config.agent.restore_targets
    if not isinstance(target, str) or target not in targets:
        known = ", ".join(sorted(targets)) or "none"
        return (f"unknown restore target {target!r}: not in this agent's [agent] "
                f"restore_targets (declared: {known})")
    if "time" in details:  # a point in time (agent/pitr_job.py)
        from medark.agent import pitr_job

        return pitr_job.refusal(details)
    snapshot = details.get("snapshot")
    if not isinstance(snapshot, str) or not SNAPSHOT_REF.fullmatch(snapshot):
        return "the snapshot is an id (8 to 64 hex digits) or 'latest'"
    if "dicom" in details:  # studies by the DICOM catalog (agent/dicom_job.py)
        return ("give paths or dicom, not both" if details.get("paths")
                else dicom_items_problem(details["dicom"]))
    return snapshot_paths_problem(details.get("paths") or [])


def run(config: MedarkConfig, catalog: Catalog, plan: str, kind: str,
        details: dict[str, Any], launcher: Launcher, config_file: str | None,
        on_step: OnStep | None = None) -> Done:
    """Run the refusal-checked job as a child, recorded in the local catalog; a DR
    action's steps go to `on_step` as each ends."""
    if kind == RESTORE and "time" in details:
        from medark.agent import pitr_job

        return pitr_job.run(config, catalog, plan, details, launcher)
    if kind == RESTORE and "dicom" in details:
        from medark.agent import dicom_job

        return dicom_job.run(config, catalog, plan, details, launcher)
    if kind == RESTORE:
        return _restore(config, catalog, plan, details, launcher)
    return _dr(catalog, plan, kind, str(details["system"]), launcher, config_file,
               on_step or (lambda _step: None))


@dataclass
class RestoreSetting:
    """What a snapshot restore's children run with: the plan's repository, the named
    target's directory, the child environment and the system's own snapshot's full id."""

    repository: str
    target_dir: str
    env: dict[str, str]
    snapshot: str


def restore_setting(config: MedarkConfig, catalog: Catalog, plan: str,
                    details: dict[str, Any], launcher: Launcher) -> RestoreSetting | Done:
    """The setting of a refusal-checked snapshot restore (paths or DICOM studies), or a
    failed Done when the snapshot is not among the system's own."""
    repository = config.plans[plan].repository
    system = config.plans[plan].system
    target_dir = config.agent.restore_targets[str(details["target"])]
    env = {"MEDARK_REPO": config.repositories[repository].url,
           **repository_env(config, repository), **catalog_env(catalog)}
    snapshot, why = system_snapshot(str(details["snapshot"]), system, repository, env,
                                     launcher)
    if snapshot is None:
        return Done(FAILED, why, {}, [], [])
    return RestoreSetting(repository, target_dir, env, snapshot)


def _restore(config: MedarkConfig, catalog: Catalog, plan: str, details: dict[str, Any],
             launcher: Launcher) -> Done:
    setting = restore_setting(config, catalog, plan, details, launcher)
    if isinstance(setting, Done):
        return setting
    repository, env, snapshot = setting.repository, setting.env, setting.snapshot
    argv = [*medark_command(), "--json", "restore", snapshot, "--target",
            setting.target_dir]
    for path in details.get("paths") or []:
        argv += ["--include", exact_pattern(str(path))]
    kept = KeepOutput(launcher)
    outcome = run_job(catalog, plan, RESTORE, [Step(f"restore from {repository}", argv, env)],
                      None, 1, kept)
    summary = last_json(kept.stdout)
    shown = {k: summary[k] for k in ("files_restored", "bytes_restored", "total_files",
                                     "total_bytes", "seconds_elapsed", "snapshot_id")
             if k in summary}
    return Done(SUCCEEDED if outcome.status == SUCCEEDED else FAILED, outcome.error,
                {"restore": {"target": details["target"], "repository": repository,
                             **shown}},
                [outcome.job_id] if outcome.job_id is not None else [], [])


def system_snapshot(ref: str, system: str, repository: str, env: dict[str, str],
                     launcher: Launcher) -> tuple[str | None, str]:
    """The full id of snapshot `ref` (a prefix, or latest) among the system's own
    snapshots (tagged system=SYSTEM): a grant for one system must not restore another's
    snapshot from a shared repository. (None, why) when there is none."""
    listed = launcher(Step(f"snapshots of {system}", [
        *medark_command(), "--json", "snapshots", "--tag", f"system={system}"], env))
    if listed.returncode != 0:
        lines = [ln for ln in (listed.stderr or "").splitlines() if ln.strip()]
        return None, (f"listing the snapshots of {system} in {repository}: "
                      f"{lines[-1] if lines else f'exit {listed.returncode}'}")[:2000]
    try:
        found = json.loads(listed.stdout or "[]")
    except ValueError:
        found = []
    snaps = sorted((s for s in found if isinstance(s, dict) and isinstance(s.get("id"), str)),
                   key=lambda s: str(s.get("time", "")))
    ids = [str(s["id"]) for s in snaps]
    matches = ids[-1:] if ref == "latest" else [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return matches[0], ""
    if len(matches) > 1:
        return None, f"snapshot id prefix {ref!r} is ambiguous; give more characters"
    return None, f"no snapshot {ref!r} of system {system} in repository {repository}"


def _dr(catalog: Catalog, plan: str, kind: str, system: str, launcher: Launcher,
        config_file: str | None, on_step: OnStep) -> Done:
    """`medark dr ACTION --step-lines`: each step's JSON line goes to `on_step` as the
    child prints it; the steps a launcher that does not follow the child held back, at
    the end from the action's document."""
    action = DR_KINDS[kind]
    argv = [*medark_command(), "--json", "dr", action, system, "--yes", "--step-lines"]
    if config_file:
        argv += ["--config", config_file]
    told = 0

    def line(text: str) -> None:
        nonlocal told
        step = _step_of(text)
        if step is not None:
            told += 1
            on_step(step)

    kept = KeepOutput(launcher)
    step = Step(f"dr {action} {system}", argv, catalog_env(catalog), on_output=line)
    outcome = run_job(catalog, plan, kind, [step], None, 1, kept)
    record = last_json(kept.stdout)
    steps = [s for s in record.get("steps", []) if isinstance(s, dict)]
    for late in steps[told:]:
        on_step(late)
    error = outcome.error
    if isinstance(record.get("error"), dict):
        error = str(record["error"].get("message") or error)
    ok = outcome.status == SUCCEEDED and record.get("status") in (None, "succeeded", "ok")
    return Done(SUCCEEDED if ok else FAILED, None if ok else (error or "failed"),
                {"dr_action": record} if record else {},
                [outcome.job_id] if outcome.job_id is not None else [], steps)


def catalog_env(catalog: Catalog) -> dict[str, str]:
    """The agent's local catalog for the child (in its environment: a PostgreSQL URL may
    hold a password, which never goes on a command line)."""
    return {"MEDARK_CATALOG": catalog.url}


class KeepOutput:
    """A launcher that keeps the child's standard output (its JSON document)."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.stdout = ""

    def __call__(self, step: Step) -> subprocess.CompletedProcess[str]:
        result = self.launcher(step)
        self.stdout = result.stdout or ""
        return result


def last_json(stdout: str) -> dict[str, Any]:
    """The last JSON object the child printed (its summary or DR action document)."""
    for line in reversed(stdout.splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    try:
        doc = json.loads(stdout)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _step_of(line: str) -> dict[str, Any] | None:
    """The step of a `{"message_type": "dr_step", "step": {...}}` line, else None."""
    if '"dr_step"' not in line:
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("message_type") != "dr_step":
        return None
    step = doc.get("step")
    return step if isinstance(step, dict) else None


def step_line(step: dict[str, Any]) -> str:
    """A DR step as a job's log line: name, result, seconds, detail."""
    seconds = step.get("seconds")
    text = f"{step.get('name')}: {step.get('result')}"
    if isinstance(seconds, int | float):
        text += f" in {seconds:.3f} s"
    if step.get("detail"):
        text += f" ({step['detail']})"
    return text[:500]


DR_STATUS_EVERY = 6
"""Heartbeats between two DR status reports (the first heartbeat sends one)."""
DR_STATUS_TIMEOUT = 120.0


def dr_status_report(config: MedarkConfig, catalog: Catalog,
                     config_file: str | None) -> list[dict[str, Any]] | None:
    """`medark dr status --json` of the local [dr] systems, as the agent's child (its
    exit code says healthy or not; the document says the same in detail); None when
    there are none or it printed no document."""
    if not config.dr:
        return None
    argv = [*medark_command(), "--json", "dr", "status"]
    if config_file:
        argv += ["--config", config_file]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_PASSWORD")}
    try:
        done = subprocess.run(argv, env={**env, **catalog_env(catalog)},
                              capture_output=True, text=True, check=False,
                              timeout=DR_STATUS_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    systems = last_json(done.stdout).get("systems")
    return [s for s in systems if isinstance(s, dict)][:200] if isinstance(
        systems, list) else None
