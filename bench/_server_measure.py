"""bench/server_bench.py's measurements of the list endpoints (under `--clients` clients
from wrk or Python threads, then one client) and of the agents' heartbeat throughput;
and `--hold`, which leaves the site up for profiling by hand."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import _wrk_load
from _server_load import Fleet, get, hammer, heartbeat
from _server_site import Failed, Site, institutions


def cases(site: Site) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
    """(label, path, headers, cookies) of each list endpoint measured."""
    center = {"Authorization": f"Bearer {site.tokens['center']}"}
    hospital = {"Authorization": f"Bearer {site.tokens['hospital']}"}
    other = institutions(site.args.hospitals, site.args.clinics)[-1]
    return [
        ("GET /api/jobs?limit=100 (center token)", "/api/jobs?limit=100", center, {}),
        ("GET /api/jobs?limit=100 (hospital token)", "/api/jobs?limit=100", hospital, {}),
        (f"GET /api/jobs?institution={other}&limit=100 (center token)",
         f"/api/jobs?institution={other}&limit=100", center, {}),
        ("GET /api/jobs?limit=100 (center session)", "/api/jobs?limit=100", {},
         site.viewers["center"].cookies()),
        ("GET /api/systems (center token)", "/api/systems", center, {}),
        ("GET /api/plans (center token)", "/api/plans", center, {}),
        ("GET /api/alerts (center token)", "/api/alerts", center, {}),
        ("GET /api/agents (center token)", "/api/agents", center, {}),
        ("GET /api/users (secadmin session)", "/api/users", {}, site.secadmin.cookies()),
    ]


def chosen(site: Site) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
    """The cases whose label contains one of `--only`'s words (every case without it)."""
    words = [w for w in (site.args.only or "").split(",") if w]
    return [case for case in cases(site) if not words or any(w in case[0] for w in words)]


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time (user + system) the processes used so far (Linux /proc; NaN
    elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def list_latency(site: Site, urls: list[str]) -> list[dict[str, Any]]:
    """Every list endpoint under `--clients` clients, while the agents heartbeat every
    10 s; with the servers' CPU time per request under that load (the heartbeats, 5/s
    with 50 agents, included), the figure a shared machine's load does not change."""
    rows = []
    pids = [p.pid for p in site.procs]
    with Fleet(urls, site.agents, 10.0):
        for label, path, headers, cookies in chosen(site):
            cpu = cpu_seconds(pids)
            load = under_load(site, urls, path, headers, cookies)
            cpu = cpu_seconds(pids) - cpu
            solo = hammer(urls[:1], 1, site.args.solo_seconds, get(path),
                          headers=headers, cookies=cookies)
            rows.append({**load, "case": label, "errors": load["errors"] + solo.errors,
                         "first_error": load["first_error"] or solo.first_error,
                         "solo_p50_ms": solo.percentile(50),
                         "cpu_ms": cpu * 1000 / max(1, load["requests"]),
                         "solo_p99_ms": solo.percentile(99)})
    return rows


def under_load(site: Site, urls: list[str], path: str, headers: dict[str, str],
               cookies: dict[str, str]) -> dict[str, Any]:
    """`path` under `--clients` closed-loop clients, from wrk or from Python threads;
    with the load client's own CPU time per request (wrk's, or this whole process's:
    the agents' heartbeat threads are in it too)."""
    args = site.args
    began = os.times()
    row = load_from(site, urls, path, headers, cookies)
    ended = os.times()
    spent = (ended.children_user + ended.children_system - began.children_user
             - began.children_system) if args.load_client == "wrk" else (
        ended.user + ended.system - began.user - began.system)
    return {**row, "client_cpu_ms": spent * 1000 / max(1, row["requests"])}


def load_from(site: Site, urls: list[str], path: str, headers: dict[str, str],
              cookies: dict[str, str]) -> dict[str, Any]:
    args = site.args
    if args.load_client == "wrk":
        try:
            wrk = _wrk_load.run(urls, path, args.clients, args.wrk_threads, args.seconds,
                                headers, cookies, site.tmp)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            raise Failed(str(exc)) from None
        return {"requests": wrk.requests, "errors": wrk.errors,
                "first_error": wrk.first_error, "p50_ms": wrk.p50_ms,
                "p99_ms": wrk.p99_ms, "per_s": wrk.rate()}
    got = hammer(urls, args.clients, args.seconds, get(path), headers=headers,
                 cookies=cookies)
    return {"requests": len(got.latencies), "errors": got.errors,
            "first_error": got.first_error, "p50_ms": got.percentile(50),
            "p99_ms": got.percentile(99), "per_s": got.rate()}


def heartbeat_rate(site: Site, urls: list[str]) -> dict[str, Any] | None:
    """Every agent heartbeating back to back, each on its own connection (None with
    --no-heartbeats)."""
    if site.args.no_heartbeats:
        return None
    results = hammer(urls, len(site.agents), site.args.seconds,
                     [heartbeat(plans) for _cred, plans in site.agents],
                     headers=[{"Authorization": f"Bearer {cred}"}
                              for cred, _plans in site.agents])
    return {"heartbeats": len(results.latencies), "errors": results.errors,
            "first_error": results.first_error, "per_s": results.rate(),
            "p50_ms": results.percentile(50), "p99_ms": results.percentile(99)}


def hold(site: Site, where: Path) -> None:
    """The site's servers and credentials in `where` (only its owner may read it) until
    someone deletes it."""
    where.touch(mode=0o600)
    where.write_text(json.dumps({
        "urls": site.urls, "pids": [p.pid for p in site.procs],
        "cases": [{"case": label, "path": path, "headers": headers, "cookies": cookies}
                  for label, path, headers, cookies in cases(site)]}, indent=2))
    print(f"server_bench: holding; delete {where} to go on", flush=True)
    while where.exists():
        time.sleep(1)
