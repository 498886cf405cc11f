"""`medark run PLAN [--config FILE] [--catalog URL]`: run a plan now.

Each source of the plan's system is backed up by a `medark` child process into the
plan's repository, tagged `plan=PLAN` and `system=SYSTEM`; then, if that succeeded, the
plan's snapshots and archives are copied to each of its copy targets (each copy followed
by the target's own retention), then the plan's retention is applied. Each is a job in
the catalog (start, end, status, bytes added, snapshot, RPO at that moment, error). Exit
0 when everything succeeded, 1 when anything failed (the other sources still ran).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.util.sizes import format_bytes, format_duration

if TYPE_CHECKING:
    from medark.cli.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="the plan to run")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.service.catalog_access import opened_catalog  # SQLAlchemy: not at --help
    from medark.service.jobs import run_plan_now
    from medark.service.plans import config_path, load_plans

    config = load_plans(config_path(ctx.args.config))
    with opened_catalog(config, ctx.args.catalog) as catalog:
        outcomes = run_plan_now(config, ctx.args.plan, catalog)
    for kind, outcome in outcomes:
        if ctx.out.as_json:
            ctx.out.json({"message_type": "job", "plan": ctx.args.plan, "kind": kind,
                          **outcome.public()})
        else:
            seconds = (outcome.finished_at - outcome.started_at).total_seconds()
            ctx.out.prose(f"job {outcome.job_id} (plan {ctx.args.plan}, {kind}): "
                         f"{outcome.status} in {format_duration(seconds)}, "
                         f"{format_bytes(outcome.bytes_added)} added, snapshots "
                         f"{', '.join(s[:8] for s in outcome.snapshot_ids) or 'none'}")
        if outcome.error:
            ctx.out.warn(f"medark: plan {ctx.args.plan} ({kind}): {outcome.error}")
    return 0 if all(o.status == "succeeded" for _kind, o in outcomes) else 1


COMMAND = Command("run", "run a plan's backup now, recorded in the job catalog",
                  add_arguments, run)
