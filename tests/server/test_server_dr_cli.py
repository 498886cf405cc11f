"""A real DR switch-over through the management server (SQLite catalog): a primary and
standby PostgreSQL pair with pgbouncer and the test HIS app in front (tests/dr_site.py),
a real `medark agent run` with the pair in its [dr] table. The agent reports the pair's
status in its heartbeats (GET /api/institutions/INST/dr); an operator's switchover with
the system's name confirmed runs `medark dr switchover` at the agent: the job succeeds,
each step comes back as an event with its duration, the roles of the pair are swapped."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import MEDARK
from dr_site import Site as DrSite
from dr_site import his_site, pg_nodes, preamble
from pg_server import can_run_servers
from pgbouncer_server import pgbouncer_bin
from server_site import Server, User, base_env, first_login, init, run, start

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed"),
]


def config_text(site: DrSite) -> str:
    p, s, w = site.pair.primary, site.pair.standby, site.work
    return preamble(p.dsn) + f"""
[dr.his]
feed = "stream"
slot = "{site.pair.slot}"
max_lag_bytes = {16 * 1024 * 1024}
max_lag = "1h"
fencing = "readonly"

""" + pg_nodes(p, s) + f"""
[dr.his.client_switch]
type = "pgbouncer"
ini = "{site.pooler.ini}"
admin_dsn = "{site.pooler.admin_dsn}"
database = "his"

[[dr.his.services.main]]
name = "his-interface"
start = "echo started >> {w}/main.log"
stop = "echo stopped >> {w}/main.log"

[[dr.his.services.east]]
name = "his-interface"
start = "echo started >> {w}/east.log"
stop = "echo stopped >> {w}/east.log"

[[dr.his.health]]
type = "sql"
name = "writable"
query = "SELECT NOT pg_is_in_recovery()"
expect = "true"
"""


@dataclass
class World:
    dr: DrSite
    server: Server
    op: User


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("server-dr")
    env = base_env(tmp)
    env["HOME"] = str(tmp / "home")
    url = f"sqlite:///{tmp / 'catalog.db'}"
    passwords = init(env, url)
    server = start(env, url, "--login-rate", "10000")
    agent: subprocess.Popen[str] | None = None
    try:
        (tmp / "dr").mkdir()
        with his_site(tmp / "dr") as dr:
            config = tmp / "medark.toml"
            config.write_text(config_text(dr), encoding="utf-8")
            sysadmin = first_login(server, "sysadmin", passwords["sysadmin"])
            secadmin = first_login(server, "secadmin", passwords["secadmin"])
            made = secadmin.call("POST", "/api/users", json={
                "name": "dr-op", "institution": "center", "roles": ["operator"]})
            assert made.status_code == 201, made.text
            op = first_login(server, "dr-op", made.json()["one_time_password"])
            token = sysadmin.call("POST", "/api/agents/enrolment-tokens",
                                  json={"institution": "center", "name": "his-host"})
            assert token.status_code == 201, token.text
            state = tmp / "agent"
            enrolled = run(env, "agent", "enroll", "--server", server.url, "--token",
                           token.json()["secret"], "--state-dir", str(state))
            assert enrolled.returncode == 0, enrolled.stderr
            agent = subprocess.Popen(
                [MEDARK, "agent", "run", "--state-dir", str(state), "--config", str(config),
                 "--heartbeat", "1", "--wait", "2", "--grace", "20"],
                env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            yield World(dr, server, op)
    finally:
        if agent is not None:
            if agent.poll() is None:
                agent.terminate()
            _out, err = agent.communicate(timeout=60)
            assert "Traceback" not in err, err
        server.stop()


def test_a_switchover_through_the_server(world: World) -> None:
    op, pair = world.op, world.dr.pair

    def reported() -> Any:
        agents = op.call("GET", "/api/institutions/center/dr").json()["agents"]
        return [a for a in agents if a["systems"]]

    agents = wait_for("the agent's DR status", reported)
    assert [(a["agent"], a["dr_systems"]) for a in agents] == [("his-host", ["his"])]
    assert agents[0]["systems"][0]["system"] == "his" and agents[0]["reported_at"]
    old, new = pair.primary, pair.standby
    asked = op.call("POST", "/api/institutions/center/systems/his/dr",
                    json={"action": "switchover", "confirm": "his"})
    assert asked.status_code == 202, asked.text
    job_id = asked.json()["job"]["id"]
    assert asked.json()["job"]["agent"] == "his-host"

    def ended() -> Any:
        job = op.call("GET", f"/api/jobs/{job_id}").json()["job"]
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for("the switchover", ended, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    action = job["details"]["dr_action"]
    assert action["status"] == "succeeded" and action["kind"] == "switchover"
    assert action["new_primary"] == f"postgres@127.0.0.1:{new.port}"
    assert {new.port: new.sql("SELECT pg_is_in_recovery()"),
            old.port: old.sql("SELECT pg_is_in_recovery()")} == {new.port: "f",
                                                                  old.port: "t"}
    with op.client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        events = [json.loads(line[5:]) for line in response.iter_lines()
                  if line.startswith("data:")]
    steps = [e["data"]["step"] for e in events if e["kind"] == "log" and "step" in e["data"]]
    assert [s["name"] for s in steps] == [s["name"] for s in action["steps"]]
    assert "promote standby" in [s["name"] for s in steps]
    assert all(isinstance(s["seconds"], float | int) for s in steps)
    assert any(" s" in e["data"]["message"] for e in events if e["kind"] == "log")
