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
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyotp
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _wrk_load
from _server_load import Fleet, get, hammer, heartbeat, median

from medark.catalog import job_queue
from medark.catalog.models import Job
from medark.catalog.models import JobEvent as EventRow
from medark.catalog.store import Catalog

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MEDARK = str(Path(sys.executable).with_name("medark"))
PASSWORD = "Bench-Passw0rd-{}"
DATA_PASSWORD = "bench-repository-password"
RUN_NOW_PLAN = "runnow"
DAYS = 90
RECORDED = 1000

SYSTEM = """
[systems.{name}]
owner = "IT"
records = "outpatient"

[[systems.{name}.sources]]
type = "postgres"
dsn = "host=db-{name} dbname={name}"
"""
FILES_SYSTEM = """
[systems.{name}]
owner = "IT"
records = "outpatient"

[[systems.{name}.sources]]
type = "files"
paths = ["{data}"]
"""
PLAN = """
[plans.{name}]
system = "{name}"
repository = "{repository}"
schedule = "{minute} 1 * * *"
rpo = "1d"
rto = "4h"
retention = {{ daily = 30, yearly = 15 }}
"""
HEAD = """\
# {inst}: {count} systems
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
{password}
"""


class Failed(SystemExit):
    def __init__(self, what: str) -> None:
        super().__init__(f"server_bench: {what}")


def check(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise Failed(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


# --- the site ---------------------------------------------------------------------

def institutions(hospitals: int, clinics: int) -> list[str]:
    return ([f"hospital-{i:02d}" for i in range(1, hospitals + 1)]
            + [f"clinic-{i:02d}" for i in range(1, clinics + 1)])


def system_counts(names: list[str], systems: int) -> dict[str, int]:
    """A district hospital runs four times a township clinic's systems."""
    weights = [4 if n.startswith("hospital") else 1 for n in names]
    counts = [max(1, systems * w // sum(weights)) for w in weights]
    for i in range(systems - sum(counts)):
        counts[i % len(counts)] += 1
    return dict(zip(names, counts, strict=True))


def document(inst: str, count: int, tmp: Path) -> tuple[str, list[str]]:
    """The institution's medark.toml and its plans; the first hospital's first system is
    the files the real agent backs up when asked to run now."""
    first = inst == "hospital-01"
    names = [f"{inst.replace('-', '')}-s{i:02d}" for i in range(1, count + 1)]
    if first:
        names[0] = RUN_NOW_PLAN
    parts = [HEAD.format(inst=inst, count=count, repo=tmp / "repo" if first else
                         f"/backup/{inst}",
                         password=f'password_file = "{tmp / "password"}"' if first else "")]
    for n, name in enumerate(names):
        parts.append(FILES_SYSTEM.format(name=name, data=tmp / "data") if name ==
                     RUN_NOW_PLAN else SYSTEM.format(name=name))
        parts.append(PLAN.format(name=name, repository="local", minute=n % 60))
    return "".join(parts), names


class Session:
    """A signed-in user's client (cookie and CSRF header)."""

    def __init__(self, url: str, name: str, one_time: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=60)
        me = self.login(name, one_time)
        self.password = PASSWORD.format(name[::-1])
        check(self.client.post("/api/me/password", json={
            "current_password": one_time, "new_password": self.password}), 200,
            f"{name}: password change")
        if me["totp_enrolment_required"]:
            uri = check(self.client.post("/api/me/totp"), 200, "TOTP")["otpauth_uri"]
            totp = pyotp.parse_uri(uri)
            assert isinstance(totp, pyotp.TOTP)
            check(self.client.post("/api/me/totp/confirm", json={"code": totp.now()}),
                  200, f"{name}: TOTP")

    def login(self, name: str, password: str) -> dict[str, Any]:
        reply = check(self.client.post("/api/login", json={
            "username": name, "password": password}), 200, f"{name}: login")
        self.client.headers["X-CSRF-Token"] = reply["csrf_token"]
        return dict(reply["user"])

    def cookies(self) -> dict[str, str]:
        return {"medark_session": str(self.client.cookies.get("medark_session"))}


def env_for(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEDARK_PASSWORD", "MEDARK_CATALOG", "MEDARK_REPO"))}
    env.update({"HOME": str(tmp / "home"), "MEDARK_CACHE_DIR": str(tmp / "cache"),
                "MEDARK_AUDIT_KEY_FILE": str(tmp / "audit.key")})
    return env


def start_server(env: dict[str, str], catalog: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([MEDARK, "server", "--listen", "127.0.0.1:0", "--login-rate",
                             "100000", "--single-security-admin"],
                            env={**env, "MEDARK_CATALOG": catalog}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    found = re.search(r"management server at (\S+)/api ", banner)
    if not found:
        proc.kill()
        raise Failed(f"the server did not start: {banner!r}")
    return proc, found.group(1)


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def seed_jobs(catalog: Catalog, plans: dict[str, list[str]], agents: dict[str, list[str]],
              count: int, seed: int = 1) -> float:
    """`count` jobs as agents report their own runs, over 90 days: 97% succeeded, 3%
    failed; 10% checks and restore tests; seconds taken. The first RECORDED through
    job_queue.record_remote, the rest as the same rows in bulk (one at a time took 25
    minutes for 100,000 on this machine)."""
    rng = random.Random(seed)
    weights = [len(p) for p in plans.values()]
    names = list(plans)
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        inst = rng.choices(names, weights)[0]
        when = now - timedelta(seconds=rng.uniform(60, DAYS * 86400))
        roll = rng.random()
        kind = "backup" if roll < 0.9 else "check" if roll < 0.95 else "restore_test"
        status = "failed" if rng.random() < 0.03 else "succeeded"
        started = when + timedelta(seconds=rng.uniform(0, 300))
        rows.append({"origin_key": f"{inst}/bench:{i}", "institution": inst,
                     "agent": rng.choice(agents.get(inst) or ["agent"]),
                     "plan": rng.choice(plans[inst]), "kind": kind, "status": status,
                     "scheduled_for": when, "started_at": started,
                     "finished_at": started + timedelta(seconds=rng.uniform(5, 3600)),
                     "error": "repository unreachable" if status == "failed" else None,
                     "snapshot_id": uuid.UUID(int=rng.getrandbits(128)).hex
                     if status == "succeeded" and kind == "backup" else None,
                     "bytes_added": rng.randrange(1 << 30) if kind == "backup" else None,
                     "details": None})
    began = time.perf_counter()
    through_api = rows[:RECORDED]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda row: job_queue.record_remote(catalog, **row), through_api))
    bulk_insert(catalog, rows[RECORDED:])
    for i in range(min(500, count // 20 + 1)):  # open and resolved alerts
        inst = rng.choice(names)
        key = f"bench:{inst}:{i}"
        catalog.raise_alert(key, "job_failed", rng.choice(plans[inst]),
                            f"a backup of {inst} failed", institution=inst)
        if i % 3:
            catalog.resolve_alert(key)
    return time.perf_counter() - began


def bulk_insert(catalog: Catalog, rows: list[dict[str, Any]]) -> None:
    """The rows record_remote would write (the job, attempt 1, and its status event),
    many to a statement."""
    now = datetime.now(UTC)
    with catalog._session() as session:
        for at in range(0, len(rows), 5000):
            chunk = rows[at:at + 5000]
            ids = session.scalars(insert(Job).returning(Job.id), [
                {**row, "attempt": 1, "host": "", "cancel_requested": False}
                for row in chunk]).all()
            session.execute(insert(EventRow), [
                {"job_id": job_id, "at": now, "kind": "status",
                 "data": {"status": row["status"], "error": row["error"],
                          "snapshot_id": row["snapshot_id"]}}
                for job_id, row in zip(ids, chunk, strict=True)])


class Site:
    """The database, the servers, and the accounts, tokens and agents the load uses."""

    def __init__(self, args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
        self.args, self.tmp, self.stack = args, tmp, stack
        self.env = env_for(tmp)
        self.catalog_url = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
        self.procs: list[subprocess.Popen[str]] = []
        self.urls: list[str] = []
        self.agents: list[tuple[str, list[str]]] = []
        self.plans: dict[str, list[str]] = {}
        self.tokens: dict[str, str] = {}
        self.seed_seconds = 0.0

    def database(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.args.database}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.args.database}"')

        def drop() -> None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.args.database}" WITH (FORCE)')
        if not self.args.keep:
            self.stack.callback(drop)

    def servers(self, count: int) -> list[str]:
        """`count` server processes on the catalog (the ones running beyond it stop)."""
        while len(self.procs) > count:
            stop_server(self.procs.pop())
            self.urls.pop()
        while len(self.procs) < count:
            proc, url = start_server(self.env, self.catalog_url)
            self.procs.append(proc)
            self.urls.append(url)
        return self.urls

    def build(self) -> None:
        args, tmp = self.args, self.tmp
        (tmp / "home").mkdir()
        (tmp / "data").mkdir()
        (tmp / "data" / "study.dcm").write_bytes(os.urandom(64 * 1024))
        (tmp / "password").write_text(DATA_PASSWORD + "\n")
        self.database()
        made = subprocess.run([MEDARK, "server", "init", "--catalog", self.catalog_url],
                              env=self.env, capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise Failed(f"server init: {made.stderr.strip()}")
        one_time = dict(re.findall(r"^\s+(\w+)\s+\w+\s+(\S+)$", made.stdout, re.M))
        self.stack.callback(self.servers, 0)
        url = self.servers(1)[0]
        self.sysadmin = Session(url, "sysadmin", one_time["sysadmin"])
        self.secadmin = Session(url, "secadmin", one_time["secadmin"])
        names = institutions(args.hospitals, args.clinics)
        for inst, count in system_counts(names, args.systems).items():
            check(self.sysadmin.client.post("/api/institutions", json={
                "name": inst, "title": inst}), 201, f"institution {inst}")
            doc, self.plans[inst] = document(inst, count, tmp)
            check(self.sysadmin.client.put(f"/api/institutions/{inst}/config", json={
                "document": doc, "comment": "bench", "base_version": None}), 200,
                f"{inst}'s configuration")
        self.accounts(names[0])
        self.enrol(names)
        catalog = Catalog(self.catalog_url)
        try:
            by_inst: dict[str, list[str]] = {}
            for name, inst in self.agent_names:
                by_inst.setdefault(inst, []).append(name)
            self.seed_seconds = seed_jobs(catalog, self.plans, by_inst, args.jobs)
        finally:
            catalog.close()
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={args.database}",
                             autocommit=True) as db:
            db.execute("VACUUM ANALYZE")

    def accounts(self, hospital: str) -> None:
        """A center viewer and a hospital viewer, signed in, and an API token of each."""
        self.viewers: dict[str, Session] = {}
        for who, inst in (("center", "center"), ("hospital", hospital)):
            name = f"{who}-viewer"
            made = check(self.secadmin.client.post("/api/users", json={
                "name": name, "institution": inst, "roles": ["viewer"]}), 201, name)
            self.viewers[who] = Session(self.urls[0], name, made["one_time_password"])
            token = check(self.secadmin.client.post("/api/tokens", json={
                "name": f"{who}-bot", "role": "viewer", "institution": inst, "days": 1}),
                201, f"{who} token")
            self.tokens[who] = token["secret"]

    def enrol(self, names: list[str]) -> None:
        """The agents, each enrolled with its own single-use token through the API."""
        self.agent_names: list[tuple[str, str]] = []
        with httpx.Client(base_url=self.urls[0], timeout=60) as anonymous:
            for i in range(self.args.agents):
                inst = names[i % len(names)]
                name = f"agent-{i:02d}"
                secret = check(self.sysadmin.client.post(
                    "/api/agents/enrolment-tokens",
                    json={"institution": inst, "hours": 1, "name": name}), 201,
                    f"{name}'s token")["secret"]
                enrolled = check(anonymous.post("/api/agent/enroll", json={
                    "token": secret, "name": name, "host": f"{name}.{inst}",
                    "version": "bench"}), 201, f"{name}: enrol")
                self.agents.append((enrolled["credential"], self.plans[inst]))
                self.agent_names.append((name, inst))


# --- the measurements ---------------------------------------------------------------

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
                             "--config", str(config)], env=env, text=True,
                            stdout=log, stderr=log)
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


# --- the report --------------------------------------------------------------------

def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of each figure, and the spread of p99."""
    cases_ = [r["case"] for r in runs[0]["lists"]]
    lists = []
    for i, label in enumerate(cases_):
        rows = [run["lists"][i] for run in runs]
        lists.append({"case": label, "p50_ms": median([r["p50_ms"] for r in rows]),
                      "p99_ms": median([r["p99_ms"] for r in rows]),
                      "p99_min": min(r["p99_ms"] for r in rows),
                      "p99_max": max(r["p99_ms"] for r in rows),
                      "per_s": median([r["per_s"] for r in rows]),
                      "cpu_ms": median([r["cpu_ms"] for r in rows]),
                      "client_cpu_ms": median([r["client_cpu_ms"] for r in rows]),
                      "solo_p50_ms": median([r["solo_p50_ms"] for r in rows]),
                      "solo_p99_ms": median([r["solo_p99_ms"] for r in rows]),
                      "errors": sum(r["errors"] for r in rows),
                      "first_error": next((r["first_error"] for r in rows
                                           if r["first_error"]), "")})
    beats = [run["heartbeat"] for run in runs if run["heartbeat"]]
    if not beats:
        return {"lists": lists, "heartbeat": None}
    return {"lists": lists,
            "heartbeat": {"per_s": median([b["per_s"] for b in beats]),
                          "min": min(b["per_s"] for b in beats),
                          "max": max(b["per_s"] for b in beats),
                          "p99_ms": median([b["p99_ms"] for b in beats]),
                          "errors": sum(b["errors"] for b in beats),
                          "first_error": next((b["first_error"] for b in beats
                                               if b["first_error"]), "")}}


def show(result: dict[str, Any]) -> None:
    args = result["args"]
    print(f"server bench: {args['hospitals']} hospitals + {args['clinics']} clinics, "
          f"{args['systems']} systems, {args['jobs']} jobs, {args['agents']} agents; "
          f"{args['clients']} clients x {args['seconds']} s; median of {args['runs']} "
          f"runs; {os.cpu_count()} CPUs; seeding {result['seed_seconds']:.0f} s")
    print(f"load client for the {args['clients']} clients: {result['load_client']} "
          f"({result['load_client_note']}); 1 client: httpx")
    for shape in result["shapes"]:
        print(f"\n{shape['processes']} server process(es)")
        print(f"{'case':<62} {'p50 ms':>7} {'p99 ms':>7} {'(min-max)':>13} {'req/s':>6}"
              f" {'1 client p50/p99':>17} {'CPU ms/req':>10} {'client':>6}")
        for row in shape["summary"]["lists"]:
            print(f"{row['case']:<62} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} "
                  f"{row['p99_min']:>6.0f}-{row['p99_max']:<6.0f} {row['per_s']:>6.0f} "
                  f"{row['solo_p50_ms']:>8.1f}/{row['solo_p99_ms']:<8.1f} "
                  f"{row['cpu_ms']:>10.1f} {row['client_cpu_ms']:>6.1f}"
                  + (f"  errors {row['errors']}: {row['first_error']}"
                     if row["errors"] else ""))
        beat = shape["summary"]["heartbeat"]
        if beat:
            print(f"heartbeats/s ({args['agents']} agents back to back): {beat['per_s']:.0f} "
                  f"({beat['min']:.0f}-{beat['max']:.0f}), p99 {beat['p99_ms']:.0f} ms"
                  + (f"  errors {beat['errors']}: {beat['first_error']}"
                     if beat["errors"] else ""))
        starts = shape["job_starts"]
        if starts:
            print(f"run now -> started: median {starts['median_s']:.2f} s, max "
                  f"{starts['max_s']:.2f} s over {starts['runs']} runs")


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
