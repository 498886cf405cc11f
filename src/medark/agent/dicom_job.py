"""A restore of studies by the DICOM catalog the server asks for (docs/server.md,
"Restores"): the console's study search picked them in a snapshot of the system.

The server names the snapshot, the studies (and series) by UID and a restore target by
name; the agent checks them (agent/remote_jobs.py refusal), resolves the snapshot among
the system's own, and runs `medark --json dicom restore --study UID [--series UID]
--snapshot ID --target DIR` once per study (or per series named) as its child: the
command finds the instances with the engine's `studies_in`, restores exactly their
files with full paths below the target, reads each back, and records its own
`dicom.restore` access in the agent's local catalog, as at the terminal. A study of
thousands of instances is one request, never thousands of paths.
"""

from __future__ import annotations

import subprocess
from typing import Any

from medark.agent.remote_jobs import RESTORE, Done, last_json, restore_setting
from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.scheduler.runner import Launcher, Step, medark_command, run_job

SUMMED = ("files_restored", "bytes_restored", "total_files", "total_bytes",
          "files_verified")


class KeepEach:
    """A launcher that keeps each child's last JSON document (one per study or series)."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.documents: list[dict[str, Any]] = []

    def __call__(self, step: Step) -> subprocess.CompletedProcess[str]:
        result = self.launcher(step)
        self.documents.append(last_json(result.stdout or ""))
        return result


def steps_of(items: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(study, series or None) of each `dicom restore` to run, in the order asked."""
    out: list[tuple[str, str | None]] = []
    for item in items:
        series = [str(s) for s in item.get("series") or []]
        study = str(item["study"])
        out += [(study, s) for s in series] if series else [(study, None)]
    return out


def run(config: MedarkConfig, catalog: Catalog, plan: str, details: dict[str, Any],
        launcher: Launcher) -> Done:
    setting = restore_setting(config, catalog, plan, details, launcher)
    if isinstance(setting, Done):
        return setting
    repository, env, snapshot = setting.repository, setting.env, setting.snapshot
    target_dir = setting.target_dir
    steps = []
    for study, series in steps_of(details["dicom"]):
        argv = [*medark_command(), "--json", "dicom", "restore", "--study", study,
                *(["--series", series] if series else []), "--snapshot", snapshot,
                "--target", target_dir]
        what = f"study {study}" + (f" series {series}" if series else "")
        steps.append(Step(f"{what} from {repository}", argv, env))
    kept = KeepEach(launcher)
    outcome = run_job(catalog, plan, RESTORE, steps, None, 1, kept)
    restored: dict[str, Any] = {"target": details["target"], "repository": repository,
                                "snapshot_id": snapshot, "studies": len(details["dicom"]),
                                "instances": 0, "seconds_elapsed": 0.0,
                                **dict.fromkeys(SUMMED, 0)}
    for doc in kept.documents:
        summary = doc.get("restore")
        if not isinstance(summary, dict):
            continue
        instances = doc.get("instances")
        restored["instances"] += instances if isinstance(instances, int) else 0
        for key in SUMMED:
            value = summary.get(key)
            restored[key] += value if isinstance(value, int) else 0
        seconds = summary.get("seconds_elapsed")
        if isinstance(seconds, int | float):
            restored["seconds_elapsed"] = round(restored["seconds_elapsed"] + seconds, 3)
    ok = outcome.status == SUCCEEDED
    return Done(SUCCEEDED if ok else FAILED, None if ok else outcome.error,
                {"restore": restored},
                [outcome.job_id] if outcome.job_id is not None else [], [])
