"""`medark jobs [--plan P] [--status S] [--latest N]`: the job history, newest first."""

from __future__ import annotations

import argparse

from medark.catalog.models import STATUSES
from medark.cli.command import Command
from medark.cli.commands.config import add_config_option
from medark.cli.commands.run import add_catalog_option
from medark.cli.context import Context
from medark.service.jobs import job_history, opened_catalog
from medark.service.plans import config_path, load_plans
from medark.util.sizes import format_bytes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", help="only this plan's jobs")
    p.add_argument("--status", choices=STATUSES, help="only jobs in this state")
    p.add_argument("--latest", type=int, default=50, metavar="N",
                   help="the newest N jobs (default 50)")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    args = ctx.args
    config = None if args.catalog else load_plans(config_path(args.config))
    with opened_catalog(config, args.catalog) as catalog:
        jobs = job_history(catalog, args.plan, args.status, max(1, args.latest))
    if ctx.out.as_json:
        ctx.out.json([j.public() for j in jobs])
        return 0
    ctx.out.text(f"{'ID':>6}  {'plan':<14} {'kind':<8} {'status':<10} {'started':<20} "
                 f"{'seconds':>8} {'added':>11}  snapshot / error")
    for j in jobs:
        started = j.started_at.strftime("%Y-%m-%d %H:%M:%S") if j.started_at else "-"
        took = (f"{(j.finished_at - j.started_at).total_seconds():8.1f}"
                if j.finished_at and j.started_at else f"{'-':>8}")
        added = format_bytes(j.bytes_added) if j.bytes_added is not None else "-"
        last = j.error if j.error else (j.snapshot_id or "")[:8]
        ctx.out.text(f"{j.id:>6}  {j.plan:<14} {j.kind:<8} {j.status:<10} {started:<20} "
                     f"{took} {added:>11}  {last}")
    return 0


COMMAND = Command("jobs", "list the job history from the catalog", add_arguments, run)
