"""`medark verify PLAN`: a restore test now — the plan's newest points restored into a
sandbox, every file checked against the snapshot, the plan's checks run, the time from
start to verified recorded in the catalog as the achieved RTO. Exit 0 when verified."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.config.durations import format_config_duration
from medark.util.sizes import format_duration

if TYPE_CHECKING:
    from medark.cli.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="the plan whose newest points to restore and check")
    p.add_argument("--from", dest="source", metavar="REPOSITORY", default=None,
                   help="restore from this copy target of the plan (the offsite RTO) "
                   "instead of the plan's own repository")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.service.catalog_access import opened_catalog  # not at --help
    from medark.service.jobs import verify_plan_now
    from medark.service.plans import config_path, load_plans

    config = load_plans(config_path(ctx.args.config))
    with opened_catalog(config, ctx.args.catalog) as catalog:
        outcome = verify_plan_now(config, ctx.args.plan, catalog, ctx.args.source)
    rto = outcome.finished_at - outcome.started_at
    target = config.plans[ctx.args.plan].rto
    if ctx.out.as_json:
        ctx.out.json({"message_type": "restore_test", "plan": ctx.args.plan,
                      "repository": ctx.args.source or config.plans[ctx.args.plan].repository,
                      **outcome.public(), "rto_seconds": rto.total_seconds(),
                      "rto_target_seconds": target.total_seconds()})
    elif outcome.status == "succeeded":
        files = sum(int(s["files"]) for s in outcome.steps)
        ctx.out.text(f"plan {ctx.args.plan}: verified {len(outcome.steps)} point(s), {files} "
                     f"file(s), in {format_duration(rto.total_seconds())} (RTO target "
                     f"{format_config_duration(target)})")
    if outcome.error:
        ctx.out.warn(f"medark: plan {ctx.args.plan}: restore test failed: {outcome.error}")
    return 0 if outcome.status == "succeeded" else 1


COMMAND = Command("verify", "restore a plan's newest points into a sandbox and check them",
                  add_arguments, run)
