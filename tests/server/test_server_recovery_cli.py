"""The restore wizard's read endpoint, GET /api/institutions/INST/systems/SYSTEM/recovery,
over real HTTP on SQLite and PostgreSQL catalogs: a system's snapshots as its recoverable
points, the restore target names its agent declared in a heartbeat (from a real
`medark agent run` with an [agent] restore_targets table, and through the agent API),
a database source said to be one whose windows the server does not know; another
institution's reader without a grant refused (403 grant_required) and every read
audited."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from medark_command import MEDARK, PASSWORD
from server_site import Site, audit_records, code_of, run, site_fixture, wait_for

site = site_fixture()

HOSP, OTHER = "rhosp", "rother"
CONFIG = """\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[systems.pacs]
owner = "radiology"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[systems.his]
owner = "IT"

[[systems.his.sources]]
type = "postgres"
dsn = "host=127.0.0.1 dbname=his"
stream = true

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "1y"
rto = "1h"
retention = {{ last = 3 }}

[plans.his]
system = "his"
repository = "local"
schedule = "0 3 1 1 *"
rpo = "1y"
rto = "1h"
retention = {{ last = 3 }}

[agent]
restore_targets = {{ scratch = "{scratch}", "ward-3" = "{scratch}/w3" }}
"""


@pytest.fixture(scope="module")
def world(site: Site) -> dict[str, Any]:
    tmp = site.tmp
    sysadmin = site.user("sysadmin")
    for name in (HOSP, OTHER):
        made = sysadmin.call("POST", "/api/institutions", json={"name": name})
        assert made.status_code == 201, made.text
    password_file = tmp / "repository-passwords" / "recovery.pass"  # the server's dir
    password_file.parent.mkdir(exist_ok=True)
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    data, scratch, repo = tmp / "rec-data", tmp / "rec-scratch", tmp / "rec-repo"
    (data / "study").mkdir(parents=True)
    (data / "study" / "IM1.dcm").write_bytes(b"DICM" * 64)
    scratch.mkdir()
    env = {**site.env, "MEDARK_PASSWORD_FILE": str(password_file)}
    assert run(env, "--repo", str(repo), "init").returncode == 0
    ids = []
    for _ in range(2):
        done = run(env, "--repo", str(repo), "--json", "backup", "--tag", "system=pacs",
                   str(data))
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout.strip().splitlines()[-1])["snapshot_id"])
    config = tmp / "rec-medark.toml"
    config.write_text(CONFIG.format(repo=repo, password_file=password_file, data=data,
                                    scratch=scratch))
    done = run(site.env, "server", "config", "import", "--catalog", site.catalog,
               "--institution", HOSP, str(config))
    assert done.returncode == 0, done.stderr
    return {"config": config, "ids": ids,
            "op": site.new_user("rec-op", ["operator"], HOSP),
            "viewer": site.new_user("rec-viewer", ["viewer"], HOSP),
            "other": site.new_user("rec-other", ["operator"], OTHER),
            "center": site.new_user("rec-center", ["operator"], "center")}


def _recovery(user: Any, system: str = "pacs", institution: str = HOSP) -> Any:
    return user.call("GET", f"/api/institutions/{institution}/systems/{system}/recovery")


def test_points_and_the_targets_a_real_agent_declares(site: Site, world: dict[str, Any]
                                                       ) -> None:
    before = _recovery(world["op"])
    assert before.status_code == 200, before.text
    body = before.json()
    assert [p["id"] for p in body["points"]] == world["ids"]  # oldest first
    assert body["agents"] == [] and body["grant"] is None
    assert body["plans"] == ["pacs"] and body["source_types"] == ["files"]
    assert body["database"] is False and body["windows"] == []
    token = site.user("sysadmin").call("POST", "/api/agents/enrolment-tokens", json={
        "institution": HOSP, "name": "rec-host"})
    assert token.status_code == 201, token.text
    state = site.tmp / "rec-agent"
    enrolled = run(site.env, "agent", "enroll", "--server", site.server.url, "--token",
                   token.json()["secret"], "--state-dir", str(state))
    assert enrolled.returncode == 0, enrolled.stderr
    agent = subprocess.Popen(
        [MEDARK, "agent", "run", "--state-dir", str(state), "--config",
         str(world["config"]), "--heartbeat", "1", "--wait", "2", "--grace", "5"],
        env=site.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        found = wait_for("the agent's targets", lambda: [
            a for a in _recovery(world["viewer"]).json()["agents"] if a["targets"]])
    finally:
        agent.terminate()
        agent.communicate(timeout=60)
    assert found == [{"agent": "rec-host", "state": "online",
                      "targets": ["scratch", "ward-3"]}]
    # names only: the directories stay on the host
    assert str(world["config"].parent) not in json.dumps(found)


def test_a_database_source_and_an_agent_without_the_plan(site: Site,
                                                          world: dict[str, Any]) -> None:
    his = _recovery(world["op"], "his")
    assert his.status_code == 200, his.text
    body = his.json()
    assert body["database"] is True and body["log_streamed"] is True
    assert body["windows_known"] is False and body["points"] == []
    # an agent that advertises no plan of the system is not offered when one does
    client = site.server.client()
    token = site.user("sysadmin").call("POST", "/api/agents/enrolment-tokens", json={
        "institution": HOSP}).json()["secret"]
    made = client.post("/api/agent/enroll", json={
        "token": token, "name": "rec-other-host", "host": "h.local", "version": "1"})
    assert made.status_code == 201, made.text
    client.headers["Authorization"] = f"Bearer {made.json()['credential']}"
    beat = client.post("/api/agent/heartbeat", json={
        "version": "1", "plans": ["lis"], "restore_targets": ["elsewhere"]})
    assert beat.status_code == 200, beat.text
    names = [a["agent"] for a in _recovery(world["op"]).json()["agents"]]
    assert names == ["rec-host"]
    refused = client.post("/api/agent/heartbeat", json={
        "version": "1", "restore_targets": ["x" * 65]})
    assert refused.status_code == 422, refused.text


def test_scope_grants_and_audit(site: Site, world: dict[str, Any]) -> None:
    for user in ("other", "center"):
        refused = _recovery(world[user])
        assert refused.status_code == 403 and code_of(refused) == "grant_required"
    missing = _recovery(world["op"], "nope")
    assert missing.status_code == 404, missing.text
    records = audit_records(site.catalog, "recovery.read")
    assert {(r["actor"], r["result"]) for r in records} >= {
        ("rec-op", "ok"), ("rec-viewer", "ok"), ("rec-op", "failed")}
    refusals = [r for r in audit_records(site.catalog, "grant.refused")
                if r["actor"] in ("rec-other", "rec-center")]
    assert len(refusals) == 2
    assert not Path(site.tmp / "rec-scratch" / "w3").exists()  # nothing was restored
