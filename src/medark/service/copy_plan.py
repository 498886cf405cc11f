"""`copy --status --plan PLAN`: each copy target of a plan, judged with exactly the
selection the daemon's copy passes (the plan's tag, the target's retention as --keep-*),
so pending is what the next scheduled copy sends and not the points the target drops on
purpose. Each target is read by a `medark copy --status` child built by the scheduler's
own copy_step, which opens both repositories with the configuration's password sources."""

from __future__ import annotations

import json
from typing import Any

from medark.config.plans import MedarkConfig
from medark.errors import MedarkError, UsageError
from medark.scheduler.runner import Launcher, Step, copy_step, launch


def plan_copy_status(config: MedarkConfig, plan_name: str,
                     launcher: Launcher = launch) -> list[dict[str, Any]]:
    """One status row (as `copy --status --json` prints it) per copy target of the plan,
    with `plan` and `target` added."""
    plan = config.plans.get(plan_name)
    if plan is None:
        known = ", ".join(sorted(config.plans))
        raise UsageError(f"unknown plan {plan_name!r} (defined: {known})")
    if not plan.copies:
        raise UsageError(f"plan {plan_name} has no copies (plans.{plan_name}.copies)")
    rows: list[dict[str, Any]] = []
    for copy in plan.copies:
        step = copy_step(config, plan_name, copy.to)
        result = launcher(Step(f"copy status {copy.to}", [*step.argv, "--status"], step.env))
        found = _rows(result.stdout) if result.returncode == 0 else None
        if found is None:
            lines = (result.stderr or "").strip().splitlines()
            why = lines[-1].removeprefix("medark: ") if lines else f"exit {result.returncode}"
            error = MedarkError(f"copy status of plan {plan_name} at {copy.to}: {why}")
            error.exit_code = result.returncode or 1
            raise error
        rows += [{"plan": plan_name, "target": copy.to, **row} for row in found]
    return rows


def _rows(stdout: str) -> list[dict[str, Any]] | None:
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(doc, list) or not all(isinstance(row, dict) for row in doc):
        return None
    return doc
