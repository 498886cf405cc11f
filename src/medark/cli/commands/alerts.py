"""`medark alerts [--open]`: alert history from the catalog, newest first — what fired,
when, and whether (and when) its condition cleared."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.plan_options import add_catalog_option, add_config_option

if TYPE_CHECKING:
    from medark.catalog.store import Delivery
    from medark.cli.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--open", action="store_true", help="only alerts not resolved yet")
    add_config_option(p)
    add_catalog_option(p)


def run(ctx: Context) -> int:
    from medark.service.catalog_access import opened_catalog  # SQLAlchemy: not at --help
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    config = None if args.catalog else load_plans(config_path(args.config))
    with opened_catalog(config, args.catalog) as catalog:
        alerts = catalog.alerts(open_only=args.open)
    if ctx.out.as_json:
        ctx.out.json([a.public() for a in alerts])
        return 0
    states = [f"resolved {a.resolved_at:%Y-%m-%d %H:%M:%S}" if a.resolved_at else "OPEN"
              for a in alerts]
    # columns as wide as their data; a long summary wraps under the state, 80 wide
    state_width = max((len(s) for s in states), default=0)
    key_width = max((len(a.key) for a in alerts), default=0)
    for alert, state in zip(alerts, states, strict=True):
        ctx.out.prose(f"{alert.opened_at:%Y-%m-%d %H:%M:%S}  {state:<{state_width}}  "
                      f"{alert.key:<{key_width}}  {alert.summary}"
                      f"{_delivery(alert.delivery)}", indent=21)
    return 0


def _delivery(delivery: Delivery | None) -> str:
    """Only what needs a look: a notice not (yet) delivered, and to which channels."""
    if delivery is None or delivery.status == "delivered":
        return ""
    missed = ", ".join(delivery.channels)
    return f"  [{delivery.state} notice {delivery.status.upper()}: {missed}]"


COMMAND = Command("alerts", "list the alerts the daemon raised", add_arguments, run)
