"""The point-in-time world shared by the server's and the console's end-to-end tests:
a throwaway PostgreSQL cluster whose WAL a real `medark agent run` streams, enrolled
with the test's `medark server`; one base backup, then two rows committed a whole
second apart (`World.moment` between them), and the agent's window reported past the
second row. Module-scoped fixtures `pg` and `world`: import both into the test module.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from medark_command import MEDARK
from pg_server import PgServer, running_server
from server_site import (
    Site,
    User,
    import_config,
    local_repository,
    new_repository,
    run,
    streamed_his,
    wait_for,
)

HOSP = "pitr"


def pitr_config(repo: Path, password_file: Path, dsn: str, restores: Path) -> str:
    """The hospital's configuration: the cluster's WAL streamed by the agent into the
    local repository, restores to the target `restores`."""
    return (local_repository(repo, password_file) + "\n" + streamed_his(dsn, rpo="1min")
            + f'\n[agent]\nrestore_targets = {{ restores = "{restores}" }}\n')

@dataclass
class World:
    site: Site
    op: User
    pg: PgServer
    restores: Path
    backup: dict[str, Any]
    first_row: datetime
    moment: datetime
    """A whole second between the two rows' commits."""


def job_ended(user: User, job_id: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = user.call("GET", f"/api/jobs/{job_id}").json()["job"]
        return job if job["status"] not in ("queued", "running") else None

    found: dict[str, Any] = wait_for(f"job {job_id}", check, timeout=300)
    return found


def run_job(user: User, kind: str) -> dict[str, Any]:
    asked = user.call("POST", "/api/jobs", json={"institution": HOSP, "plan": "his",
                                                 "kind": kind})
    assert asked.status_code == 202, asked.text
    return job_ended(user, asked.json()["job"]["id"])


def recovery(user: User) -> dict[str, Any]:
    got = user.call("GET", f"/api/institutions/{HOSP}/systems/his/recovery")
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def request_restore(user: User, body: dict[str, Any]) -> Any:
    return user.call("POST", f"/api/institutions/{HOSP}/systems/his/restores", json=body)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_server() as server:
        yield server


@pytest.fixture(scope="module")
def world(site: Site, pg: PgServer) -> Iterator[World]:
    tmp = site.tmp
    made = site.user("sysadmin").call("POST", "/api/institutions", json={"name": HOSP})
    assert made.status_code == 201, made.text
    password_file = tmp / "repository-passwords" / "pitr.pass"  # where the server reads
    repo = tmp / "pitr-repo"
    new_repository(site.env, repo, password_file)
    # under the cluster's base: the postgres user must reach the restored directory
    restores = pg.base / "restores"
    restores.mkdir()
    config = tmp / "pitr.toml"
    config.write_text(pitr_config(repo, password_file, pg.dsn, restores))
    import_config(site.env, site.catalog, HOSP, config)
    op = site.new_user("pitr-op", ["operator"], HOSP)
    token = site.user("sysadmin").call("POST", "/api/agents/enrolment-tokens", json={
        "institution": HOSP, "name": "his-host"})
    assert token.status_code == 201, token.text
    state = tmp / "pitr-agent"
    enrolled = run(site.env, "agent", "enroll", "--server", site.server.url, "--token",
                   token.json()["secret"], "--state-dir", str(state))
    assert enrolled.returncode == 0, enrolled.stderr
    pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
    pg.sql("INSERT INTO orders (note) SELECT 'filler ' || g FROM generate_series(1, 1000) g")
    log = (tmp / "pitr-agent.log").open("w+")
    agent = subprocess.Popen(
        [MEDARK, "agent", "run", "--state-dir", str(state), "--config", str(config),
         "--heartbeat", "1", "--wait", "2", "--grace", "20"],
        env=site.env, text=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        # the agent's schedule streams the WAL: connected before anything is written
        wait_for("the WAL stream", lambda: pg.sql(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'medark_his' "
            "AND active") == "1", timeout=120)
        backup = run_job(op, "backup")
        assert backup["status"] == "succeeded", backup["error"]
        pg.sql("INSERT INTO orders (note) VALUES ('first')")
        first = datetime.now(UTC)
        moment = datetime.fromtimestamp(math.ceil(first.timestamp() + 0.5), UTC)
        time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.6)
        pg.sql("INSERT INTO orders (note) VALUES ('second')")
        second = datetime.now(UTC)
        pg.sql("SELECT pg_switch_wal()")

        def covered() -> bool:
            # a job of the plan ending makes the agent compute its windows again
            assert run_job(op, "check")["status"] == "succeeded"
            return any(parse_time(w["end"]) >= second + timedelta(seconds=1)
                       for w in recovery(op)["windows"])

        wait_for("a window past the second row", covered, timeout=240, every=1)
        yield World(site, op, pg, restores, backup, first, moment)
    finally:
        if agent.poll() is None:
            agent.terminate()
        agent.wait(timeout=60)
        log.seek(0)
        printed = log.read()
        log.close()
        assert "Traceback" not in printed, printed[-3000:]
