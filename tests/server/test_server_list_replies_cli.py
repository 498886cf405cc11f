"""The list endpoints' cheaper answers, over real servers on SQLite and PostgreSQL
catalogs: the configuration views put together from parts kept by each document's hash
(server/config_listing.py) give the bytes FastAPI made of config_views' dicts, a new
version saved through another server process on the same catalog shows at once, a
version newer rules refuse is listed under `invalid` and not kept; the other lists
(server/replies.py) are their response model's own serialisation, with the security
headers (server/asgi.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter
from server_site import Site, User, his_config, site_fixture, start
from sqlalchemy import text

from medark.catalog.store import Catalog
from medark.server import config_views as views
from medark.server.accounts import Principal
from medark.server.schemas import UserList
from medark.server.schemas_agents import AgentList
from medark.server.schemas_configs import PlanList, RepositoryList, SiteList, SystemList
from medark.server.schemas_jobs import JobList
from medark.server.schemas_oversight import AlertList

site = site_fixture()

LISTS: dict[str, type[BaseModel]] = {"sites": SiteList, "systems": SystemList,
                                     "repositories": RepositoryList, "plans": PlanList}


def _doc(inst: str, schedule: str) -> str:
    """The institution's document, its site's title its own."""
    return his_config(inst, schedule, title=f"主院区 {inst}")


def _save(user: User, inst: str, schedule: str = "*/15 * * * *") -> int:
    """A new version of the institution's configuration (made first if need be)."""
    made = user.call("POST", "/api/institutions", json={"name": inst})
    assert made.status_code in (201, 409), made.text
    current = user.call("GET", f"/api/institutions/{inst}/config")
    base = current.json()["config"]["version"] if current.status_code == 200 else None
    saved = user.call("PUT", f"/api/institutions/{inst}/config", json={
        "document": _doc(inst, schedule), "comment": "",
        "base_version": base})
    assert saved.status_code == 200, saved.text
    return int(saved.json()["config"]["version"])


def _as_before(site: Site, what: str, institution: str | None = None) -> bytes:
    """The answer as the routes made it before: config_views' dicts, validated against
    the response model and dumped as FastAPI dumps a route's answer."""
    catalog = Catalog(site.catalog)
    try:
        with catalog._engine.connect() as connection:
            center = connection.execute(text(
                "SELECT id FROM institutions WHERE name = 'center'")).scalar()
        who = Principal(name="sysadmin", kind="session", roles=("sysadmin",),
                        institution="center", institution_id=int(center), center=True,
                        address="test")
        found, invalid = views.current_configs(catalog, who, institution, what)
    finally:
        catalog.close()
    make = {"sites": views.sites, "systems": views.systems,
            "repositories": views.repositories, "plans": views.plans}[what]
    adapter = TypeAdapter(LISTS[what])
    return adapter.dump_json(adapter.validate_python({what: make(found), "invalid": invalid}),
                             by_alias=True)


def _store_refused_version(site: Site, inst: str) -> None:
    """A version with a password in a DSN, as a Medark before that rule saved it."""
    old = _doc(inst, "0 1 * * *").replace(
        "host=db dbname=his", "host=db password=old")
    catalog = Catalog(site.catalog)
    try:
        with catalog._engine.begin() as connection:
            inst_id = connection.execute(text(
                "SELECT id FROM institutions WHERE name = :n"), {"n": inst}).scalar()
            version = connection.execute(text(
                "SELECT max(version) FROM config_versions WHERE institution_id = :i"),
                {"i": inst_id}).scalar() or 0
            connection.execute(text(
                "INSERT INTO config_versions (institution_id, version, document, sha256, "
                "author, comment, created_at) VALUES (:i, :v, :d, :h, 'old', '', :t)"),
                {"i": inst_id, "v": version + 1, "d": old,
                 "h": hashlib.sha256(old.encode()).hexdigest(), "t": datetime.now(UTC)})
    finally:
        catalog.close()


def test_configuration_lists_are_the_bytes_the_models_made(site: Site) -> None:
    center = site.user("sysadmin")
    for inst in ("list-a", "list-b", "list-c"):
        _save(center, inst)
    _store_refused_version(site, "list-c")
    for what in LISTS:
        for params in ({}, {"institution": "list-b"}, {"institution": "list-c"}):
            for _ in range(2):  # the parts made, then the parts kept
                got = center.call("GET", f"/api/{what}", params=params)
                assert got.status_code == 200, got.text
                assert got.headers["content-type"] == "application/json"
                assert got.content == _as_before(site, what, params.get("institution"))
        listed = center.call("GET", f"/api/{what}").json()
        assert {"list-a", "list-b"} <= {item["institution"] for item in listed[what]}
        assert "list-c" not in {item["institution"] for item in listed[what]}
        assert [i["institution"] for i in listed["invalid"]] == ["list-c"]
    _save(center, "list-c")  # corrected: listed again, nothing invalid
    plans = center.call("GET", "/api/plans").json()
    assert "list-c" in {p["institution"] for p in plans["plans"]}
    assert plans["invalid"] == []


def test_a_version_saved_through_another_server_shows_at_once(site: Site) -> None:
    center = site.user("sysadmin")
    _save(center, "list-d")
    first = center.call("GET", "/api/plans", params={"institution": "list-d"}).json()
    assert [p["schedule"] for p in first["plans"]] == ["*/15 * * * *"]
    other = start(site.env, site.catalog)
    try:  # the same session on the second process (sessions live in the catalog)
        elsewhere = User(center.name, center.password, other.client(
            cookies=dict(center.client.cookies), headers=dict(center.client.headers)))
        version = _save(elsewhere, "list-d", "0 3 * * *")
        assert version >= 2
    finally:
        other.stop()
    for what in LISTS:
        got = center.call("GET", f"/api/{what}", params={"institution": "list-d"})
        assert got.content == _as_before(site, what, "list-d")
    plans = center.call("GET", "/api/plans", params={"institution": "list-d"}).json()
    assert [p["schedule"] for p in plans["plans"]] == ["0 3 * * *"]
    refused = center.call("GET", "/api/plans", params={"institution": "no-such"})
    assert refused.status_code == 404


@pytest.mark.parametrize(("path", "model"), [
    ("/api/jobs?limit=5", JobList), ("/api/users", UserList),
    ("/api/alerts", AlertList), ("/api/agents", AgentList)])
def test_other_lists_are_their_models_serialisation(site: Site, path: str,
                                                    model: type[BaseModel]) -> None:
    """The body is the response model's canonical JSON of its content (the fields in
    the model's order, nothing more): what FastAPI made of the route's dict."""
    got = site.user("secadmin" if path == "/api/users" else "sysadmin").call("GET", path)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/json"
    assert got.headers["cache-control"] == "no-store"  # the security headers (asgi.py)
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["x-frame-options"] == "DENY"
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    assert got.content == adapter.dump_json(adapter.validate_json(got.content),
                                            by_alias=True)
    anonymous = httpx.get(site.server.url + path, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["x-frame-options"] == "DENY"
