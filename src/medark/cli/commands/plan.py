"""`medark plan show [PLAN…] [--config FILE]`: what each plan runs, when, where it goes,
what it keeps and what it promises — and what its schedule alone can deliver."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from medark.cli.command import Command
from medark.cli.output import wrap
from medark.cli.plan_options import add_config_option
from medark.config.durations import format_config_duration
from medark.util import clock

if TYPE_CHECKING:
    from medark.cli.context import Context
    from medark.service.plans import PlanView


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show"], help="show: explain the plans")
    p.add_argument("plans", nargs="*", metavar="PLAN", help="plan names (default: all)")
    add_config_option(p)


def run(ctx: Context) -> int:
    from medark.service.plans import config_path, explain, load_plans  # not at --help

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
    when = _runs(v.next_runs, v.interval)
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
        f"  retention    {_keeps(v.retention)}; {reach}",
        f"  forget       {v.forget}",
        "  prune        " + _prune(v.repository, v.prune, v.next_prune),
    ]
    for copy in v.copies:
        own = "its own" if copy["retention_from"] == "copy" else "the plan's: none of its own"
        pruned = _prune(copy["to"], copy["prune"], copy["next_prune"])
        out += [
            f"  copy         -> {copy['to']} (site {copy['site']}, {copy['location']}): "
            f"{copy['schedule']}",
            f"    retention  {_keeps(copy['retention'])} ({own}); "
            f"reaches {copy['retention_reach']}",
            f"    forget     in {copy['to']} {copy['forget']}",
            "    prune      " + pruned,
        ]
    out.append(f"  targets      RPO {_span(v.rpo)} ({design}), RTO {_span(v.rto)}")
    if v.restore_test:
        nxt = _when(v.next_restore_test, _interval(v.restore_test))
        out.append(f"  restore test {v.restore_test}, next {nxt}")
    else:
        out.append("  restore test none: the RTO is not measured")
    if v.offsite_restore_test:
        nxt = _when(v.next_offsite_restore_test, _interval(v.offsite_restore_test))
        out.append(f"  offsite test from {v.offsite_restore_from}: {v.offsite_restore_test}, "
                   f"next {nxt}")
    out += [f"  warning      {w}" for w in v.residency_warnings]
    # a long value (a source's path, a retention) wraps under its column, 80 wide
    return [part for line in out
            for part in wrap(line, VALUE_COLUMN if line.startswith(" ") else 4).split("\n")]


def _runs(runs: list[datetime], interval: timedelta | None) -> str:
    """The next runs; after the first, a run on the same day shows its time only."""
    shown = []
    for i, run_at in enumerate(runs):
        text = _when(run_at, interval)
        if i and run_at.date() == runs[i - 1].date():
            text = text.split(" ")[1]
        shown.append(text)
    return ", ".join(shown) or "-"


def _keeps(retention: dict[str, Any]) -> str:
    return ", ".join(f"{k} {val}" for k, val in retention.items()) or "keep everything"


def _prune(repository: str, schedule: str | None, nxt: datetime | None) -> str:
    if schedule is None:
        return f"not scheduled (set `prune` on repository {repository})"
    return f"{schedule}, next {_when(nxt, _interval(schedule))}"


def _interval(schedule: str) -> timedelta | None:
    from medark.config.schedule import Schedule  # croniter

    return Schedule.parse(schedule).interval


COMMAND = Command("plan", "explain what the protection plans run and when", add_arguments, run)


def _when(moment: datetime | None, interval: timedelta | None) -> str:
    """To the minute, or to the second for a schedule shorter than a minute."""
    if moment is None:
        return "-"
    seconds = interval is not None and interval < MINUTE
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


MINUTE = timedelta(minutes=1)
VALUE_COLUMN = 15
"""Where the values start, after `  retention    `."""
