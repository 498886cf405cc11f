"""A real DR switch-over and failback through the management server (SQLite catalog): a
primary and standby PostgreSQL pair with pgbouncer and the test HIS app in front
(tests/dr_site.py), a real `medark agent run` with the pair in its [dr] table. The agent
reports the pair's status in its heartbeats (GET /api/institutions/INST/dr); an
operator's switchover with the system's name confirmed runs `medark dr switchover` at
the agent: each step comes back as an event with its duration while the action still
runs (the east site's service start waits for a gate file the test opens only once it
has seen the promotion's step), the job succeeds, the roles of the pair are swapped; a
failback then puts them back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dr_site import Site as DrSite
from dr_site import his_site, pg_nodes, preamble
from medark_command import MEDARK
from pg_server import can_run_servers
from pgbouncer_server import pgbouncer_bin
from server_site import Server, User, base_env, first_login, init, run, start, wait_for

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
start = "while [ ! -e {w}/gate ]; do sleep 0.1; done; echo started >> {w}/east.log"
start_timeout = "10min"
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


def ended(op: User, job_id: int) -> Any:
    job = op.call("GET", f"/api/jobs/{job_id}").json()["job"]
    return job if job["status"] not in ("queued", "running") else None


def events_of(op: User, job_id: int) -> list[dict[str, Any]]:
    """The job's events so far (the stream ends at once for an ended job)."""
    with op.client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        return [json.loads(line[5:]) for line in response.iter_lines()
                if line.startswith("data:")]


def steps_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"]["step"] for e in events if e["kind"] == "log" and "step" in e["data"]]


def test_a_switchover_through_the_server(world: World) -> None:
    op, pair = world.op, world.dr.pair

    def reported() -> Any:
        agents = op.call("GET", "/api/institutions/center/dr").json()["agents"]
        return [a for a in agents if a["systems"]]

    agents = wait_for("the agent's DR status", reported, timeout=180)
    assert [(a["agent"], a["dr_systems"]) for a in agents] == [("his-host", ["his"])]
    assert agents[0]["systems"][0]["system"] == "his" and agents[0]["reported_at"]
    old, new = pair.primary, pair.standby
    asked = op.call("POST", "/api/institutions/center/systems/his/dr",
                    json={"action": "switchover", "confirm": "his"})
    assert asked.status_code == 202, asked.text
    job_id = asked.json()["job"]["id"]
    assert asked.json()["job"]["agent"] == "his-host"

    def promoted() -> Any:  # live: the action is held at the east start until the gate
        with op.client.stream("GET", f"/api/jobs/{job_id}/events",
                              timeout=60) as response:  # the agent reports every 1 s
            for line in response.iter_lines():
                if line.startswith("data:") and "promote standby" in line:
                    return json.loads(line[5:])
        return None

    seen = wait_for("the promotion's step while the switchover runs", promoted, timeout=300)
    assert seen["data"]["step"]["result"] == "ok"
    assert op.call("GET", f"/api/jobs/{job_id}").json()["job"]["status"] == "running"
    (world.dr.work / "gate").touch()
    job = wait_for("the switchover", lambda: ended(op, job_id), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    action = job["details"]["dr_action"]
    assert action["status"] == "succeeded" and action["kind"] == "switchover"
    assert action["new_primary"] == f"postgres@127.0.0.1:{new.port}"
    assert {new.port: new.sql("SELECT pg_is_in_recovery()"),
            old.port: old.sql("SELECT pg_is_in_recovery()")} == {new.port: "f",
                                                                  old.port: "t"}
    events = events_of(op, job_id)
    steps = steps_of(events)
    assert [s["name"] for s in steps] == [s["name"] for s in action["steps"]]
    assert "promote standby" in [s["name"] for s in steps]
    assert all(isinstance(s["seconds"], float | int) for s in steps)
    assert any(" s" in e["data"]["message"] for e in events if e["kind"] == "log")


def test_a_failback_through_the_server(world: World) -> None:
    """After the switchover (run before it in this module), back to the configured
    primary: confirmed with the system's name like a switchover."""
    op, pair = world.op, world.dr.pair
    base = "/api/institutions/center/systems/his/dr"
    unconfirmed = op.call("POST", base, json={"action": "failback"})
    assert unconfirmed.status_code == 422, unconfirmed.text
    assert unconfirmed.json()["error"]["code"] == "confirmation_required"
    asked = op.call("POST", base, json={"action": "failback", "confirm": "his"})
    assert asked.status_code == 202, asked.text
    assert asked.json()["job"]["kind"] == "dr_failback"
    job_id = asked.json()["job"]["id"]
    job = wait_for("the failback", lambda: ended(op, job_id), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    action = job["details"]["dr_action"]
    assert action["status"] == "succeeded" and action["kind"] == "failback"
    home, away = pair.primary, pair.standby
    assert action["new_primary"] == f"postgres@127.0.0.1:{home.port}"
    assert {home.port: home.sql("SELECT pg_is_in_recovery()"),
            away.port: away.sql("SELECT pg_is_in_recovery()")} == {home.port: "f",
                                                                   away.port: "t"}
    steps = steps_of(events_of(op, job_id))
    assert [s["name"] for s in steps] == [s["name"] for s in action["steps"]]
    assert "find roles" in [s["name"] for s in steps]
