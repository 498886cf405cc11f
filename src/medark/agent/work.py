"""What the server may ask an agent to run: a job kind it knows (backup, check,
restore_test) of a plan in the agent's own configuration. Anything else is refused and
reported failed; the server names a plan and a kind, never a command, a path or a
source, so it cannot make the host run anything its local configuration does not say.
A restore or a DR action (agent/remote_jobs.py) names a restore target or a [dr] system
of that configuration the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medark.agent import remote_jobs
from medark.catalog.models import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.scheduler.runner import (
    Launcher,
    Outcome,
    Step,
    launch,
    medark_command,
    repository_env,
    run_job,
)
from medark.service.jobs import run_plan_now, verify_plan_now

KINDS = ("backup", "check", "restore_test")


@dataclass
class Result:
    """A server job's outcome as the agent reports it."""

    status: str
    error: str | None = None
    snapshot_id: str | None = None
    bytes_added: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    local_ids: list[int] = field(default_factory=list)
    """The local catalog's records of it (not reported again from the offline queue)."""


def refusal(config: MedarkConfig, plan: str, kind: str,
            details: dict[str, Any] | None = None) -> str | None:
    """Why the agent will not run this job, or None."""
    if kind in remote_jobs.KINDS:
        return remote_jobs.refusal(config, plan, kind, details or {})
    if kind not in KINDS:
        known = ", ".join((*KINDS, *remote_jobs.KINDS))
        return f"unknown job kind {kind!r}: this agent runs {known}"
    if plan not in config.plans:
        return f"unknown plan {plan!r}: not in this agent's configuration"
    return None


def run(config: MedarkConfig, catalog: Catalog, plan: str, kind: str,
        launcher: Launcher = launch, details: dict[str, Any] | None = None,
        config_file: str | None = None,
        on_step: remote_jobs.OnStep | None = None) -> Result:
    """Run the job now, recorded in the local catalog as `medark run` / `verify` would;
    each child process through `launcher` (which a cancel stops). A restore or DR action
    (agent/remote_jobs.py) takes its parameters from the job's `details`; a DR action
    tells `on_step` of each step as it ends."""
    refused = refusal(config, plan, kind, details)
    if refused is not None:
        return Result(FAILED, refused)
    if kind in remote_jobs.KINDS:
        remote = remote_jobs.run(config, catalog, plan, kind, details or {}, launcher,
                                 config_file, on_step)
        return Result(remote.status, remote.error, None, None,
                      {"request": details or {}, **remote.summary, "steps": remote.steps},
                      remote.local_ids)
    if kind == "backup":
        done = run_plan_now(config, plan, catalog, launcher)
    elif kind == "restore_test":
        done = [("restore_test", verify_plan_now(config, plan, catalog, launcher=launcher))]
    else:
        done = [("check", run_job(catalog, plan, "check", [check_step(config, plan)], None, 1,
                                  launcher))]
    return _result(done)


def check_step(config: MedarkConfig, plan: str) -> Step:
    repository = config.plans[plan].repository
    env = {"MEDARK_REPO": config.repositories[repository].url,
           **repository_env(config, repository)}
    return Step(f"check {repository}", [*medark_command(), "--json", "check"], env)


def _result(done: list[tuple[str, Outcome]]) -> Result:
    """The first job's outcome decides (a backup's retention that met a busy repository
    does not fail the backup); every part is in the summary."""
    first = done[0][1]
    failed = [f"{kind}: {o.error}" for kind, o in done if o.status == FAILED]
    snapshots = [s for _k, o in done for s in o.snapshot_ids]
    status = SUCCEEDED if first.status in (SUCCEEDED, "skipped") else FAILED
    return Result(status, "; ".join(failed)[-2000:] or None,
                  snapshots[0] if snapshots else None, first.bytes_added,
                  {"parts": [{"kind": kind, **_public(o)} for kind, o in done]},
                  [o.job_id for _k, o in done if o.job_id is not None])


def _public(outcome: Outcome) -> dict[str, Any]:
    public = outcome.public()
    return {"local_job": outcome.job_id,
            **{k: public[k] for k in ("status", "seconds", "bytes_added", "snapshot_ids",
                                      "error")}}
