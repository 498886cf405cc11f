"""`medark agent` against a real `medark server` on SQLite and PostgreSQL, both as
subprocesses: enrolment with a single-use token (a second use and an expired token
refused, the credential kept at 0600), a job queued on the server taken by the agent and
backed up into its local repository with its events, a job for a plan the agent does not
have refused, the local schedule running on while the server is stopped and its results
arriving once when it is back, an agent that stops heartbeating marked offline with an
alert, and agent credentials and user sessions kept apart."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from catalog_urls import KINDS, catalog_urls
from medark_command import PASSWORD
from server_site import (
    Server,
    User,
    audit_records,
    base_env,
    code_of,
    enroll,
    enrolment_token,
    first_login,
    init,
    new_repository,
    pacs_config,
    run,
    start,
    start_agent,
    stop_agent,
    wait_for,
)
from sqlalchemy import text

from medark.catalog import job_queue
from medark.catalog.store import Catalog
from medark.util import clock

OFFLINE_AFTER = 3
MORE = """
[systems.slow]
owner = "radiology"

[[systems.slow.sources]]
type = "command"
command = "sh -c 'sleep 300; echo dump'"
filename = "slow.sql"

[plans.slow]
system = "slow"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "1y"
rto = "1h"
retention = { last = 3 }

[plans.often]
system = "pacs"
repository = "local"
schedule = "every 2s"
rpo = "1h"
rto = "1h"
retention = { last = 3 }
"""
"""The slow system (a dump that takes minutes, to be cancelled) and a plan run every 2 s
by the agent's own schedule, beside the pacs plan."""


@dataclass
class Agents:
    tmp: Path
    env: dict[str, str]
    catalog: str
    server: Server
    sysadmin: User
    config: Path
    passwords: dict[str, str]

    def restart_server(self) -> None:
        port = self.server.url.rsplit(":", 1)[1]
        self.server = start(self.env, self.catalog, "--agent-offline-after",
                            str(OFFLINE_AFTER), "--login-rate", "10000",
                            listen=f"127.0.0.1:{port}")
        self.sysadmin = _login_again(self.server, self.sysadmin)

    def token(self, hours: int = 1, name: str | None = None) -> str:
        return enrolment_token(self.sysadmin, "center", name, hours)

    def enroll(self, state: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
        return enroll(self.env, self.server.url, token, state, *args)

    def start_agent(self, state: Path) -> subprocess.Popen[str]:
        return start_agent(self.env, state, self.config)

    def agent(self, name: str) -> dict[str, Any]:
        listed = self.sysadmin.call("GET", "/api/agents").json()["agents"]
        return next(a for a in listed if a["name"] == name)

    def opened(self) -> Catalog:
        return Catalog(self.catalog)


def _login_again(server: Server, user: User) -> User:
    from server_site import login, next_code

    assert user.totp is not None
    client, response = login(server, user.name, user.password, next_code(user.totp))
    assert response.status_code == 200, response.text
    return User(user.name, user.password, client, user.totp)


@pytest.fixture(scope="module", params=KINDS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Agents]:
    tmp = tmp_path_factory.mktemp("agents")
    env = base_env(tmp)
    env["HOME"] = str(tmp / "home")
    data = tmp / "data"
    data.mkdir()
    (data / "study.dcm").write_bytes(os.urandom(4096))
    password_file, repo = tmp / "password", tmp / "repo"
    new_repository(env, repo, password_file)
    config = tmp / "medark.toml"
    config.write_text(pacs_config(repo, password_file, data, schedule="every 1h", rpo="1h",
                                  more=MORE))
    for url in catalog_urls(request.param, tmp / "catalog.db", "medark_agents"):
        passwords = init(env, url)
        server = start(env, url, "--agent-offline-after", str(OFFLINE_AFTER),
                       "--login-rate", "10000")
        made = Agents(tmp, env, url, server, first_login(server, "sysadmin",
                                                         passwords["sysadmin"]),
                      config, passwords)
        try:
            yield made
        finally:
            made.server.stop()


def test_enrolment_token_is_single_use_expires_and_the_credential_is_private(
        site: Agents) -> None:
    token = site.token(name="ward-3")
    state = site.tmp / "enrolled"
    done = site.enroll(state, token)
    assert done.returncode == 0, done.stderr
    assert "ward-3" in done.stdout
    saved = json.loads((state / "agent.json").read_text())
    assert saved["credential"].startswith("mda_")
    assert saved["credential"] not in done.stdout + done.stderr
    assert stat.S_IMODE((state / "agent.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert site.agent("ward-3")["state"] == "online"
    # the token is spent
    again = site.enroll(site.tmp / "again", token, "--name", "other")
    assert again.returncode == 32, again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    assert not (site.tmp / "again" / "agent.json").exists()
    # an expired token is refused
    expired = site.token(name="late")
    catalog = site.opened()
    try:
        with catalog._session() as session:
            session.execute(text("UPDATE enrolment_tokens SET expires_at = :t WHERE "
                                 "name_hint = 'late'"),
                            {"t": clock.now() - timedelta(minutes=1)})
    finally:
        catalog.close()
    late = site.enroll(site.tmp / "late", expired)
    assert late.returncode == 32 and "expired" in late.stderr
    # a second enrolment into a state directory in use is refused before any request
    twice = site.enroll(state, site.token())
    assert twice.returncode == 2 and "enrolled already" in twice.stderr
    # tokens live at most a week
    long = site.sysadmin.call("POST", "/api/agents/enrolment-tokens",
                              json={"institution": "center", "hours": 169})
    assert long.status_code == 422
    records = audit_records(site.catalog, "agent.enroll")
    assert [r["result"] for r in records].count("ok") == 1
    assert sorted(r["detail"]["reason"] for r in records if r["result"] == "denied") == [
        "expired", "used"]
    assert token not in str(records) and saved["credential"] not in str(records)


def test_enrolment_verifies_the_servers_certificate(site: Agents) -> None:
    from test_server_auth_cli import _tls_files

    cert, key = _tls_files(site.tmp)
    served = start(site.env, site.catalog, "--tls-cert", str(cert), "--tls-key", str(key),
                   verify=False)
    try:
        token = site.token()

        def enroll(state: str, *extra: str) -> subprocess.CompletedProcess[str]:
            return run(site.env, "agent", "enroll", "--server", served.url, "--token", token,
                       "--state-dir", str(site.tmp / state), "--name", "tls", *extra)

        untrusted = enroll("untrusted")
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        assert len(untrusted.stderr.strip().splitlines()) == 1
        trusted = enroll("trusted", "--cacert", str(cert))
        assert trusted.returncode == 0, trusted.stderr
        saved = json.loads((site.tmp / "trusted" / "agent.json").read_text())
        assert saved["cacert"] == str(cert) and saved["server"].startswith("https://")
    finally:
        served.stop()


def test_agent_and_user_credentials_are_kept_apart(site: Agents) -> None:
    state = site.tmp / "apart"
    assert site.enroll(state, site.token(), "--name", "apart").returncode == 0
    credential = json.loads((state / "agent.json").read_text())["credential"]
    agent = site.server.client(headers={"Authorization": f"Bearer {credential}"})
    for method, path in (("GET", "/api/me"), ("GET", "/api/agents"), ("GET", "/api/users")):
        refused = agent.request(method, path)
        assert refused.status_code == 403 and code_of(refused) == "agent_only", path
    beat = agent.post("/api/agent/heartbeat", json={"version": "1", "plans": ["pacs"]})
    assert beat.status_code == 200, beat.text
    assert beat.json()["cancel"] == []
    # a user's session never reaches the agents' endpoints
    for method, path in (("POST", "/api/agent/heartbeat"), ("GET", "/api/agent/jobs"),
                         ("POST", "/api/agent/results")):
        refused = site.sysadmin.call(method, path, json={"version": "1"})
        assert refused.status_code == 403 and code_of(refused) == "agent_only", path
    anonymous = site.server.client().post("/api/agent/heartbeat", json={"version": "1"})
    assert anonymous.status_code == 401 and code_of(anonymous) == "not_authenticated"
    # revoked: the credential stops working, and `agent run` stops with exit 32
    revoked = site.sysadmin.call("DELETE", "/api/agents/center/apart")
    assert revoked.status_code == 200 and revoked.json()["agent"]["state"] == "revoked"
    gone = agent.post("/api/agent/heartbeat", json={"version": "1"})
    assert gone.status_code == 401 and code_of(gone) == "invalid_agent_credential"
    proc = site.start_agent(state)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 32, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "refused" in lines[0] and credential not in err
    missing = site.sysadmin.call("DELETE", "/api/agents/center/nobody")
    assert missing.status_code == 404


def _server_jobs(site: Agents) -> list[Any]:
    catalog = site.opened()
    try:
        return job_queue.list_jobs(catalog, institutions=["center"], limit=1000)
    finally:
        catalog.close()


def _local_jobs(state: Path) -> list[Any]:
    catalog = Catalog(f"sqlite:///{state / 'catalog.db'}")
    try:
        return catalog.jobs(limit=1000)
    finally:
        catalog.close()


def test_agent_runs_server_jobs_keeps_its_schedule_offline_and_catches_up(
        site: Agents) -> None:
    state = site.tmp / "runner"
    assert site.enroll(state, site.token(), "--name", "runner").returncode == 0
    proc = site.start_agent(state)
    try:
        wait_for("the agent's plans", lambda: site.agent("runner")["plans"] == [
            "often", "pacs", "slow"])
        catalog = site.opened()
        try:
            queued = job_queue.queue_job(catalog, institution="center", plan="pacs",
                                         kind="backup", requested_by="test")
            unknown = job_queue.queue_job(catalog, institution="center", plan="nope",
                                          kind="backup", requested_by="test",
                                          agent="runner")
            command = job_queue.queue_job(catalog, institution="center", plan="pacs",
                                          kind="rm -rf /", requested_by="test",
                                          agent="runner")

            def ended(job_id: int) -> Any:
                job = job_queue.get_job(catalog, job_id)
                return job if job and job.status not in ("queued", "running") else None

            done = wait_for("the run-now job", lambda: ended(queued.id))
            assert done.status == "succeeded", done.error
            assert done.agent == "runner" and done.snapshot_id
            kinds = [e.kind for e in job_queue.events_after(catalog, queued.id, 0)]
            assert "log" in kinds and "progress" in kinds and kinds[-1] == "status"
            refused = wait_for("the unknown plan's job", lambda: ended(unknown.id))
            assert refused.status == "failed" and "unknown plan" in (refused.error or "")
            odd = wait_for("the unknown kind's job", lambda: ended(command.id))
            assert odd.status == "failed" and "unknown job kind" in (odd.error or "")
            # a running job is cancelled: its backup is stopped
            slow = job_queue.queue_job(catalog, institution="center", plan="slow",
                                       kind="backup", requested_by="test")
            wait_for("the slow job's progress", lambda: [
                e for e in job_queue.events_after(catalog, slow.id, 0)
                if e.kind == "progress"])
            job_queue.request_cancel(catalog, slow.id)
            try:
                stopped = wait_for("the cancelled job", lambda: ended(slow.id), timeout=120)
            except AssertionError:
                raise AssertionError((job_queue.get_job(catalog, slow.id), [
                    (e.kind, e.data) for e in job_queue.events_after(catalog, slow.id, 0)])
                ) from None
            assert stopped.status == "cancelled", stopped.error
        finally:
            catalog.close()
        snapshots = run({**site.env, "MEDARK_PASSWORD": PASSWORD}, "--json", "--retry-lock",
                        "1m", "snapshots", "--repo", str(site.tmp / "repo"))
        assert done.snapshot_id[:8] in snapshots.stdout

        # the server goes away: the local schedule runs on, its results wait
        wait_for("an uploaded scheduled job", lambda: [
            j for j in _server_jobs(site) if j.origin_key])
        site.server.stop()
        before = len(_local_jobs(state))
        wait_for("local jobs while the server is down",
                 lambda: len(_local_jobs(state)) >= before + 3)
        site.restart_server()

        def all_arrived() -> bool:
            local = {j.id for j in _local_jobs(state)
                     if j.status not in ("running", "queued") and j.plan == "often"}
            remote = [j.origin_key for j in _server_jobs(site) if j.origin_key]
            return local <= {int(k.rsplit(":", 1)[1]) for k in remote}

        wait_for("the offline queue", all_arrived)
        remote = [j.origin_key for j in _server_jobs(site) if j.origin_key]
        assert len(remote) == len(set(remote))
        assert all(k.startswith("center/runner:") for k in remote)
        # the run-now job's local records are not reported a second time
        local_run_now = [part["local_job"] for part in done.details["parts"]]
        assert [part["kind"] for part in done.details["parts"]] == ["backup", "forget"]
        assert not {f"center/runner:{i}" for i in local_run_now} & set(remote)
    finally:
        code, out, err = stop_agent(proc)
    assert code == 0, err
    assert "server_unreachable" in out and "server_reachable" in out
    assert "Traceback" not in err


def test_an_agent_that_stops_heartbeating_is_offline_with_an_alert(site: Agents) -> None:
    state = site.tmp / "quiet"
    assert site.enroll(state, site.token(), "--name", "quiet").returncode == 0
    proc = site.start_agent(state)
    wait_for("heartbeats", lambda: site.agent("quiet")["plans"]
             and site.agent("quiet")["state"] == "online")

    def records(action: str) -> int:
        return [r["target"] for r in audit_records(site.catalog, action)].count("center/quiet")

    def open_alert_keys() -> list[str]:
        catalog = site.opened()
        try:
            return [a.key for a in catalog.alerts(open_only=True) if a.kind == "agent_offline"]
        finally:
            catalog.close()

    offline, online = records("agent.offline"), records("agent.online")
    proc.kill()
    proc.communicate(timeout=30)
    # the state, its audit record and its alert are written one after the other: wait
    # for the last before reading them all
    wait_for("offline", lambda: site.agent("quiet")["state"] == "offline"
             and records("agent.offline") == offline + 1
             and "agent_offline:center/quiet" in open_alert_keys())
    catalog = site.opened()
    try:
        alerts = [a for a in catalog.alerts(open_only=True) if a.kind == "agent_offline"]
        # (the agents of the tests before, stopped or never started, are offline too)
        assert [a.key for a in alerts].count("agent_offline:center/quiet") == 1
    finally:
        catalog.close()
    assert records("agent.offline") == offline + 1
    proc = site.start_agent(state)
    try:
        wait_for("back online", lambda: site.agent("quiet")["state"] == "online"
                 and records("agent.online") == online + 1
                 and "agent_offline:center/quiet" not in open_alert_keys())
        assert records("agent.online") == online + 1
        assert "agent_offline:center/quiet" not in open_alert_keys()
    finally:
        stop_agent(proc)
