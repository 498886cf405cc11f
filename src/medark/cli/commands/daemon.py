"""`medark daemon [--config FILE] [--catalog URL]`: run the plans' schedules until SIGTERM.

Every job is recorded in the catalog (`medark jobs`); events (started, finished,
skipped, catch-up, reaped) are printed one per line, whole even when jobs finish together
(`TIME EVENT key=value …`, cli/event_line.py), as JSON objects with --json. SIGTERM or
SIGINT: stop scheduling, let running jobs finish for --grace seconds, then stop them.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.event_line import event_line
from medark.cli.plan_options import add_catalog_option, add_config_option
from medark.util import clock

if TYPE_CHECKING:
    from medark.cli.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    add_catalog_option(p)
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="how often the schedules are looked at (default 1)")
    p.add_argument("--retry-base", type=float, default=30.0, metavar="SECONDS",
                   help="first retry delay of a failed job, doubled each retry (default 30)")
    p.add_argument("--grace", type=float, default=60.0, metavar="SECONDS",
                   help="at shutdown, how long running jobs may finish (default 60)")
    p.add_argument("--dr-every", type=float, default=30.0, metavar="SECONDS",
                   help="how often the [dr] pairs are supervised: lag, replay, synchronous "
                   "mode (default 30)")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (RPO per plan, "
                   "last success, durations, bytes, job counts)")


def run(ctx: Context) -> int:
    from medark.catalog.store import Catalog  # SQLAlchemy, croniter: not at --help
    from medark.scheduler.daemon import Daemon, DaemonOptions
    from medark.service.catalog_access import catalog_url
    from medark.service.jobs import serve_metrics
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    path = config_path(args.config)
    config = load_plans(path)
    url = catalog_url(config, args.catalog)
    catalog = Catalog(url)

    def event(kind: str, details: dict[str, object]) -> None:
        if ctx.out.as_json:
            ctx.out.json({"message_type": "daemon", "event": kind,
                          "time": clock.format_time(clock.now()), **details})
        else:
            ctx.out.text(event_line(clock.format_time(clock.now()), kind, details))

    # the DR children read the same file and record in the same catalog
    options = DaemonOptions(args.poll, args.retry_base, args.grace, config_file=str(path.resolve()),
                            catalog_url=url, dr_every=args.dr_every)
    daemon = Daemon(config, catalog, options, event)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        daemon.stop()

    def crashed(failure: threading.ExceptHookArgs) -> None:
        # a job thread's unexpected error: one event line, not a traceback among the events
        event("thread_failed", {"thread": failure.thread.name if failure.thread else None,
                                "error": f"{failure.exc_type.__name__}: {failure.exc_value}"})

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous_hook, threading.excepthook = threading.excepthook, crashed
    metrics = serve_metrics(args.metrics_listen, config, catalog) if args.metrics_listen else None
    try:
        event("ready", {"plans": len(config.plans), "catalog": catalog.public_url,
                        "metrics": f"http://{args.metrics_listen}/metrics" if metrics else None})
        daemon.run()
        event("stopped", {})
    finally:
        if metrics is not None:
            metrics.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        threading.excepthook = previous_hook
        catalog.close()
    return 0


COMMAND = Command("daemon", "run the protection plans on their schedules", add_arguments, run)
