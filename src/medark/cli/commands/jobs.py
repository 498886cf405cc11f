"""`medark jobs [--plan P] [--status S] [--latest N]`: the job history, newest first.

The table (cli/job_table.py) gives times in the configuration's `timezone`; with
--catalog and no --config, in the zone a configuration has by default."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from medark.catalog.statuses import STATUSES
from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.util import clock

if TYPE_CHECKING:
    from medark.cli.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", help="only this plan's jobs")
    p.add_argument("--status", choices=STATUSES, help="only jobs in this state")
    p.add_argument("--latest", type=int, default=50, metavar="N",
                   help="the newest N jobs (default 50)")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.cli.job_table import job_lines  # the catalog (SQLAlchemy): not at --help
    from medark.service.catalog_access import job_history, opened_catalog
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    # the configuration gives the catalog and the time zone; --catalog alone needs neither
    given = args.config or not args.catalog
    config = load_plans(config_path(args.config)) if given else None
    with opened_catalog(config, args.catalog) as catalog:
        jobs = job_history(catalog, args.plan, args.status, max(1, args.latest))
    if ctx.out.as_json:
        ctx.out.json([j.public() for j in jobs])
        return 0
    if not jobs:
        ctx.out.text("no jobs match" if args.plan or args.status else "no jobs yet")
        return 0
    zone = config.zone if config is not None else _default_zone()
    for line in job_lines(jobs, zone, clock.now()):
        ctx.out.text(line)
    return 0


def _default_zone() -> ZoneInfo:
    """Without a configuration (--catalog alone): the zone a configuration gets by default."""
    from medark.config.plans import MedarkConfig

    return ZoneInfo(str(MedarkConfig.model_fields["timezone"].default))


COMMAND = Command("jobs", "list the job history from the catalog", add_arguments, run)
