"""`medark agent enroll` and `medark agent run`: a protected host's link to the management
server (docs/server.md, "Agents").

`enroll --server URL --token T` spends a single-use enrolment token for the agent's own
credential, kept in STATE-DIR/agent.json at 0600 (never printed). `run` runs the local
schedule of the plan file exactly as `medark daemon` does, so backups go on while the
server is down, and beside it heartbeats, takes the jobs the server queues (only backup,
check and restore_test of its own plans) and reports results, its offline queue when the
server is back. Every connection goes out from the agent.

Exit codes: 0 stopped by SIGTERM/SIGINT (run) or enrolled; 2 bad usage (no state, a
server URL that is not one, already enrolled); 15 invalid configuration; 32 the server
refused the enrolment token or the agent's credential (wrong, used, expired, revoked);
1 the server could not be reached at enrolment.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from types import FrameType
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.event_line import event_line
from medark.cli.plan_options import add_config_option
from medark.errors import UsageError
from medark.util import clock

if TYPE_CHECKING:
    from medark.cli.context import Context

HELP = "a protected host's agent for the management server: enroll, run"
STATE_HELP = "the agent's state directory (default /var/lib/medark/agent)"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0.2 to 3600 seconds")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from medark.cli.parser import global_options

    p.epilog = ("Enrol once with a token from the system administrator (POST "
                "/api/agents/enrolment-tokens), then run the agent as a service. "
                "See docs/server.md, \"Agents\".")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    enroll = sub.add_parser("enroll", parents=[global_options()],
                            help="enrol this host with the management server",
                            description="spend a single-use enrolment token for this "
                            "agent's own credential, kept in STATE-DIR/agent.json (0600), "
                            "with --cacert FILE: the CA the server's certificate is "
                            "verified against from now on; exit 32 when the token is "
                            "refused")
    enroll.add_argument("--server", required=True, metavar="URL",
                        help="the management server, https://HOST:PORT (…/api optional)")
    enroll.add_argument("--token", required=True, metavar="TOKEN",
                        help="the enrolment token (single use, expires)")
    enroll.add_argument("--name", metavar="NAME",
                        help="the agent's name in its institution (default: the token's "
                             "name, else this host's name)")
    enroll.add_argument("--state-dir", metavar="DIR", help=STATE_HELP)
    run = sub.add_parser("run", parents=[global_options()],
                         help="run the local schedule and serve the management server",
                         description="run the plans' schedules as `medark daemon` does, "
                         "heartbeat, take jobs from the server and report results; "
                         "exit 32 when the server refuses the agent's credential")
    run.add_argument("--state-dir", metavar="DIR", help=STATE_HELP)
    add_config_option(run)
    run.add_argument("--catalog", metavar="URL",
                     help="the local job catalog (default sqlite in the state directory)")
    run.add_argument("--heartbeat", type=_seconds, default=10.0, metavar="SECONDS",
                     help="seconds between heartbeats (default 10)")
    run.add_argument("--wait", type=int, choices=range(1, 56), default=25, metavar="SECONDS",
                     help="how long one request for a job waits at the server (default 25)")
    run.add_argument("--grace", type=_seconds, default=60.0, metavar="SECONDS",
                     help="at shutdown, how long running jobs may finish (default 60)")


def run(ctx: Context) -> int:
    action = getattr(ctx.args, "action", None)
    if action == "enroll":
        return _enroll(ctx)
    if action == "run":
        return _run(ctx)
    raise UsageError("medark agent: give an action, enroll or run (see --help)")


def _enroll(ctx: Context) -> int:
    from medark import __version__
    from medark.agent.client import Client
    from medark.agent.state import STATE_FILE, AgentState, save, state_dir

    args = ctx.args
    directory = state_dir(args.state_dir)
    if (directory / STATE_FILE).exists():
        raise UsageError(f"{directory / STATE_FILE} exists: this agent is enrolled "
                         "already (remove the file to enrol it again)")
    given = getattr(args, "cacert", None)  # the global option: the server's CA here
    cacert = os.path.abspath(given) if given else None
    client = Client(args.server, cacert=cacert)
    body = {"token": args.token, "host": socket.gethostname()[:255], "version": __version__}
    if args.name:
        body["name"] = args.name
    answer = client.call("POST", "/agent/enroll", body)[1]
    agent = answer["agent"]
    state = AgentState(client.server, agent["name"], agent["institution"],
                       answer["credential"], cacert)
    save(directory, state)
    if ctx.out.as_json:
        ctx.out.json({"message_type": "agent_enrolled", "name": state.name,
                      "institution": state.institution, "server": state.server,
                      "state_file": str(directory / STATE_FILE)})
    else:
        ctx.out.text(f"enrolled as agent {state.name} of {state.institution} with "
                     f"{state.server}; credential kept in {directory / STATE_FILE}")
    return 0


def _run(ctx: Context) -> int:
    from medark.agent.client import Client
    from medark.agent.state import load, prepare_dir, state_dir
    from medark.agent.uplink import Uplink, UplinkOptions
    from medark.catalog.store import Catalog
    from medark.scheduler.daemon import Daemon, DaemonOptions
    from medark.service.plans import config_path, load_plans

    args = ctx.args
    directory = state_dir(args.state_dir)
    state = load(directory)
    prepare_dir(directory)
    path = config_path(args.config)
    config = load_plans(path)
    url = args.catalog or f"sqlite:///{directory / 'catalog.db'}"
    client = Client(state.server, state.credential, state.cacert)
    catalog = Catalog(url)
    lock = threading.Lock()

    def event(kind: str, details: dict[str, object]) -> None:
        with lock:
            if ctx.out.as_json:
                ctx.out.json({"message_type": "agent", "event": kind,
                              "time": clock.format_time(clock.now()), **details})
            else:
                ctx.out.text(event_line(clock.format_time(clock.now()), kind, details))

    daemon = Daemon(config, catalog, DaemonOptions(grace=args.grace,
                                                   config_file=str(path.resolve()),
                                                   catalog_url=url), event)
    uplink = Uplink(state, directory, config, catalog, client, event, daemon.stop,
                    UplinkOptions(args.heartbeat, args.wait, str(path.resolve())))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        daemon.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        event("ready", {"agent": f"{state.institution}/{state.name}",
                        "server": state.server, "plans": len(config.plans),
                        "catalog": catalog.public_url})
        uplink.start()
        daemon.run()
        uplink.stop(args.grace)
        if uplink.refused is not None:
            raise uplink.refused
        event("stopped", {})
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        catalog.close()
    return 0


COMMAND = Command("agent", HELP, add_arguments, run)
