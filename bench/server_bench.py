#!/usr/bin/env python3
"""The management server under a regional center's load (issue 16): list endpoints'
latency, agents' heartbeat throughput and how soon an agent starts a "run now" job.

The shape: one regional center with `--hospitals` district hospitals and `--clinics`
township clinics, `--systems` systems in their medark.toml configurations (one plan
each), `--jobs` job rows over 90 days (mostly succeeded, as agents report their own
runs), `--agents` enrolled agents heartbeating every 10 s. On a new PostgreSQL database
(`--database`, created here and dropped after), one `medark server` process, then two
(`--processes 1,2`: no balancer, the clients alternate between them).

Measured with closed-loop keep-alive clients:
* each list endpoint with `--clients` concurrent clients for `--seconds` (a center
  viewer's and a hospital viewer's API token; session cookies for /api/users, which
  only a security administrator reads, and once for /api/jobs), p50 and p99, from wrk
  (`--load-client wrk`, the default when wrk is on PATH: bench/_wrk_load.py) or from
  httpx clients in this process's threads (`--load-client python`); then with one
  httpx client for `--solo-seconds`;
* heartbeats per second with every agent heartbeating back to back;
* "run now" (POST /api/jobs) until the job's started_at, with a real `medark agent run`
  long-polling, `--job-starts` times.
Run: ``.venv/bin/python bench/server_bench.py [--runs 3] [--json FILE]``; a smoke run:
``--hospitals 1 --clinics 1 --systems 4 --jobs 100 --agents 2 --seconds 2 --runs 1
--job-starts 2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _wrk_load
from _server_measure import heartbeat_rate, hold, list_latency
from _server_report import show, summarise
from _server_runnow import job_starts, start_agent
from _server_site import Failed, Session, Site, check, institutions

__all__ = ["Failed", "Session", "Site", "check", "institutions", "main"]
"""What bench/console_bench.py builds its site with."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=4)
    parser.add_argument("--clinics", type=int, default=13)
    parser.add_argument("--systems", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--solo-seconds", type=float, default=5,
                        help="each endpoint with one client too, for this long")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--load-client", choices=("wrk", "python"),
                        help="what sends the list endpoints' load: wrk (the default when "
                             "it is on PATH) or httpx clients in this process's threads")
    parser.add_argument("--wrk-threads", type=int, default=2,
                        help="wrk's threads (at least one per server process)")
    parser.add_argument("--job-starts", type=int, default=20)
    parser.add_argument("--agent-wait", type=int, default=25, choices=range(1, 56),
                        metavar="SECONDS",
                        help="the run-now agent's long poll (its --wait; 25, the agent's "
                             "default): a stopping agent finishes its poll first, so the "
                             "smoke test's shorter one ends the bench sooner")
    parser.add_argument("--database", default="medark_bench_server")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    parser.add_argument("--only", metavar="WORDS",
                        help="measure only the list cases whose label contains one of "
                             "these comma-separated words (e.g. /api/jobs,/api/users)")
    parser.add_argument("--no-heartbeats", action="store_true",
                        help="skip the heartbeat throughput measurement")
    parser.add_argument("--hold", metavar="FILE",
                        help="after the setup, write the servers' URLs and pids and the "
                             "cases' paths and credentials to FILE (JSON) and wait until "
                             "FILE is deleted (to profile a server by hand), then measure")
    args = parser.parse_args(argv)
    if args.hospitals < 1 or args.agents < 1 or args.systems < args.hospitals + args.clinics:
        parser.error("at least one hospital and one agent, and a system per institution")
    wrk = _wrk_load.available()
    if args.wrk_threads < 1 or args.clients < 1:
        parser.error("--clients and --wrk-threads: at least 1")
    if args.load_client == "wrk" and not wrk:
        parser.error("--load-client wrk: wrk is not on PATH (apt-get install wrk)")
    note = "" if wrk or args.load_client else "; wrk is not on PATH: apt-get install wrk"
    args.load_client = args.load_client or ("wrk" if wrk else "python")
    result: dict[str, Any] = {
        "args": vars(args), "shapes": [], "load_client": args.load_client,
        "load_client_note": (f"{args.wrk_threads} threads" if
                             args.load_client == "wrk" else "httpx threads") + note,
        "when": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="medark-server-bench-") as tmp, \
            ExitStack() as stack:
        site = Site(args, Path(tmp), stack)
        site.build()
        result["seed_seconds"] = site.seed_seconds
        if args.job_starts:
            start_agent(site)
        if args.hold:
            hold(site, Path(args.hold))
        for processes in (int(p) for p in args.processes.split(",")):
            urls = site.servers(processes)
            runs = [{"lists": list_latency(site, urls), "heartbeat":
                     heartbeat_rate(site, urls)} for _ in range(args.runs)]
            starts = job_starts(site, urls, args.job_starts) if args.job_starts else None
            result["shapes"].append({"processes": processes, "runs": runs,
                                     "summary": summarise(runs), "job_starts": starts})
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2))
    show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
