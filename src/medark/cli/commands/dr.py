"""`medark dr status|history|switchover|failover|failback|drill SYSTEM`: the DR pairs of
[dr.SYSTEM], and the actions that move a system between its sites (docs/dr.md).

status connects to both nodes of every PostgreSQL stream-fed system (docs/dr.md): which
node is primary and which standby, streaming, lag in bytes and seconds against the
system's limits, the health checks, the pooler, and the last switch and drill. It exits
0 when every system is healthy and within its limits, 26 when a standby cannot take
over (unreachable, not streaming), 27 when a lag is over its limit. history lists the
DR actions the catalog recorded, newest first. Neither changes anything.

The actions print each step as it ends, with its duration (with --json only the
action's document at the end, unless --step-lines asks for each step as a JSON line
too), and exit with the code of what went wrong (26 standby not ready, 27 lag over the
limit, 28 fencing failed, 29 health check failed, 30 refused: two primaries or another
action running). Those that
move a system ask for its name on a terminal unless --yes is given; elsewhere --yes is
required. A drill changes nothing in production (a sandbox copy of the standby, torn
down again) and asks for nothing; --yes is accepted.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option

if TYPE_CHECKING:
    from medark.catalog.dr_records import DrActionRecord, DrStep
    from medark.cli.context import Context
    from medark.config.plans import MedarkConfig
    from medark.service.dr.action import DrOutcome
    from medark.service.dr.status import DrStatus

ACTIONS = ("status", "history", "switchover", "failover", "failback", "drill", "supervise")
CHANGING = ("switchover", "failover", "failback", "drill")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS,
                   help="status (the pairs as found now), history (DR actions recorded), "
                   "switchover (planned, no data loss), failover (the primary is gone), "
                   "failback (back to the configured primary), drill (a sandbox copy of "
                   "the standby, the DR services started and checked, then torn down), "
                   "supervise (status, after making synchronous systems wait for their "
                   "standby or degrade: the daemon's periodic look)")
    p.add_argument("system", nargs="?", metavar="SYSTEM",
                   help="the system (a [dr.SYSTEM] table); status, history and supervise: "
                   "default every one")
    p.add_argument("--yes", action="store_true",
                   help="switchover/failover/failback: do not ask for confirmation (a drill "
                   "never asks)")
    p.add_argument("--step-lines", action="store_true",
                   help="with --json, switchover/failover/failback/drill: also print each "
                   "step as a JSON line when it ends ({\"message_type\": \"dr_step\", "
                   "\"step\": {...}}), before the action's document: a tool (the agent) "
                   "follows the action as it runs")
    p.add_argument("--force", action="store_true",
                   help="failover: promote even when the standby is further behind than "
                   "max_lag_bytes/max_lag (the loss is reported)")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    config = load_plans(config_path(args.config))
    if args.action == "history":
        return _history(ctx, config)
    if args.action in CHANGING:
        return _act(ctx, config)
    return _status(ctx, config, args.action == "supervise")


def _status(ctx: Context, config: MedarkConfig, supervise: bool = False) -> int:
    from medark.errors import CatalogError
    from medark.service.catalog_access import opened_catalog
    from medark.service.dr.status import GRAVITY, dr_status, selected

    args = ctx.args
    selected(config, args.system)  # an unknown system: exit 2 before any connection
    try:
        with opened_catalog(config, args.catalog) as catalog:
            found = dr_status(config, args.system, catalog, supervise)
    except CatalogError as exc:
        ctx.out.warn(f"warning: {exc}; the last switch and drill are not shown")
        found = dr_status(config, args.system, supervise=supervise)
    if ctx.out.as_json:
        ctx.out.json({"systems": [s.public() for s in found]})
    elif not found:
        ctx.out.text("no DR systems in the configuration ([dr.SYSTEM] tables)")
    for i, status in enumerate(found):
        if i:
            ctx.out.text()
        _print_status(ctx, status)
    verdicts = [v for s in found for v in s.verdicts()]
    for verdict in verdicts:
        ctx.out.warn(f"medark: {verdict}")
    codes = {v.exit_code for v in verdicts}
    return next((code for code in GRAVITY if code in codes), 0)


def _print_status(ctx: Context, s: DrStatus) -> None:
    out = ctx.out
    if not s.supported:
        out.text(f"{s.system}: {s.note}")
        return
    verdict = s.verdict()
    out.text(f"{s.system} ({s.kind}, {s.feed} feed): "
             f"{'healthy' if verdict is None else 'NOT HEALTHY'}")
    for node in s.nodes:
        if node.error is not None:
            out.prose(f"  {node.configured} {node.address} (site {node.site}): unreachable: "
                      f"{node.error}", indent=6)
            continue
        extra = "" if node.role != "standby" else (
            f", receiver {node.receiver_status or 'none'}"
            + (", replay PAUSED" if node.replay_paused else ""))
        timeline = "" if node.timeline is None else f", timeline {node.timeline}"
        out.prose(f"  {node.configured} {node.address} (site {node.site}): {node.role}"
                  f"{timeline}{extra}", indent=6)
    slot = ("" if s.slot is None else
            f", slot {s.slot} {'active' if s.slot_active else 'inactive'}"
            if s.slot_active is not None else f", slot {s.slot} not found on the primary")
    streaming = {True: "streaming", False: "not streaming", None: "unknown"}[s.streaming]
    if s.feed == "repository":
        out.prose("  replication: the standby replays the repository", indent=6)
    else:
        out.prose(f"  replication: {streaming}{slot}", indent=6)
    if s.note:
        out.prose(f"  {s.note}", indent=6)
    if s.lag_bytes is None and s.lag_basis is not None:  # MariaDB: transactions, seconds
        seconds = "unknown" if s.lag_seconds is None else _seconds(s.lag_seconds)
        out.prose(f"  lag: {seconds} ({s.lag_basis}); limit {s.max_lag_seconds:g} s"
                  + (f": OVER ({'; '.join(s.over_limit)})" if s.over_limit else ""), indent=6)
    elif s.lag_bytes is not None:
        seconds = "unknown" if s.lag_seconds is None else _seconds(s.lag_seconds)
        out.prose(f"  lag: {s.lag_bytes} bytes, {seconds} ({s.lag_basis}); limits "
                  f"{s.max_lag_bytes} bytes, {s.max_lag_seconds:g} s"
                  + (f": OVER ({'; '.join(s.over_limit)})" if s.over_limit else ""), indent=6)
    else:
        out.prose(f"  lag: unknown{': ' + s.lag_error if s.lag_error else ''}", indent=6)
    out.text(f"  switch-over now: {'would LOSE data' if s.would_lose_data else 'no data loss'}")
    if s.sync is not None:
        out.prose(f"  synchronous: {s.sync.state}: {s.sync.detail}"
                  + (f" ({s.sync.problem})" if s.sync.problem else ""), indent=6)
    else:
        out.text("  synchronous: no (a failover may lose the commits of the lag)")
    for check in s.health:
        out.prose(f"  health {check.name}: {'ok' if check.ok else 'FAILED'} ({check.detail})",
                  indent=6)
    if s.pooler is not None:
        out.prose(f"  pgbouncer {s.pooler['database']}: to {s.pooler['host']}:"
                  f"{s.pooler['port']}{', PAUSED' if s.pooler['paused'] else ''}, "
                  f"{s.pooler['clients_waiting']} clients waiting", indent=6)
    elif s.pooler_error is not None:
        out.prose(f"  pgbouncer: {s.pooler_error}", indent=6)
    out.prose(f"  last switch: {_action(s.last_switch)}", indent=6)
    out.prose(f"  last drill: {_action(s.last_drill)}", indent=6)


def _seconds(value: float) -> str:
    """A lag in seconds; a small one keeps its digits: behind is never shown as 0."""
    if value == 0 or value >= 1:
        return f"{value:.1f} s" if value else "0 s"
    return f"{value:.6f}".rstrip("0") + " s"


def _action(record: DrActionRecord | None) -> str:
    if record is None:
        return "none recorded"
    from medark.util import clock

    took = "" if record.switch_seconds is None else (
        f", {'healthy after' if record.kind == 'drill' else 'writes held'} "
        f"{record.switch_seconds:.2f} s")
    return f"{record.kind} #{record.id} {clock.format_time(record.started_at)} " \
        f"{record.status}{took}"


def _history(ctx: Context, config: MedarkConfig) -> int:
    from medark.service.catalog_access import opened_catalog
    from medark.service.dr.status import dr_history
    from medark.util import clock

    args = ctx.args
    with opened_catalog(config, args.catalog) as catalog:
        records = dr_history(config, catalog, args.system)
    if ctx.out.as_json:
        ctx.out.json([r.public() for r in records])
        return 0
    if not records:
        ctx.out.text(f"no DR actions recorded{' for ' + args.system if args.system else ''}")
        return 0
    for r in records:
        took = "" if r.switch_seconds is None else f", switch {r.switch_seconds:.2f} s"
        ctx.out.text(f"#{r.id} {clock.format_time(r.started_at)} {r.system} {r.kind} "
                     f"{r.status} by {r.requested_by}{took}")
        if r.error:
            ctx.out.prose(f"    {r.error}", indent=6)
    return 0


def _act(ctx: Context, config: MedarkConfig) -> int:
    from medark.errors import UsageError
    from medark.service.catalog_access import opened_catalog
    from medark.service.dr import drill, failover, switchover
    from medark.service.dr.status import selected

    args = ctx.args
    if args.system is None:
        raise UsageError(f"dr {args.action} needs the SYSTEM to act on")
    selected(config, args.system)
    if args.force and args.action != "failover":
        raise UsageError("--force belongs to dr failover")
    if args.action != "drill":  # a drill changes nothing in production
        _confirm(ctx, args.action, args.system)
    ctx.out.text(f"dr {args.action} {args.system}:")
    def on_step(step: DrStep) -> None:
        if ctx.out.as_json and args.step_lines:
            ctx.out.json({"message_type": "dr_step", "step": step.stored()})
        _print_step(ctx, step)

    with opened_catalog(config, args.catalog) as catalog:
        if args.action == "switchover":
            outcome = switchover.switchover(config, args.system, catalog, on_step=on_step)
        elif args.action == "drill":
            outcome = drill.drill(config, args.system, catalog, on_step=on_step)
        elif args.action == "failover":
            outcome = failover.failover(config, args.system, catalog, force=args.force,
                                        on_step=on_step)
        else:
            outcome = failover.failback(config, args.system, catalog, on_step=on_step)
    if ctx.out.as_json:
        ctx.out.json(outcome.public())
    else:
        _print_outcome(ctx, outcome)
    problem = outcome.problem
    if problem is None:
        return 0
    ctx.out.warn(f"medark: {problem}")
    return problem.exit_code


def _confirm(ctx: Context, action: str, system: str) -> None:
    import sys

    from medark.errors import UsageError

    if ctx.args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"dr {action} {system} changes which server is the primary: give "
                         "--yes (no terminal to confirm on)")
    sys.stderr.write(f"dr {action} moves {system} between its sites. Type the system's "
                     "name to go on: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != system:
        raise UsageError(f"dr {action} {system}: not confirmed, nothing changed")


def _print_step(ctx: Context, step: DrStep) -> None:
    mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}.get(step.result, step.result)
    ctx.out.prose(f"  {step.name:<26} {mark:<7} {step.seconds:7.3f} s  {step.detail}",
                  indent=6)


def _print_outcome(ctx: Context, outcome: DrOutcome) -> None:
    state = outcome.state
    said = [f"{outcome.kind} #{outcome.action_id} {outcome.status.replace('_', ' ')} in "
            f"{outcome.total_seconds:.2f} s"]
    if state.switch_seconds is not None:
        said.append(f"{'healthy after' if outcome.kind == 'drill' else 'writes held'} "
                    f"{state.switch_seconds:.3f} s")
    if state.new_primary is not None:
        said.append(f"primary now {state.new_primary}")
    ctx.out.text("; ".join(said))
    if state.data_loss is not None:
        ctx.out.prose(f"data loss: {state.data_loss.get('summary', state.data_loss)}",
                      indent=4)


COMMAND = Command("dr", "application-level DR: status of the primary/standby pairs, "
                  "switch-over, failover and failback, history of switches and drills",
                  add_arguments, run)
