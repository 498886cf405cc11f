"""The audit trail API (server/audit_api.py, routes/audit.py), in process: search with
filters and paging, a hospital's scope, export as JSON lines and CSV, verify (intact,
then a tampered record named), other roles refused, and every search, export and
verify itself audited; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, text, update
from starlette.exceptions import StarletteDeprecationWarning

from medark.catalog.audit_trail import read_records, records
from medark.catalog.store import Catalog
from medark.server import totpkey
from medark.server.app import create_app
from medark.server.auth import AuthPolicy
from medark.server.db import audit
from medark.server.deps import ServerSettings
from medark.util import clock

with warnings.catch_warnings():  # starlette wants httpx2, which is not a dependency
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

CENTER, HOSPITAL = "center", "hosp1"


@dataclass
class Api:
    catalog: Catalog
    url: str
    app: Any
    users: dict[str, TestClient] = field(default_factory=dict)


def _sign_in(app: Any, name: str, one_time: str) -> TestClient:
    """Sign in with the one-time password, change it, and enrol the second factor an
    administrator needs: the client carries the session cookie and the CSRF header."""
    client = TestClient(app)
    answer = client.post("/api/login", json={"username": name, "password": one_time})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    me = answer.json()["user"]
    changed = client.post("/api/me/password", json={
        "current_password": one_time, "new_password": f"Changed-at-first-{name[::-1]}-9"})
    assert changed.status_code == 200, changed.text
    if me["totp_enrolment_required"]:
        totp = pyotp.parse_uri(client.post("/api/me/totp").json()["otpauth_uri"])
        assert isinstance(totp, pyotp.TOTP)
        confirmed = client.post("/api/me/totp/confirm", json={"code": totp.now()})
        assert confirmed.status_code == 200, confirmed.text
    return client


@pytest.fixture(scope="module", params=KINDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Api]:
    tmp: Path = tmp_path_factory.mktemp("audit_api")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDARK_AUDIT_KEY_FILE", str(tmp / "audit.key"))
        for url in catalog_urls(request.param, tmp / "catalog.db", "medark_audit_api"):
            catalog = Catalog(url)
            try:
                from medark.server.accounts import Accounts

                passwords = Accounts(catalog).initialise(CENTER, "Center", clock.now())
                settings = ServerSettings(catalog, AuthPolicy(), False,
                                          totpkey.load(catalog), 10000,
                                          single_security_admin=True)
                app = create_app(settings)
                made = Api(catalog, url, app)
                for name in ("sysadmin", "secadmin", "auditadmin"):
                    made.users[name] = _sign_in(app, name, passwords[name])
                sec = made.users["secadmin"]
                assert made.users["sysadmin"].post("/api/institutions", json={
                    "name": HOSPITAL, "title": "Hospital 1"}).status_code == 201
                for name, role in (("hospaudit", "auditadmin"), ("hospview", "viewer")):
                    made_user = sec.post("/api/users", json={
                        "name": name, "institution": HOSPITAL, "roles": [role]})
                    assert made_user.status_code == 201, made_user.text
                    made.users[name] = _sign_in(app, name,
                                                made_user.json()["one_time_password"])
                for i in range(5):
                    audit(catalog, "alice", "10.0.0.1", "user.create", f"user:u{i}", "ok",
                          HOSPITAL, {"roles": ["viewer"]})
                for i in range(3):
                    audit(catalog, "bob", "10.0.0.2", "job.run", f"job:{i}", "denied",
                          CENTER, {"reason": "forbidden"})
                yield made
            finally:
                catalog.close()


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def _newest(api: Api, action: str) -> Any:
    return [r for r in read_records(api.catalog) if r.action == action][-1]


def test_search_filters_and_pages(api: Api) -> None:
    client = api.users["auditadmin"]
    seen: list[dict[str, Any]] = []
    before: int | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"action": "user.*", "institution": HOSPITAL,
                                  "actor": "alice", "limit": 2}
        if before is not None:
            params["before_seq"] = before
        page = client.get("/api/audit", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += body["records"]
        pages += 1
        before = body["next_before_seq"]
        if before is None:
            break
    assert pages == 3
    assert [r["target"] for r in seen] == [f"user:u{i}" for i in range(4, -1, -1)]
    seqs = [r["seq"] for r in seen]
    assert seqs == sorted(seqs, reverse=True)
    assert set(seen[0]) == {"seq", "at", "actor", "source", "action", "target", "result",
                            "institution", "detail", "hash"}
    assert seen[0]["at"].endswith("Z")
    denied = client.get("/api/audit", params={"result": "denied", "action": "job.run"})
    assert [r["actor"] for r in denied.json()["records"]] == ["bob"] * 3
    one = client.get("/api/audit", params={"target": "job:1"}).json()["records"]
    assert [r["target"] for r in one] == ["job:1"]
    future = client.get("/api/audit", params={"from": "2999-01-01T00:00:00+08:00"})
    assert future.json() == {"records": [], "next_before_seq": None}
    today = client.get("/api/audit", params={"from": "2000-01-01", "to": "2999-12-31",
                                             "action": "job.run"})
    assert len(today.json()["records"]) == 3


@pytest.mark.parametrize("params", [
    {"from": "yesterday"}, {"from": "2026-12-01T08:00:00"}, {"to": "2026-13-45"},
    {"from": "2026-12-02", "to": "2026-12-01"}, {"limit": 1001}, {"limit": 0},
    {"result": "maybe"}, {"before_seq": "x"}, {"actor": "a\x00b"}])
def test_bad_query_is_422(api: Api, params: dict[str, Any]) -> None:
    answer = api.users["auditadmin"].get("/api/audit", params=params)
    assert answer.status_code == 422, answer.text
    assert _code(answer) == "invalid_request"
    if not {"limit", "before_seq"} & set(params):  # paging is the search's
        exported = api.users["auditadmin"].get("/api/audit/export", params=params)
        assert exported.status_code == 422, exported.text


def test_hospital_auditadmin_sees_its_own(api: Api) -> None:
    client = api.users["hospaudit"]
    found = client.get("/api/audit", params={"limit": 1000}).json()["records"]
    assert found and {r["institution"] for r in found} == {HOSPITAL}
    refused = client.get("/api/audit", params={"institution": CENTER})
    assert refused.status_code == 403 and _code(refused) == "out_of_scope"
    lines = client.get("/api/audit/export").text.splitlines()
    assert {json.loads(line)["institution"] for line in lines} == {HOSPITAL}
    center = api.users["auditadmin"].get("/api/audit", params={"institution": CENTER})
    assert {r["institution"] for r in center.json()["records"]} == {CENTER}
    assert _newest(api, "audit.search").result == "ok"


def test_export_jsonl_and_csv(api: Api) -> None:
    client = api.users["auditadmin"]
    wanted = [r.public() for r in read_records(api.catalog) if r.action == "user.create"
              and r.actor == "alice"]
    jsonl = client.get("/api/audit/export", params={"action": "user.create",
                                                    "actor": "alice"})
    assert jsonl.status_code == 200, jsonl.text
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in jsonl.headers["content-disposition"]
    assert [json.loads(line) for line in jsonl.text.splitlines()] == wanted
    exported = _newest(api, "audit.export")
    assert exported.detail == {"action": "user.create", "actor": "alice",
                               "format": "jsonl", "records": 5}
    as_csv = client.get("/api/audit/export", params={"action": "user.*",
                                                     "actor": "alice", "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(r["seq"]) for r in rows] == [w["seq"] for w in wanted]
    assert json.loads(rows[0]["detail"]) == wanted[0]["detail"]
    assert rows[0]["hash"] == wanted[0]["hash"]
    bad = client.get("/api/audit/export", params={"format": "xml"})
    assert bad.status_code == 422


def test_other_roles_refused_and_audited(api: Api) -> None:
    for name in ("sysadmin", "secadmin", "hospview"):
        for path in ("/api/audit", "/api/audit/export", "/api/audit/verify"):
            answer = api.users[name].get(path, params={"actor": "alice"}
                                         if path != "/api/audit/verify" else None)
            assert answer.status_code == 403, (name, path, answer.text)
        refused = _newest(api, "audit.verify")
        assert (refused.actor, refused.result) == (name, "denied")
    searched = [r for r in read_records(api.catalog) if r.action == "audit.search"
                and r.actor == "sysadmin"]
    assert searched[-1].result == "denied" and searched[-1].detail["actor"] == "alice"
    assert api.users["auditadmin"].delete("/api/audit").status_code == 405


def test_search_is_audited_with_its_filters(api: Api) -> None:
    api.users["auditadmin"].get("/api/audit", params={"action": "job.*", "limit": 7})
    record = _newest(api, "audit.search")
    assert (record.actor, record.result) == ("auditadmin", "ok")
    assert record.detail["action"] == "job.*" and record.detail["limit"] == 7


def test_verify_intact_then_tampered(api: Api) -> None:
    """Last: it breaks the module's chain."""
    client = api.users["auditadmin"]
    answer = client.get("/api/audit/verify")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["intact"] is True and body["problems"] == []
    assert body["records"] == body["head"] > 0
    assert _newest(api, "audit.verify").actor == "auditadmin"
    victim = [r for r in read_records(api.catalog) if r.actor == "alice"][2].seq
    engine = create_engine(api.url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            suffix = " ON audit_trail" if engine.dialect.name == "postgresql" else ""
            connection.execute(text(f"DROP TRIGGER audit_trail_no_update{suffix}"))
            connection.execute(update(records).where(records.c.seq == victim)
                               .values(actor="mallory"))
    finally:
        engine.dispose()
    broken = client.get("/api/audit/verify").json()
    assert broken["intact"] is False
    assert {"seq": victim, "kind": "edited"} in [
        {"seq": p["seq"], "kind": p["kind"]} for p in broken["problems"]]
