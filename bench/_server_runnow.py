"""bench/server_bench.py's "run now" measurement: a real `medark agent run` long-polling
the server, and the seconds from POST /api/jobs to the job's started_at."""

from __future__ import annotations

import random
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from _server_load import median
from _server_site import (
    DATA_PASSWORD,
    FILES_SYSTEM,
    HEAD,
    MEDARK,
    PLAN,
    RUN_NOW_PLAN,
    Failed,
    Site,
    check,
    institutions,
    stop_server,
)


def start_agent(site: Site) -> subprocess.Popen[str]:
    """A real `medark agent run` of the first hospital, enrolled with a token from the
    API, long-polling the first server for jobs of its one plan."""
    tmp, env = site.tmp, site.env
    made = subprocess.run([MEDARK, "init"], capture_output=True, text=True, check=False,
                          env={**env, "MEDARK_REPO": str(tmp / "repo"),
                               "MEDARK_PASSWORD": DATA_PASSWORD})
    if made.returncode != 0:
        raise Failed(f"medark init: {made.stderr.strip()}")
    config = tmp / "agent.toml"
    config.write_text(HEAD.format(inst="agent", count=1, repo=tmp / "repo",
                                  password=f'password_file = "{tmp / "password"}"')
                      + FILES_SYSTEM.format(name=RUN_NOW_PLAN, data=tmp / "data")
                      + PLAN.format(name=RUN_NOW_PLAN, repository="local", minute=0))
    inst = institutions(site.args.hospitals, site.args.clinics)[0]
    secret = check(site.sysadmin.client.post("/api/agents/enrolment-tokens", json={
        "institution": inst, "hours": 1, "name": "runner"}), 201, "runner's token")["secret"]
    state = tmp / "runner"
    enrolled = subprocess.run([MEDARK, "agent", "enroll", "--server", site.urls[0],
                               "--token", secret, "--state-dir", str(state)], env=env,
                              capture_output=True, text=True, check=False)
    if enrolled.returncode != 0:
        raise Failed(f"agent enroll: {enrolled.stderr.strip()}")
    log = (tmp / "agent.log").open("w")
    proc = subprocess.Popen([MEDARK, "agent", "run", "--state-dir", str(state),
                             "--config", str(config), "--wait", str(site.args.agent_wait)],
                            env=env, text=True, stdout=log, stderr=log)
    site.stack.callback(stop_server, proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = check(site.sysadmin.client.get("/api/agents"), 200, "agents")["agents"]
        if any(a["name"] == "runner" and a["plans"] == [RUN_NOW_PLAN] for a in listed):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise Failed(f"the agent did not come up: {(tmp / 'agent.log').read_text()[-500:]}")


def job_starts(site: Site, urls: list[str], count: int) -> dict[str, Any]:
    """Seconds from POST /api/jobs (run now) to the job's started_at, the POSTs going to
    the servers in turn at a random moment of the agent's long poll."""
    inst = institutions(site.args.hospitals, site.args.clinics)[0]
    csrf = str(site.sysadmin.client.headers["X-CSRF-Token"])
    clients = [httpx.Client(base_url=u, cookies=site.sysadmin.cookies(), timeout=60,
                            headers={"X-CSRF-Token": csrf}) for u in urls]
    waits: list[float] = []
    try:
        for k in range(count):
            client = clients[k % len(clients)]
            time.sleep(random.uniform(0.3, 1.5))
            posted = datetime.now(UTC)
            job = check(client.post("/api/jobs", json={
                "institution": inst, "plan": RUN_NOW_PLAN, "kind": "backup"}), 202,
                "run now")["job"]
            deadline = time.monotonic() + 120
            started = None
            while time.monotonic() < deadline:
                view = check(client.get(f"/api/jobs/{job['id']}"), 200, "job")["job"]
                if started is None and view["started_at"]:
                    started = datetime.fromisoformat(view["started_at"])
                    waits.append((started - posted).total_seconds())
                if view["status"] not in ("queued", "running"):
                    break
                time.sleep(0.02 if started is None else 0.2)
            else:
                raise Failed(f"job {job['id']} did not end in 120 s")
    finally:
        for c in clients:
            c.close()
    return {"runs": len(waits), "median_s": median(waits),
            "max_s": max(waits) if waits else float("nan")}
