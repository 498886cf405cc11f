"""Cross-institution grants over real HTTP on SQLite and PostgreSQL catalogs: a grant's
whole life (requested, approved by the data owner's security administrator, used for a
snapshot listing, expired, then refused), denial, revocation, self-approval and a foreign
security administrator refused, the snapshot routes (list, browse, find) of a real
repository, and a role x endpoint matrix for the grants and snapshots endpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from server_site import Site, User, audit_records, code_of, run, site_fixture

site = site_fixture()

A, B, C = "county-a", "county-b", "county-c"
PASSWORD = "grant-test-repository-password"
FILES = {"study-1/IM0001.dcm": b"dicom one", "study-1/IM0002.dcm": b"dicom two",
         "study-2/IM0001.dcm": b"dicom three", "ward-notes.txt": b"notes"}


@dataclass
class World:
    site: Site
    users: dict[str, User]
    snapshot: str
    data: Path
    """The directory backed up (snapshots hold its absolute path)."""


def _config(repo: Path, password_file: Path) -> str:
    return f"""\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "{repo}"
password_file = "{password_file}"

[systems.pacs]
owner = "imaging"

[[systems.pacs.sources]]
type = "files"
paths = ["/data/pacs"]

[systems.lis]
owner = "lab"

[[systems.lis.sources]]
type = "files"
paths = ["/data/lis"]

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "daily"
rpo = "1d"
rto = "4h"
retention = {{ daily = 7 }}

[plans.lis]
system = "lis"
repository = "local"
schedule = "daily"
rpo = "1d"
rto = "4h"
retention = {{ daily = 7 }}
"""


@pytest.fixture(scope="module")
def world(site: Site) -> World:
    """Institutions A, B and C; B's PACS backed up into B's repository, B's
    configuration saved; users of each."""
    sysadmin = site.user("sysadmin")
    for name in (A, B, C):
        made = sysadmin.call("POST", "/api/institutions", json={"name": name})
        assert made.status_code == 201, made.text
    tmp = site.tmp
    password_file = tmp / "repository-passwords" / "b-repository.pass"  # the server's
    password_file.parent.mkdir(exist_ok=True)  # directory: beside its key (the audit key's)
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    repo, data = tmp / "b-repository", tmp / "b-data"
    for rel, content in FILES.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(content)
    env = {**site.env, "MEDARK_PASSWORD_FILE": str(password_file)}
    done = run(env, "--repo", str(repo), "init")
    assert done.returncode == 0, done.stderr
    done = run(env, "--repo", str(repo), "--json", "backup", "--tag", "plan=pacs",
               "--tag", "system=pacs", str(data))
    assert done.returncode == 0, done.stderr
    done = run(env, "--repo", str(repo), "--json", "backup", "--tag", "plan=lis",
               "--tag", "system=lis", str(tmp / "b-data" / "study-2"))
    assert done.returncode == 0, done.stderr
    document = tmp / "b-medark.toml"
    document.write_text(_config(repo, password_file), encoding="utf-8")
    done = run(site.env, "server", "config", "import", "--catalog", site.catalog,
               "--institution", B, str(document))
    assert done.returncode == 0, done.stderr
    users = {
        "a-op": site.new_user("a-op", ["operator"], A),
        "a-viewer": site.new_user("a-viewer", ["viewer"], A),
        "a-secop": site.new_user("a-secop", ["operator", "secadmin"], A),
        "b-sec": site.new_user("b-sec", ["secadmin"], B),
        "b-op": site.new_user("b-op", ["operator"], B),
        "c-sec": site.new_user("c-sec", ["secadmin"], C),
        "center-op": site.new_user("center-op", ["operator"], "center"),
    }
    listed = users["b-op"].call("GET", f"/api/institutions/{B}/systems/pacs/snapshots")
    assert listed.status_code == 200, listed.text
    snaps = listed.json()["snapshots"]
    assert len(snaps) == 1 and listed.json()["grant"] is None
    return World(site, users, snaps[0]["id"], data)


def _when(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _request(user: User, purpose: str = "会诊: second opinion on a CT series",
             scope: dict[str, list[str]] | None = None, seconds: float = 3600,
             institution: str = B) -> Any:
    return user.call("POST", "/api/grants", json={
        "institution": institution, "scope": scope or {"systems": ["pacs"]},
        "purpose": purpose, "ends_at": _when(seconds)})


def _listing(user: User, system: str = "pacs", institution: str = B) -> Any:
    return user.call("GET", f"/api/institutions/{institution}/systems/{system}/snapshots")


@pytest.fixture(scope="module")
def unused_grant(world: World) -> int:
    """An approved grant of a few seconds nobody uses (a-viewer's, for B's lis): asked
    for by the first test too, so that its expiry by the server scheduler (up to
    EXPIRE_EVERY, 10 s, after its end) comes while that test waits for its own."""
    gid = int(_request(world.users["a-viewer"], "short look", {"systems": ["lis"]},
                       seconds=4).json()["grant"]["id"])
    assert world.users["b-sec"].call("POST", f"/api/grants/{gid}/approve").status_code in (
        200, 409)  # 409: a loaded machine let the window pass first; it expires the same
    return gid


def test_a_grant_is_requested_approved_used_expired_then_refused(world: World,
                                                                unused_grant: int) -> None:
    a_op, b_sec = world.users["a-op"], world.users["b-sec"]
    before = _listing(a_op)
    assert before.status_code == 403 and code_of(before) == "grant_required"
    made = _request(a_op, seconds=15)
    assert made.status_code == 201, made.text
    grant = made.json()["grant"]
    assert grant["state"] == "requested" and grant["active"] is False
    assert (grant["from_institution"], grant["to_institution"]) == (A, B)
    assert grant["requester"] == "a-op" and grant["scope"] == {"systems": ["pacs"]}
    gid = grant["id"]
    pending = _listing(a_op)  # requested is not approved
    assert pending.status_code == 403 and code_of(pending) == "grant_required"
    waiting = b_sec.call("GET", "/api/grants").json()["grants"]
    assert [g["id"] for g in waiting if g["state"] == "requested"] == [gid]
    approved = b_sec.call("POST", f"/api/grants/{gid}/approve",
                          json={"note": "for the consultation only"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["grant"]["state"] == "approved"
    assert approved.json()["grant"]["decided_by"] == "b-sec"
    used = _listing(a_op)
    assert used.status_code == 200, used.text
    assert used.json()["grant"] == gid
    assert [s["id"] for s in used.json()["snapshots"]] == [world.snapshot]
    snap = used.json()["snapshots"][0]
    assert snap["host"] and "system=pacs" in snap["tags"]
    assert snap["paths"] == [str(world.data)] and snap["size"] == sum(
        len(c) for c in FILES.values())
    # outside the scope (another system of B) and for another user of A: refused
    other = _listing(a_op, "lis")
    assert other.status_code == 403 and code_of(other) == "grant_required"
    viewer = _listing(world.users["a-viewer"])
    assert viewer.status_code == 403 and code_of(viewer) == "grant_required"

    ends = datetime.fromisoformat(approved.json()["grant"]["ends_at"].replace("Z", "+00:00"))
    while datetime.now(UTC) <= ends + timedelta(seconds=1):
        time.sleep(0.5)
    expired = a_op.call("GET", f"/api/grants/{gid}").json()["grant"]
    assert expired["state"] == "expired" and expired["active"] is False
    listed = b_sec.call("GET", "/api/grants", params={"state": "expired"}).json()
    assert gid in [g["id"] for g in listed["grants"]]
    listed = b_sec.call("GET", "/api/grants", params={"state": "approved"}).json()
    assert gid not in [g["id"] for g in listed["grants"]]
    refused = _listing(a_op)
    assert refused.status_code == 403 and code_of(refused) == "grant_required"
    assert "POST /api/grants" in refused.json()["error"]["message"]

    records = [r for r in audit_records(world.site.catalog) if r["action"].startswith("grant.")
               and (r["detail"].get("grant") == gid or r["actor"] == "a-op")]
    lifecycle = [(r["action"], r["result"]) for r in records
                 if r["detail"].get("grant") == gid]
    assert lifecycle == [("grant.request", "ok"), ("grant.approve", "ok"),
                         ("grant.use", "ok"), ("grant.expire", "ok")]
    use = next(r for r in records if r["action"] == "grant.use")
    assert use["actor"] == "a-op" and use["institution"] == B
    assert {k: use["detail"][k] for k in ("grant", "from_institution", "to_institution",
                                          "purpose", "scope")} == {
        "grant": gid, "from_institution": A, "to_institution": B,
        "purpose": "会诊: second opinion on a CT series", "scope": {"systems": ["pacs"]}}
    refusals = [r for r in records if r["action"] == "grant.refused"]
    assert len(refusals) == 4  # before, pending, lis, after the expiry
    assert {r["result"] for r in refusals} == {"denied"}
    assert refusals[-1]["detail"]["to_institution"] == B
    assert refusals[-1]["detail"]["from_institution"] == A
    last = [r["action"] for r in records][-2:]
    assert last == ["grant.expire", "grant.refused"]  # the expiry is on record first
    reads = [r for r in audit_records(world.site.catalog) if r["action"] == "snapshot.list"
             and r["actor"] == "a-op"]
    assert [(r["result"], r["detail"]["grant"]) for r in reads] == [("ok", gid)]


def test_the_server_scheduler_records_an_expiry_once(world: World, unused_grant: int
                                                     ) -> None:
    """An approved grant nobody uses: the periodic task grants.expire appends its
    grant.expire (from the source "scheduler"), once, even when a read looks again."""
    a_viewer, gid = world.users["a-viewer"], unused_grant

    def expiries() -> list[dict[str, Any]]:
        return [r for r in audit_records(world.site.catalog) if r["action"] == "grant.expire"
                and r["detail"]["grant"] == gid]

    deadline = time.monotonic() + 120
    while not expiries() and time.monotonic() < deadline:
        time.sleep(0.5)
    found = expiries()
    assert [(r["actor"], r["source"], r["institution"]) for r in found] == [
        ("server", "scheduler", B)], found
    assert found[0]["detail"]["purpose"] == "short look"
    refused = _listing(a_viewer, "lis")
    assert refused.status_code == 403 and code_of(refused) == "grant_required"
    assert len(expiries()) == 1


def test_a_denied_grant_gives_no_access(world: World) -> None:
    a_viewer, b_sec = world.users["a-viewer"], world.users["b-sec"]
    gid = _request(a_viewer, "audit of imaging turnaround").json()["grant"]["id"]
    denied = b_sec.call("POST", f"/api/grants/{gid}/deny", json={"note": "ask the "
                                                                 "patient first"})
    assert denied.status_code == 200 and denied.json()["grant"]["state"] == "denied"
    assert denied.json()["grant"]["decision_note"] == "ask the patient first"
    refused = _listing(a_viewer)
    assert refused.status_code == 403 and code_of(refused) == "grant_required"
    again = b_sec.call("POST", f"/api/grants/{gid}/approve")
    assert again.status_code == 409 and code_of(again) == "grant_state"
    actions = [(r["action"], r["result"]) for r in audit_records(world.site.catalog)
               if r["detail"].get("grant") == gid]
    assert actions == [("grant.request", "ok"), ("grant.deny", "ok"),
                       ("grant.approve", "denied")]


def test_only_the_data_owners_security_administrator_decides(world: World) -> None:
    a_secop = world.users["a-secop"]
    gid = _request(a_secop).json()["grant"]["id"]
    own = a_secop.call("POST", f"/api/grants/{gid}/approve")
    assert own.status_code == 403 and code_of(own) == "self_approval"
    foreign = world.users["c-sec"].call("POST", f"/api/grants/{gid}/approve")
    assert foreign.status_code == 404  # C sees nothing of a grant between A and B
    center = world.site.user("secadmin").call("POST", f"/api/grants/{gid}/approve")
    assert center.status_code == 403 and code_of(center) == "forbidden"
    assert "county-b" in center.json()["error"]["message"]
    requesters_own = a_secop.call("POST", "/api/grants/{}/approve".format(
        _request(world.users["a-op"]).json()["grant"]["id"]))
    assert requesters_own.status_code == 403 and code_of(requesters_own) == "forbidden"
    operator = world.users["b-op"].call("POST", f"/api/grants/{gid}/approve")
    assert operator.status_code == 403 and code_of(operator) == "forbidden"
    state = a_secop.call("GET", f"/api/grants/{gid}").json()["grant"]["state"]
    assert state == "requested"
    refusals = [(r["actor"], r["detail"]["reason"]) for r in audit_records(world.site.catalog)
                if r["action"] == "grant.approve" and r["detail"].get("grant") == gid]
    assert refusals == [("a-secop", "self_approval"), ("secadmin", "forbidden")]
    # the requester revokes its own request; then nothing is left to decide
    revoked = a_secop.call("POST", f"/api/grants/{gid}/revoke")
    assert revoked.status_code == 200 and revoked.json()["grant"]["state"] == "revoked"
    late = world.users["b-sec"].call("POST", f"/api/grants/{gid}/approve")
    assert late.status_code == 409 and code_of(late) == "grant_state"


def test_the_owner_revokes_an_approved_grant(world: World) -> None:
    center_op, b_sec = world.users["center-op"], world.users["b-sec"]
    # a regional center account sees B's metadata but needs a grant for its data
    refused = _listing(center_op)
    assert refused.status_code == 403 and code_of(refused) == "grant_required"
    gid = _request(center_op, "regional quality review").json()["grant"]["id"]
    assert b_sec.call("POST", f"/api/grants/{gid}/approve").status_code == 200
    assert _listing(center_op).status_code == 200
    others = world.users["a-op"].call("POST", f"/api/grants/{gid}/revoke")
    assert others.status_code == 404  # A sees nothing of a grant between center and B
    revoked = b_sec.call("POST", f"/api/grants/{gid}/revoke", json={"note": "done"})
    assert revoked.status_code == 200 and revoked.json()["grant"]["revoked_by"] == "b-sec"
    after = _listing(center_op)
    assert after.status_code == 403 and code_of(after) == "grant_required"
    seen = {g["id"] for g in center_op.call("GET", "/api/grants").json()["grants"]}
    assert gid in seen  # the center sees every grant


def test_requests_are_checked(world: World) -> None:
    a_op = world.users["a-op"]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"institution": A}, 422, "needs no grant"),
        ({"institution": "nowhere"}, 404, "no institution"),
        ({"purpose": "   "}, 422, "purpose"),
        ({"ends_at": _when(31 * 86400)}, 422, "30 days"),
        ({"ends_at": _when(-60)}, 422, "ends after"),
        ({"ends_at": "yesterday"}, 422, "RFC 3339"),
        ({"starts_at": _when(40 * 86400), "ends_at": _when(41 * 86400)}, 422, "30 days"),
        ({"scope": {"systems": ["pacs"], "snapshots": ["abcdef12"]}}, 422, "scope"),
        ({"scope": {"snapshots": ["ABC"]}}, 422, "snapshots"),
    ]
    for change, status, words in cases:
        body = {"institution": B, "scope": {"systems": ["pacs"]}, "purpose": "review",
                "ends_at": _when(3600), **change}
        response = a_op.call("POST", "/api/grants", json=body)
        assert response.status_code == status, (change, response.text)
        assert words in response.json()["error"]["message"], (change, response.text)


def test_snapshots_browse_and_find_under_a_snapshot_grant(world: World) -> None:
    a_op, b_op, b_sec = world.users["a-op"], world.users["b-op"], world.users["b-sec"]
    base = f"/api/institutions/{B}/systems/pacs/snapshots/{world.snapshot[:12]}"
    root = b_op.call("GET", base + "/tree")
    assert root.status_code == 200, root.text
    assert root.json()["path"] == "/" and root.json()["grant"] is None
    # down to the backed-up directory, one level at a time
    path = "/"
    for part in [p for p in str(world.data).split("/") if p]:
        names = [e["name"] for e in b_op.call(
            "GET", base + "/tree", params={"path": path}).json()["entries"]]
        assert part in names
        path = path.rstrip("/") + "/" + part
    level = b_op.call("GET", base + "/tree", params={"path": path}).json()["entries"]
    assert {(e["name"], e["type"]) for e in level} == {
        ("study-1", "dir"), ("study-2", "dir"), ("ward-notes.txt", "file")}
    assert next(e for e in level if e["name"] == "ward-notes.txt")["size"] == 5
    missing = b_op.call("GET", base + "/tree", params={"path": path + "/nothing"})
    assert missing.status_code == 404
    found = b_op.call("GET", base + "/find", params={"pattern": "*.dcm", "limit": 2})
    assert found.status_code == 200, found.text
    assert found.json()["truncated"] is True and len(found.json()["matches"]) == 2
    found = b_op.call("GET", base + "/find", params={"pattern": "IM0001.dcm"})
    assert sorted(m["path"] for m in found.json()["matches"]) == [
        f"{world.data}/study-1/IM0001.dcm", f"{world.data}/study-2/IM0001.dcm"]
    assert b_op.call("GET", f"/api/institutions/{B}/systems/lis/snapshots/"
                            f"{world.snapshot}/tree").status_code == 404  # not lis's
    # A: refused, then allowed for this one snapshot only
    refused = a_op.call("GET", base + "/find", params={"pattern": "*.dcm"})
    assert refused.status_code == 403 and code_of(refused) == "grant_required"
    gid = _request(a_op, "transfer of one study", {"snapshots": [world.snapshot[:8]]}
                   ).json()["grant"]["id"]
    assert b_sec.call("POST", f"/api/grants/{gid}/approve").status_code == 200
    browsed = a_op.call("GET", base + "/tree", params={"path": path})
    assert browsed.status_code == 200 and browsed.json()["grant"] == gid
    found = a_op.call("GET", base + "/find", params={"pattern": "*.dcm"})
    assert found.status_code == 200 and len(found.json()["matches"]) == 3
    listed = _listing(a_op, "lis")  # the grant names no lis snapshot: an empty list
    assert listed.status_code == 200 and listed.json()["snapshots"] == []
    records = [r for r in audit_records(world.site.catalog) if r["actor"] == "a-op"
               and r["action"] in ("snapshot.browse", "snapshot.find")]
    assert [(r["action"], r["detail"]["grant"]) for r in records] == [
        ("snapshot.browse", gid), ("snapshot.find", gid)]
    assert all(r["result"] == "ok" and r["institution"] == B for r in records)
    assert b_sec.call("POST", f"/api/grants/{gid}/revoke").status_code == 200


ROLES = ("sysadmin", "secadmin", "auditadmin", "operator", "viewer")


def test_every_role_against_the_grants_endpoints(world: World) -> None:
    """Center accounts of each role: who may request, read, decide, list snapshots."""
    site = world.site
    # the second security administrator last: once it exists, four eyes apply to the
    # other administrators' creation (server/approvals.py)
    users = {role: site.new_user(f"grants-{role}", [role], "center")
             for role in sorted(ROLES, key=lambda role: role == "secadmin")}
    gid = _request(world.users["a-op"], "matrix").json()["grant"]["id"]
    snapshots = f"/api/institutions/{B}/systems/pacs/snapshots"
    cases: list[tuple[str, str, dict[str, Any] | None, frozenset[str], int, str]] = [
        ("GET", "/api/grants", None, frozenset(ROLES), 200, ""),
        ("GET", f"/api/grants/{gid}", None, frozenset(ROLES), 200, ""),
        ("POST", "/api/grants", {"institution": B, "scope": {"systems": ["pacs"]},
                                 "purpose": "matrix", "ends_at": _when(600)},
         frozenset({"operator", "viewer"}), 201, ""),
        # a center secadmin is not B's: nobody of the center decides B's grants
        ("POST", f"/api/grants/{gid}/approve", None, frozenset(), 200, ""),
        ("POST", f"/api/grants/{gid}/deny", None, frozenset(), 200, ""),
        ("POST", f"/api/grants/{gid}/revoke", None, frozenset(), 200, ""),
        # operators and viewers may read snapshots, B's only under a grant
        ("GET", snapshots, None, frozenset(), 200, "grant_required"),
        ("GET", f"{snapshots}/{world.snapshot}/tree", None, frozenset(), 200,
         "grant_required"),
        ("GET", f"{snapshots}/{world.snapshot}/find?pattern=*", None, frozenset(), 200,
         "grant_required"),
    ]
    for method, path, body, allowed, ok, readers in cases:
        for role in ROLES:
            response = users[role].call(method, path, json=body)
            if role in allowed:
                assert response.status_code == ok, (role, method, path, response.text)
                continue
            assert response.status_code == 403, (role, method, path, response.text)
            expected = readers if readers and role in ("operator", "viewer") else "forbidden"
            assert code_of(response) == expected, (role, method, path, response.text)
    token = site.user("secadmin").call("POST", "/api/tokens", json={
        "name": "grants-bot", "role": "operator", "institution": A}).json()["secret"]
    bot = site.server.client(headers={"Authorization": f"Bearer {token}"})
    refused = bot.post("/api/grants", json={"institution": B, "scope": {
        "systems": ["pacs"]}, "purpose": "automation", "ends_at": _when(600)})
    assert refused.status_code == 403 and code_of(refused) == "session_required"
    assert bot.get("/api/grants").status_code == 200
    assert code_of(bot.get(snapshots)) == "grant_required"
    anonymous = site.server.client()
    for method, path, _body, _allowed, _ok, _readers in cases:
        response = anonymous.request(method, path)
        assert response.status_code == 401 and code_of(response) == "not_authenticated"

