"""Four-eyes approvals over real HTTP on SQLite and PostgreSQL catalogs: a reset,
disabling, creation or promotion of an administrator account waits for a second
security administrator; self-approval refused; expiry after a day; operator accounts
changed at once; refusal when there is no second security administrator, and
`--single-security-admin`. Also the OpenAPI document's security declarations and a
422's problems listed one by one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from catalog_urls import KINDS, catalog_urls
from server_site import (
    Site,
    User,
    audit_records,
    base_env,
    code_of,
    first_login,
    init,
    login,
    next_code,
    start,
)
from sqlalchemy import select, update

from medark.catalog.store import Catalog
from medark.server.tables_approvals import ApprovalRow

PUBLIC = {"/api/health", "/api/login", "/api/agent/enroll"}


@pytest.fixture(scope="module", params=KINDS, name="site")
def four_eyes_site(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server with four eyes on (no --single-security-admin)."""
    tmp = tmp_path_factory.mktemp("approvals")
    env = base_env(tmp)
    for url in catalog_urls(request.param, tmp / "catalog.db", "medark_approvals"):
        passwords = init(env, url)
        server = start(env, url, "--login-rate", "10000")
        made = Site(env, url, server, passwords, tmp)
        try:
            yield made
        finally:
            log = server.stop()
            assert "single-security-admin" not in log
            assert not [p for p in passwords.values() if p in log]


def _create(by: User, name: str, roles: list[str]) -> httpx.Response:
    return by.call("POST", "/api/users", json={"name": name, "institution": "center",
                                               "roles": roles})


def _second_secadmin(site: Site) -> User:
    """`sec2`, made through a server with --single-security-admin (the bootstrap
    docs/server.md describes); the waiver is audited and the server warns."""
    if "sec2" in site.ready:
        return site.ready["sec2"]
    lone = start(site.env, site.catalog, "--login-rate", "10000", "--single-security-admin")
    try:
        secadmin = site.user("secadmin")
        client, response = login(lone, "secadmin", secadmin.password,
                                 next_code(secadmin.totp) if secadmin.totp else None)
        assert response.status_code == 200, response.text
        made = client.post("/api/users", json={"name": "sec2", "institution": "center",
                                               "roles": ["secadmin"]})
        assert made.status_code == 201, made.text
        one_time = made.json()["one_time_password"]
        # sec2 exists now: four eyes apply again, the flag notwithstanding
        asked = client.post("/api/users", json={"name": "flagged-sys", "institution":
                                                "center", "roles": ["sysadmin"]})
        assert asked.status_code == 202, asked.text
        withdrawn = client.post(f"/api/approvals/{asked.json()['approval']['id']}/reject",
                                json={"note": "test"})
        assert withdrawn.status_code == 200, withdrawn.text
    finally:
        warned = lone.stop()
    assert "warning: --single-security-admin" in warned
    waived = [r for r in audit_records(site.catalog, "approval.waived") if r["target"] == "sec2"]
    assert len(waived) == 1 and waived[0]["actor"] == "secadmin"
    assert waived[0]["detail"]["reasons"] == ["admin_create"]
    site.ready["sec2"] = first_login(site.server, "sec2", one_time)
    return site.ready["sec2"]


def _set_expiry(site: Site, approval_id: int, when: datetime) -> None:
    catalog = Catalog(site.catalog)
    try:
        with catalog._session() as session:
            session.execute(update(ApprovalRow).where(ApprovalRow.id == approval_id)
                            .values(expires_at=when))
    finally:
        catalog.close()


def test_alone_a_change_of_an_administrator_is_refused(site: Site) -> None:
    secadmin = site.user("secadmin")
    for method, path, body in (
            ("PATCH", "/api/users/sysadmin", {"reset_password": True}),
            ("PATCH", "/api/users/auditadmin", {"reset_totp": True}),
            ("DELETE", "/api/users/sysadmin", None),
            ("POST", "/api/users", {"name": "lone-sec", "institution": "center",
                                    "roles": ["secadmin"]})):
        refused = secadmin.call(method, path, json=body)
        assert refused.status_code == 409, (path, refused.text)
        assert code_of(refused) == "four_eyes_unavailable"
        assert "--single-security-admin" in refused.json()["error"]["message"]
    assert secadmin.call("GET", "/api/users/lone-sec").status_code == 404
    denied = [r for r in audit_records(site.catalog, "approval.request") if r["result"] == "denied"]
    assert len(denied) >= 4
    assert {r["detail"]["reason"] for r in denied} == {"four_eyes_unavailable"}
    # an operator's account changes at once, alone or not
    made = _create(secadmin, "op1", ["operator"])
    assert made.status_code == 201, made.text
    reset = secadmin.call("PATCH", "/api/users/op1", json={"reset_password": True})
    assert reset.status_code == 200 and reset.json()["one_time_password"]


def test_openapi_declares_how_to_authenticate(site: Site) -> None:
    spec = site.server.client().get("/api/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert (schemes["session"]["type"], schemes["session"]["in"],
            schemes["session"]["name"]) == ("apiKey", "cookie", "medark_session")
    assert (schemes["csrf"]["in"], schemes["csrf"]["name"]) == ("header", "X-CSRF-Token")
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in PUBLIC:
                assert "security" not in operation, (method, path)
                continue
            wanted = [{"bearer": []}] if path.startswith("/api/agent/") else [
                {"bearer": []},
                {"session": []} if method == "get" else {"session": [], "csrf": []}]
            assert operation.get("security") == wanted, (method, path)
            checked += 1
    assert checked >= 30
    # an Authorization header the server cannot read is refused, not passed over for
    # the session cookie beside it (schemathesis's ignored_auth check)
    secadmin = site.user("secadmin")
    odd = secadmin.call("GET", "/api/me", headers={"Authorization": "Basic c2VjOng="})
    assert odd.status_code == 401 and code_of(odd) == "invalid_token"
    assert secadmin.call("GET", "/api/me").status_code == 200
    for path in ("/api/users", "/api/users/{name}"):
        assert "202" in spec["paths"][path]["post" if path == "/api/users" else "patch"][
            "responses"]


def test_a_422_lists_its_problems(site: Site) -> None:
    secadmin = site.user("secadmin")
    bad = secadmin.call("POST", "/api/users", json={"name": 7, "roles": [],
                                                    "extra": True})
    assert bad.status_code == 422 and code_of(bad) == "invalid_request"
    problems = bad.json()["error"]["problems"]
    fields = {p["field"] for p in problems}
    assert {"body.name", "body.institution", "body.roles", "body.extra"} <= fields
    assert all(p["message"] for p in problems)
    sysadmin = site.user("sysadmin")
    document = ('[sites.main]\nlocation = "CN-SC"\ncolour = "blue"\n'
                '[repositories.local]\nsite = "nowhere"\nurl = "/backup"\n')
    refused = sysadmin.call("PUT", "/api/institutions/center/config", json={
        "document": document, "comment": "bad", "base_version": None})
    assert refused.status_code == 422 and code_of(refused) == "invalid_config"
    listed = {(p["field"], p["message"]) for p in refused.json()["error"]["problems"]}
    assert ("sites.main.colour", "line 3: unknown key") in listed, listed
    assert any(field == "repositories.local.site" and message.startswith("line 5: ")
               for field, message in listed), listed
    denied = secadmin.call("GET", "/api/institutions/center/config")
    assert denied.status_code == 403 and "problems" not in denied.json()["error"]


def test_an_administrator_reset_needs_a_second_security_administrator(site: Site) -> None:
    secadmin, sec2 = site.user("secadmin"), _second_secadmin(site)
    sysadmin = site.user("sysadmin")
    asked = secadmin.call("PATCH", "/api/users/sysadmin", json={"reset_password": True})
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval"]
    assert set(asked.json()) == {"approval"}  # no password until approved
    assert approval["state"] == "pending" and approval["requested_by"] == "secadmin"
    assert approval["reasons"] == ["admin_password_reset"]
    assert approval["change"]["reset_password"] is True
    assert sysadmin.call("GET", "/api/me").status_code == 200  # nothing changed yet
    again = secadmin.call("PATCH", "/api/users/sysadmin", json={"reset_totp": True})
    assert again.status_code == 409 and code_of(again) == "approval_pending"
    path = f"/api/approvals/{approval['id']}"
    own = secadmin.call("POST", f"{path}/approve")
    assert own.status_code == 403 and code_of(own) == "self_approval"
    not_sec = sysadmin.call("POST", f"{path}/approve")
    assert not_sec.status_code == 403 and code_of(not_sec) == "forbidden"
    listed = sec2.call("GET", "/api/approvals", params={"state": "pending"}).json()
    assert [a["id"] for a in listed["approvals"]] == [approval["id"]]
    done = sec2.call("POST", f"{path}/approve", json={"note": "lost phone, ticket 42"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["approval"]["state"] == "approved"
    assert body["approval"]["decided_by"] == "sec2"
    one_time = body["one_time_password"]
    assert body["user"]["name"] == "sysadmin" and body["user"]["must_change_password"]
    assert sysadmin.call("GET", "/api/me").status_code == 401  # its sessions ended
    assert sysadmin.totp is not None  # a password reset keeps the second factor
    _c, signed = login(site.server, "sysadmin", one_time, next_code(sysadmin.totp))
    assert signed.status_code == 200 and signed.json()["user"]["password_change_required"]
    twice = sec2.call("POST", f"{path}/approve")
    assert twice.status_code == 409 and code_of(twice) == "approval_state"
    assert sec2.call("GET", path).json()["approval"]["state"] == "approved"
    # audited: the request, the change as the approver's (naming the approval), and
    # the approval once the change is made
    records = [r for r in audit_records(site.catalog, "approval.request", "approval.approve",
                                 "user.update")
               if r["target"] == "sysadmin" and r["result"] == "ok"]
    assert [(r["action"], r["actor"]) for r in records] == [
        ("approval.request", "secadmin"), ("user.update", "sec2"),
        ("approval.approve", "sec2")]
    assert records[1]["detail"] == {"password_reset": True, "approval": approval["id"],
                                    "requested_by": "secadmin"}
    refusals = {r["detail"]["reason"] for r in audit_records(site.catalog, "approval.approve")
                if r["result"] == "denied"}
    assert refusals == {"self_approval", "approval_state"}
    assert one_time not in str(audit_records(site.catalog))
    catalog = Catalog(site.catalog)
    try:
        with catalog._session() as session:
            stored = [(r.change, r.note) for r in session.scalars(select(ApprovalRow))]
    finally:
        catalog.close()
    assert one_time not in str(stored)
    del site.ready["sysadmin"]


def test_disabling_creating_and_promoting_wait_too(site: Site) -> None:
    secadmin, sec2 = site.user("secadmin"), _second_secadmin(site)
    # disabling an administrator: rejected by the second one, nothing changes
    asked = secadmin.call("DELETE", "/api/users/auditadmin")
    assert asked.status_code == 202 and asked.json()["approval"]["reasons"] == [
        "admin_disable"]
    rejected = sec2.call("POST", f"/api/approvals/{asked.json()['approval']['id']}/reject",
                         json={"note": "not agreed"})
    assert rejected.status_code == 200 and rejected.json()["approval"]["state"] == "rejected"
    assert "one_time_password" not in rejected.json()
    assert secadmin.call("GET", "/api/users/auditadmin").json()["user"]["disabled"] is False
    # promoting an operator: the requester may withdraw it
    if secadmin.call("GET", "/api/users/op1").status_code == 404:
        assert _create(secadmin, "op1", ["operator"]).status_code == 201
    promoted = secadmin.call("PATCH", "/api/users/op1",
                             json={"roles": ["operator", "sysadmin"]})
    assert promoted.status_code == 202
    assert promoted.json()["approval"]["reasons"] == ["admin_role_given"]
    withdrawn = secadmin.call(
        "POST", f"/api/approvals/{promoted.json()['approval']['id']}/reject")
    assert withdrawn.status_code == 200
    assert secadmin.call("GET", "/api/users/op1").json()["user"]["roles"] == ["operator"]
    # creating an administrator: the approver gets the one-time password, once
    created = _create(sec2, "aud2", ["auditadmin"])
    assert created.status_code == 202, created.text
    assert created.json()["approval"]["reasons"] == ["admin_create"]
    assert secadmin.call("GET", "/api/users/aud2").status_code == 404
    approved = secadmin.call(
        "POST", f"/api/approvals/{created.json()['approval']['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["user"]["roles"] == ["auditadmin"]
    first_login(site.server, "aud2", approved.json()["one_time_password"])
    made = [r for r in audit_records(site.catalog, "user.create") if r["target"] == "aud2"]
    assert [(r["actor"], r["detail"]["requested_by"]) for r in made] == [
        ("secadmin", "sec2")]
    # the account's holder cannot approve a change of its own account: with two
    # security administrators, a change of one of them has no approver
    alone = secadmin.call("PATCH", "/api/users/sec2", json={"reset_totp": True})
    assert alone.status_code == 409 and code_of(alone) == "four_eyes_unavailable"
    third = _create(sec2, "sec3", ["secadmin"])
    assert third.status_code == 202
    assert secadmin.call("POST", f"/api/approvals/{third.json()['approval']['id']}"
                                 "/approve").status_code == 200
    own = secadmin.call("PATCH", "/api/users/sec2", json={"reset_totp": True})
    assert own.status_code == 202, own.text
    holder = sec2.call("POST", f"/api/approvals/{own.json()['approval']['id']}/approve")
    assert holder.status_code == 403 and code_of(holder) == "self_approval"
    assert secadmin.call(
        "POST", f"/api/approvals/{own.json()['approval']['id']}/reject").status_code == 200
    # an operator sees no approvals; a token cannot decide
    operator = site.ready.get("op1") or first_login(
        site.server, "op1", secadmin.call("PATCH", "/api/users/op1", json={
            "reset_password": True}).json()["one_time_password"])
    site.ready["op1"] = operator
    hidden = operator.call("GET", "/api/approvals")
    assert hidden.status_code == 403 and code_of(hidden) == "forbidden"
    missing = sec2.call("GET", "/api/approvals/2147483647")
    assert missing.status_code == 404 and code_of(missing) == "not_found"


def test_a_request_expires_after_a_day(site: Site) -> None:
    secadmin, sec2 = site.user("secadmin"), _second_secadmin(site)
    asked = secadmin.call("PATCH", "/api/users/auditadmin", json={"reset_totp": True})
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval"]
    made = datetime.fromisoformat(approval["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(approval["expires_at"].replace("Z", "+00:00"))
    assert expires - made == timedelta(hours=24)
    _set_expiry(site, approval["id"], datetime.now(UTC) - timedelta(minutes=1))
    path = f"/api/approvals/{approval['id']}"
    assert sec2.call("GET", path).json()["approval"]["state"] == "expired"
    late = sec2.call("POST", f"{path}/approve")
    assert late.status_code == 409 and code_of(late) == "approval_expired"
    expired = [r for r in audit_records(site.catalog, "approval.expire")
               if r["detail"]["approval"] == approval["id"]]
    assert len(expired) == 1 and expired[0]["actor"] == "server"
    sec2.call("POST", f"{path}/approve")  # refused again, not expired twice
    assert len([r for r in audit_records(site.catalog, "approval.expire")
                if r["detail"]["approval"] == approval["id"]]) == 1
    assert [a["id"] for a in sec2.call("GET", "/api/approvals", params={
        "state": "expired"}).json()["approvals"]] == [approval["id"]]
    anew = secadmin.call("PATCH", "/api/users/auditadmin", json={"reset_totp": True})
    assert anew.status_code == 202  # an expired request blocks no new one
    assert secadmin.call(
        "POST", f"/api/approvals/{anew.json()['approval']['id']}/reject").status_code == 200
