"""`medark dr status [SYSTEM]` / `dr history [SYSTEM]`: the DR pairs of [dr.SYSTEM].

status connects to both nodes of every PostgreSQL stream-fed system (docs/dr.md): which
node is primary and which standby, streaming, lag in bytes and seconds against the
system's limits, the health checks, the pooler, and the last switch and drill. It exits
0 when every system is healthy and within its limits, 26 when a standby cannot take
over (unreachable, not streaming), 27 when a lag is over its limit. history lists the
DR actions the catalog recorded, newest first. Neither changes anything.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option

if TYPE_CHECKING:
    from medark.catalog.dr_records import DrActionRecord
    from medark.cli.context import Context
    from medark.config.plans import MedarkConfig
    from medark.service.dr import DrStatus

ACTIONS = ("status", "history")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS,
                   help="status (the pairs as found now) or history (DR actions recorded)")
    p.add_argument("system", nargs="?", metavar="SYSTEM",
                   help="only this system (a [dr.SYSTEM] table); default: every one")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    config = load_plans(config_path(args.config))
    if args.action == "history":
        return _history(ctx, config)
    return _status(ctx, config)


def _status(ctx: Context, config: MedarkConfig) -> int:
    from medark.errors import CatalogError
    from medark.service.dr import GRAVITY, dr_status, selected
    from medark.service.jobs import opened_catalog

    args = ctx.args
    selected(config, args.system)  # an unknown system: exit 2 before any connection
    try:
        with opened_catalog(config, args.catalog) as catalog:
            found = dr_status(config, args.system, catalog)
    except CatalogError as exc:
        ctx.out.warn(f"warning: {exc}; the last switch and drill are not shown")
        found = dr_status(config, args.system)
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
        out.prose(f"  {node.configured} {node.address} (site {node.site}): {node.role}, "
                  f"timeline {node.timeline}{extra}", indent=6)
    slot = (f"slot {s.slot} {'active' if s.slot_active else 'inactive'}"
            if s.slot_active is not None else f"slot {s.slot} not found on the primary")
    streaming = {True: "streaming", False: "not streaming", None: "unknown"}[s.streaming]
    out.prose(f"  replication: {streaming}, {slot}", indent=6)
    if s.lag_bytes is not None:
        seconds = "unknown" if s.lag_seconds is None else _seconds(s.lag_seconds)
        out.prose(f"  lag: {s.lag_bytes} bytes, {seconds} ({s.lag_basis}); limits "
                  f"{s.max_lag_bytes} bytes, {s.max_lag_seconds:g} s"
                  + (f": OVER ({'; '.join(s.over_limit)})" if s.over_limit else ""), indent=6)
    else:
        out.prose(f"  lag: unknown{': ' + s.lag_error if s.lag_error else ''}", indent=6)
    out.text(f"  switch-over now: {'would LOSE data' if s.would_lose_data else 'no data loss'}")
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

    return f"{record.kind} {clock.format_time(record.started_at)} {record.status}"


def _history(ctx: Context, config: MedarkConfig) -> int:
    from medark.service.dr import dr_history
    from medark.service.jobs import opened_catalog
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
        took = "" if r.switch_seconds is None else f", switch {r.switch_seconds:.1f} s"
        ctx.out.text(f"#{r.id} {clock.format_time(r.started_at)} {r.system} {r.kind} "
                     f"{r.status} by {r.requested_by}{took}")
        if r.error:
            ctx.out.prose(f"    {r.error}", indent=6)
    return 0


COMMAND = Command("dr", "application-level DR: status of the primary/standby pairs, "
                  "history of switches and drills", add_arguments, run)
