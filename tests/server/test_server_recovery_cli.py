"""The restore wizard's read endpoint, GET /api/institutions/INST/systems/SYSTEM/recovery,
over real HTTP on SQLite and PostgreSQL catalogs: a system's snapshots as its recoverable
points, the restore target names its agent declared in a heartbeat (from a real
`medark agent run` with an [agent] restore_targets table, and through the agent API),
a database source said to be one whose windows the server does not know; another
institution's reader without a grant refused (403 grant_required) and every read
audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from server_site import (
    Site,
    audit_records,
    code_of,
    import_config,
    new_repository,
    pacs_config,
    run,
    running_agent,
    site_fixture,
    streamed_his,
    wait_for,
)

site = site_fixture()

HOSP, OTHER = "rhosp", "rother"


def _config(repo: Path, password_file: Path, data: Path, scratch: Path) -> str:
    """The files of `data` as system pacs, and a streamed PostgreSQL system his whose
    windows the server does not know; two restore targets of the agent."""
    return pacs_config(repo, password_file, data, more="\n" + streamed_his(
        "host=127.0.0.1 dbname=his") + "\n[agent]\nrestore_targets = "
        f'{{ scratch = "{scratch}", "ward-3" = "{scratch}/w3" }}\n')

@pytest.fixture(scope="module")
def world(site: Site) -> dict[str, Any]:
    tmp = site.tmp
    sysadmin = site.user("sysadmin")
    for name in (HOSP, OTHER):
        made = sysadmin.call("POST", "/api/institutions", json={"name": name})
        assert made.status_code == 201, made.text
    password_file = tmp / "repository-passwords" / "recovery.pass"  # the server's dir
    data, scratch, repo = tmp / "rec-data", tmp / "rec-scratch", tmp / "rec-repo"
    (data / "study").mkdir(parents=True)
    (data / "study" / "IM1.dcm").write_bytes(b"DICM" * 64)
    scratch.mkdir()
    new_repository(site.env, repo, password_file)
    env = {**site.env, "MEDARK_PASSWORD_FILE": str(password_file)}
    ids = []
    for _ in range(2):
        done = run(env, "--repo", str(repo), "--json", "backup", "--tag", "system=pacs",
                   str(data))
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout.strip().splitlines()[-1])["snapshot_id"])
    config = tmp / "rec-medark.toml"
    config.write_text(_config(repo, password_file, data, scratch))
    import_config(site.env, site.catalog, HOSP, config)
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
    with running_agent(site.env, site.server.url, site.user("sysadmin"), HOSP, "rec-host",
                       site.tmp / "rec-agent", world["config"]):
        found = wait_for("the agent's targets", lambda: [
            a for a in _recovery(world["viewer"]).json()["agents"] if a["targets"]])
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
