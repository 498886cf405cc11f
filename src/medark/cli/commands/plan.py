"""`medark plan show [PLAN…] [--config FILE]`: what each plan runs, when, where it goes,
what it keeps and what it promises — and what its schedule alone can deliver."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from medark.cli.command import Command
from medark.cli.commands.config import add_config_option
from medark.cli.context import Context
from medark.config.durations import format_config_duration
from medark.service.plans import PlanView, config_path, explain, load_plans
from medark.util import clock


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show"], help="show: explain the plans")
    p.add_argument("plans", nargs="*", metavar="PLAN", help="plan names (default: all)")
    add_config_option(p)


def run(ctx: Context) -> int:
    config = load_plans(config_path(ctx.args.config))
    views = explain(config, clock.now(), ctx.args.plans)
    if ctx.out.as_json:
        ctx.out.json([v.public() for v in views])
        return 0
    for i, view in enumerate(views):
        if i:
            ctx.out.text("")
        for line in _lines(view):
            ctx.out.text(line)
    return 0


def _span(value: timedelta | None) -> str:
    return format_config_duration(value) if isinstance(value, timedelta) else "forever"


def _lines(v: PlanView) -> list[str]:
    when = ", ".join(t.strftime("%Y-%m-%d %H:%M %Z") for t in v.next_runs) or "-"
    retention = ", ".join(f"{k} {val}" for k, val in v.retention.items()) or "keep everything"
    reach = f"reaches {_span(v.retention_reach)}"
    if v.record_minimum is not None:
        reach += f" (records must be kept {_span(v.record_minimum)})"
    design = ("continuous WAL/binlog archiving" if v.continuous_log
              else f"schedule allows {_span(v.design_rpo)}")
    out = [
        f"plan {v.name}: {v.system_name} ({v.system}), owner {v.owner}",
        *(f"  source       {s}" for s in v.sources),
        f"  backup       {v.schedule} -> {v.repository} (site {v.site}, {v.location})",
        f"  next runs    {when}",
        f"  retention    {retention}; {reach}",
    ]
    for copy in v.copies:
        out.append(f"  copy         -> {copy['to']} (site {copy['site']}, {copy['location']}): "
                   f"{copy['schedule']}")
    out.append(f"  targets      RPO {_span(v.rpo)} ({design}), RTO {_span(v.rto)}")
    if v.restore_test:
        nxt = _when(v.next_restore_test)
        out.append(f"  restore test {v.restore_test}, next {nxt}")
    else:
        out.append("  restore test none: the RTO is not measured")
    if v.offsite_restore_test:
        nxt = _when(v.next_offsite_restore_test)
        out.append(f"  offsite test from {v.offsite_restore_from}: {v.offsite_restore_test}, "
                   f"next {nxt}")
    out += [f"  warning      {w}" for w in v.residency_warnings]
    return out


COMMAND = Command("plan", "explain what the protection plans run and when", add_arguments, run)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z") if moment else "-"
