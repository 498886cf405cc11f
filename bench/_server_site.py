"""bench/server_bench.py's site: a regional center's institutions and configurations on a
new PostgreSQL catalog, `medark server` processes on it, the signed-in accounts, API
tokens and enrolled agents the load uses, and a job history (bench/_server_seed.py).
bench/console_bench.py builds its site with this code too."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyotp
from _server_seed import seed_jobs

from medark.catalog.store import Catalog

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MEDARK = str(Path(sys.executable).with_name("medark"))
PASSWORD = "Bench-Passw0rd-{}"
DATA_PASSWORD = "bench-repository-password"
RUN_NOW_PLAN = "runnow"

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
