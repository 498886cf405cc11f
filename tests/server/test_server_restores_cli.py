"""Restores and DR actions through the management server, run by a real `medark agent
run` subprocess, on SQLite and PostgreSQL catalogs: a run-now backup of a small tree,
then a restore of one file of it into the agent's declared restore target (the file
there with its content, the CLI's own access audit in the agent's catalog); an
undeclared target refused by the agent, a path with '..' by the server; another
institution's user and the center's operator without a grant refused (403
grant_required); a drill of a system not in the agent's [dr] failed "unknown system";
a switchover, failover or failback without its confirmation refused (422)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from server_site import (
    Site,
    User,
    audit_records,
    code_of,
    import_config,
    new_repository,
    pacs_config,
    run,
    running_agent,
    site_fixture,
    wait_for,
)

site = site_fixture()

HOSP, OTHER = "hosp", "other"
STUDY = b"DICM" + bytes(range(256)) * 16
TARGETS = """
[agent]
restore_targets = {{ scratch = "{scratch}", whole = "{whole}" }}
"""


@dataclass
class World:
    site: Site
    users: dict[str, User]
    data: Path
    scratch: Path
    whole: Path
    state: Path
    snapshot: str
    lis_snapshot: str
    """A snapshot of another system (tagged system=lis) in the same repository."""


def _ended(user: User, job_id: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = user.call("GET", f"/api/jobs/{job_id}").json()["job"]
        return job if job["status"] not in ("queued", "running") else None

    found: dict[str, Any] = wait_for(f"job {job_id}", check)
    return found


def _events(user: User, job_id: int) -> list[dict[str, Any]]:
    with user.client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        return [json.loads(line[5:]) for line in response.iter_lines()
                if line.startswith("data:")]


@pytest.fixture(scope="module")
def world(site: Site) -> Iterator[World]:
    tmp = site.tmp
    sysadmin = site.user("sysadmin")
    sysadmin.institutions(HOSP, OTHER)
    data, scratch, whole = tmp / "pacs-data", tmp / "scratch", tmp / "whole"
    (data / "study-1").mkdir(parents=True)
    (data / "study-1" / "IM0001.dcm").write_bytes(STUDY)
    (data / "study-1" / "IM0002.dcm").write_bytes(os.urandom(2048))
    scratch.mkdir()
    whole.mkdir()
    (tmp / "lis-data").mkdir()
    (tmp / "lis-data" / "results.csv").write_bytes(b"lab results")
    password_file, repo = tmp / "repository.pass", tmp / "repository"
    new_repository(site.env, repo, password_file)
    config = tmp / "medark.toml"
    config.write_text(pacs_config(repo, password_file, data,
                                  more=TARGETS.format(scratch=scratch, whole=whole)))
    import_config(site.env, site.catalog, HOSP, config)
    users = {"op": site.new_user("hosp-op", ["operator"], HOSP),
             "viewer": site.new_user("hosp-viewer", ["viewer"], HOSP),
             "other-op": site.new_user("other-op", ["operator"], OTHER),
             "center-op": site.new_user("center-op", ["operator"], "center")}
    state = tmp / "agent-state"
    with running_agent(site.env, site.server.url, sysadmin, HOSP, "pacs-host", state, config):
        backup = users["op"].call("POST", "/api/jobs", json={
            "institution": HOSP, "plan": "pacs", "kind": "backup"})
        assert backup.status_code == 202, backup.text
        done = _ended(users["op"], backup.json()["job"]["id"])
        assert done["status"] == "succeeded", done["error"]
        lis = run({**site.env, "MEDARK_PASSWORD_FILE": str(password_file)}, "--repo",
                  str(repo), "--json", "backup", "--tag", "system=lis", str(tmp / "lis-data"))
        assert lis.returncode == 0, lis.stderr
        lis_id = json.loads(lis.stdout.strip().splitlines()[-1])["snapshot_id"]
        yield World(site, users, data, scratch, whole, state, done["snapshot_id"], lis_id)


def _restore(user: User, body: dict[str, Any], institution: str = HOSP) -> Any:
    return user.call("POST", f"/api/institutions/{institution}/systems/pacs/restores",
                     json=body)


def test_a_restore_of_one_file_lands_in_the_declared_target(world: World) -> None:
    op = world.users["op"]
    wanted = world.data / "study-1" / "IM0001.dcm"
    asked = _restore(op, {"snapshot": world.snapshot, "paths": [str(wanted)],
                          "target": "scratch"})
    assert asked.status_code == 202, asked.text
    job = asked.json()["job"]
    assert (job["kind"], job["status"], job["system"]) == ("restore", "queued", "pacs")
    done = _ended(op, job["id"])
    assert done["status"] == "succeeded", done["error"]
    restored = world.scratch / str(wanted).lstrip("/")
    assert restored.read_bytes() == STUDY
    assert not (restored.parent / "IM0002.dcm").exists()
    assert done["details"]["request"] == {"snapshot": world.snapshot,
                                          "paths": [str(wanted)], "target": "scratch"}
    assert done["details"]["restore"]["target"] == "scratch"
    events = _events(op, job["id"])
    assert events[-1]["kind"] == "status" and events[-1]["data"]["status"] == "succeeded"
    # the server's record of the request, and the CLI's own access audit at the agent
    asked_records = [r for r in audit_records(world.site.catalog, "snapshot.restore.request")
                     if r["detail"].get("job") == job["id"]]
    assert [(r["actor"], r["result"], r["detail"]["target"]) for r in asked_records] == [
        ("hosp-op", "ok", "scratch")]
    local = audit_records(f"sqlite:///{world.state / 'catalog.db'}", "snapshot.restore")
    assert local and local[-1]["result"] == "ok"
    assert str(world.scratch) in json.dumps(local[-1]["detail"])


def test_an_undeclared_target_or_a_path_outside_the_snapshot_is_refused(
        world: World) -> None:
    op = world.users["op"]
    # the server cannot know the agent's targets: the agent refuses, the job fails
    asked = _restore(op, {"snapshot": world.snapshot, "target": "elsewhere"})
    assert asked.status_code == 202, asked.text
    done = _ended(op, asked.json()["job"]["id"])
    assert done["status"] == "failed"
    assert "unknown restore target 'elsewhere'" in done["error"]
    assert not list((world.scratch).glob("**/IM0002.dcm"))
    # a snapshot of another system in the same repository: not this system's to restore
    other = _restore(op, {"snapshot": world.lis_snapshot, "target": "scratch"})
    assert other.status_code == 202, other.text
    done = _ended(op, other.json()["job"]["id"])
    assert done["status"] == "failed"
    assert f"no snapshot '{world.lis_snapshot}' of system pacs" in done["error"]
    assert not list(world.scratch.glob("**/results.csv"))
    # a path with '..' or a relative one: the server refuses it
    for path in ("/etc/../root/x", "relative/path", "/a/.."):
        refused = _restore(op, {"snapshot": world.snapshot, "paths": [path],
                                "target": "scratch"})
        assert refused.status_code == 422, refused.text
        assert code_of(refused) == "invalid_restore"
    # a target name the server can tell is not one
    bad = _restore(op, {"snapshot": world.snapshot, "target": "../srv"})
    assert bad.status_code == 422 and code_of(bad) == "invalid_restore"
    failed = [r for r in audit_records(world.site.catalog, "snapshot.restore.request")
              if r["result"] == "failed"]
    assert len(failed) == 4 and {r["detail"]["reason"] for r in failed} == {
        "invalid_restore"}


def test_latest_is_the_systems_latest(world: World) -> None:
    """The repository's newest snapshot is the other system's: `latest` restores this
    system's newest, whole."""
    op = world.users["op"]
    asked = _restore(op, {"snapshot": "latest", "target": "whole"})
    assert asked.status_code == 202, asked.text
    done = _ended(op, asked.json()["job"]["id"])
    assert done["status"] == "succeeded", done["error"]
    below = world.whole / str(world.data).lstrip("/") / "study-1"
    assert sorted(p.name for p in below.iterdir()) == ["IM0001.dcm", "IM0002.dcm"]
    assert not list(world.whole.glob("**/results.csv"))
    assert done["details"]["restore"]["files_restored"] >= 2


def test_a_restore_of_another_institutions_data_needs_a_grant(world: World) -> None:
    for name in ("other-op", "center-op"):
        refused = _restore(world.users[name], {"snapshot": world.snapshot,
                                               "target": "scratch"})
        assert refused.status_code == 403, refused.text
        assert code_of(refused) == "grant_required"
    viewer = _restore(world.users["viewer"], {"snapshot": world.snapshot,
                                              "target": "scratch"})
    assert viewer.status_code == 403 and code_of(viewer) == "forbidden"
    refusals = [r for r in audit_records(world.site.catalog, "grant.refused")
                if r["detail"].get("use") == "snapshot.restore.request"]
    assert {r["actor"] for r in refusals} == {"other-op", "center-op"}
    denied = [r for r in audit_records(world.site.catalog, "snapshot.restore.request")
              if r["result"] == "denied"]
    assert [r["actor"] for r in denied] == ["hosp-viewer"]


def test_dr_through_the_agent(world: World) -> None:
    op = world.users["op"]
    base = f"/api/institutions/{HOSP}/systems/pacs/dr"
    drill = op.call("POST", base, json={"action": "drill"})
    assert drill.status_code == 202, drill.text
    assert drill.json()["job"]["kind"] == "dr_drill"
    assert drill.json()["job"]["agent"] == "pacs-host"
    done = _ended(op, drill.json()["job"]["id"])
    assert done["status"] == "failed" and "unknown system 'pacs'" in done["error"]
    for body in ({"action": "switchover"}, {"action": "switchover", "confirm": "his"},
                 {"action": "failover", "confirm": "PACS"}, {"action": "failback"}):
        refused = op.call("POST", base, json=body)
        assert refused.status_code == 422, refused.text
        assert code_of(refused) == "confirmation_required"
    viewer = world.users["viewer"].call("POST", base, json={"action": "drill"})
    assert viewer.status_code == 403 and code_of(viewer) == "forbidden"
    outside = world.users["other-op"].call("POST", base, json={"action": "drill"})
    assert outside.status_code == 403 and code_of(outside) == "out_of_scope"
    status = world.users["viewer"].call("GET", f"/api/institutions/{HOSP}/dr")
    assert status.status_code == 200, status.text
    agents = status.json()["agents"]
    assert [(a["agent"], a["dr_systems"]) for a in agents] == [("pacs-host", [])]
    hidden = world.users["other-op"].call("GET", f"/api/institutions/{HOSP}/dr")
    assert hidden.status_code == 403 and code_of(hidden) == "out_of_scope"
    records = audit_records(world.site.catalog, "dr.request")
    assert [(r["result"], r["detail"].get("reason")) for r in records
            if r["actor"] == "hosp-op"] == [("ok", None)] + [
        ("failed", "confirmation_required")] * 4
