"""Institutions' versioned configurations over real HTTP on SQLite and PostgreSQL
catalogs: saving checked as `config check` checks a file, versions and diffs, optimistic
concurrency, no passwords in a document, the read views of sites, systems, repositories
and plans by scope, the audit records, and `medark server config import|export`."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from server_site import Site, User, audit_records, code_of, login, run, site_fixture
from server_site import his_config as doc
from sqlalchemy import text

from medark.catalog.store import Catalog

site = site_fixture()

BAD = """\
[sites.main]
location = "CN-SC"
colour = "blue"

[repositories.local]
site = "nowhere"
url = "/backup"

[systems.his]
owner = "IT"

[[systems.his.sources]]
type = "postgres"
dsn = "host=db dbname=his"

[plans.his]
system = "his"
repository = "local"
schedule = "every tuesday"
rpo = "15min"
rto = "1h"
retention = { daily = 30 }
"""


def _hospitals(site: Site) -> None:
    for name in ("county-a", "county-b"):
        made = site.user("sysadmin").call("POST", "/api/institutions", json={"name": name})
        assert made.status_code in (201, 409), made.text


def _put(user: User, inst: str, document: str, base: int | None, comment: str = ""
         ) -> Any:
    return user.call("PUT", f"/api/institutions/{inst}/config",
                     json={"document": document, "comment": comment,
                           "base_version": base})


def test_saved_documents_become_versions_with_history_and_diff(site: Site) -> None:
    _hospitals(site)
    sysadmin = site.user("sysadmin")
    none_yet = sysadmin.call("GET", "/api/institutions/county-a/config")
    assert none_yet.status_code == 404 and code_of(none_yet) == "not_found"
    first = _put(sysadmin, "county-a", doc("county-a"), None, "first load")
    assert first.status_code == 200, first.text
    saved = first.json()["config"]
    assert (saved["institution"], saved["version"], saved["author"], saved["comment"]) == \
        ("county-a", 1, "sysadmin", "first load")
    second = _put(sysadmin, "county-a", doc("county-a", "0 * * * *"), 1, "hourly")
    assert second.status_code == 200 and second.json()["config"]["version"] == 2
    current = sysadmin.call("GET", "/api/institutions/county-a/config").json()["config"]
    assert current["version"] == 2 and current["document"] == doc("county-a", "0 * * * *")
    versions = sysadmin.call("GET", "/api/institutions/county-a/config/versions").json()
    assert [(v["version"], v["comment"]) for v in versions["versions"]] == \
        [(2, "hourly"), (1, "first load")]
    assert versions["versions"][1]["sha256"] == saved["sha256"]
    one = sysadmin.call("GET", "/api/institutions/county-a/config/versions/1").json()
    assert one["config"]["document"] == doc("county-a")
    missing = sysadmin.call("GET", "/api/institutions/county-a/config/versions/9")
    assert missing.status_code == 404
    diff = sysadmin.call("GET", "/api/institutions/county-a/config/diff",
                         params={"from": 1, "to": 2}).json()
    assert '-schedule = "*/15 * * * *"' in diff["diff"]
    assert '+schedule = "0 * * * *"' in diff["diff"]
    assert diff["diff"].startswith("--- county-a/v1\n+++ county-a/v2\n")
    unknown = sysadmin.call("GET", "/api/institutions/no-such/config")
    assert unknown.status_code == 404


def test_a_bad_document_is_refused_line_by_line_and_nothing_is_saved(site: Site) -> None:
    _hospitals(site)
    sysadmin = site.user("sysadmin")
    assert _put(sysadmin, "county-b", doc("county-b"), None).status_code == 200
    refused = _put(sysadmin, "county-b", BAD, 1)
    assert refused.status_code == 422, refused.text
    assert code_of(refused) == "invalid_config"
    message = refused.json()["error"]["message"]
    assert "problems" in message
    for line, key in ((3, "sites.main.colour: unknown key"),
                      (6, "repositories.local.site: unknown site 'nowhere'"),
                      (19, "plans.his.schedule")):
        assert f"line {line}: {key}" in message, message
    not_toml = _put(sysadmin, "county-b", "[sites.main]\nlocation = \n", 1)
    assert not_toml.status_code == 422 and code_of(not_toml) == "invalid_config"
    assert "line 2: invalid TOML" in not_toml.json()["error"]["message"]
    # a password in a DSN or URL would sit in the catalog in clear text
    secret = doc("county-b").replace("host=db dbname=his", "host=db password=hunter2")
    leaked = _put(sysadmin, "county-b", secret, 1)
    assert leaked.status_code == 422 and "hunter2" not in leaked.text
    assert "line 16: systems.his.sources[0].dsn: no password" in leaked.text
    in_url = doc("county-b").replace("/backup/county-b", "rest:https://u:hunter2@h/x")
    leaked = _put(sysadmin, "county-b", in_url, 1)
    assert leaked.status_code == 422 and "repositories.local.url" in leaked.text
    # a stale base version: someone saved in between
    stale = _put(sysadmin, "county-b", doc("county-b", "0 1 * * *"), None)
    assert stale.status_code == 409 and code_of(stale) == "config_changed"
    future = _put(sysadmin, "county-b", doc("county-b", "0 1 * * *"), 7)
    assert future.status_code == 409 and code_of(future) == "config_changed"
    versions = sysadmin.call("GET", "/api/institutions/county-b/config/versions").json()
    assert [v["version"] for v in versions["versions"]] == [1]
    bodies = [{"document": "", "base_version": None},
              {"document": doc("x"), "base_version": 0},
              {"document": doc("x"), "base_version": "1"},
              {"document": doc("x"), "base_version": None, "extra": 1},
              {"document": doc("x"), "comment": "two\nlines", "base_version": 1}]
    for body in bodies:
        response = sysadmin.call("PUT", "/api/institutions/county-b/config", json=body)
        assert response.status_code == 422, (body, response.text)
    records = [r for r in audit_records(site.catalog, "config.change") if r["target"] == "county-b"]
    reasons = [r["detail"].get("reason") for r in records if r["result"] == "failed"]
    assert reasons.count("invalid_config") >= 5 and reasons.count("config_changed") == 2
    assert not [r for r in records if "hunter2" in str(r)]
    ok = [r for r in records if r["result"] == "ok"]
    assert [r["detail"]["version"] for r in ok] == [1]
    assert ok[0]["actor"] == "sysadmin" and len(ok[0]["detail"]["sha256"]) == 64


def test_views_and_changes_follow_roles_and_scope(site: Site) -> None:
    _hospitals(site)
    center = site.user("sysadmin")
    for inst in ("county-a", "county-b"):
        current = center.call("GET", f"/api/institutions/{inst}/config")
        base = current.json()["config"]["version"] if current.status_code == 200 else None
        assert _put(center, inst, doc(inst), base).status_code == 200
    local_admin = site.new_user("a-admin", ["sysadmin"], "county-a")
    local_viewer = site.new_user("a-viewer", ["viewer"], "county-a")
    center_viewer = site.new_user("c-viewer", ["viewer"], "center")
    # a hospital's system administrator changes its own configuration only
    mine = local_admin.call("GET", "/api/institutions/county-a/config").json()["config"]
    changed = _put(local_admin, "county-a", doc("county-a", "0 2 * * *"), mine["version"])
    assert changed.status_code == 200, changed.text
    other = _put(local_admin, "county-b", doc("county-b"), 1)
    assert other.status_code == 403 and code_of(other) == "out_of_scope"
    hidden = local_admin.call("GET", "/api/institutions/county-b/config/versions")
    assert hidden.status_code == 403 and code_of(hidden) == "out_of_scope"
    nowhere = local_viewer.call("GET", "/api/institutions/no-such/config")
    assert nowhere.status_code == 403 and code_of(nowhere) == "out_of_scope"
    # a viewer reads but never writes
    assert local_viewer.call("GET", "/api/institutions/county-a/config").status_code == 200
    denied = _put(local_viewer, "county-a", doc("county-a"), 1)
    assert denied.status_code == 403 and code_of(denied) == "forbidden"
    for path, key in (("/api/sites", "sites"), ("/api/systems", "systems"),
                      ("/api/repositories", "repositories"), ("/api/plans", "plans")):
        own = local_viewer.call("GET", path).json()
        assert {item["institution"] for item in own[key]} == {"county-a"}, (path, own)
        assert own["invalid"] == []
        everyone = {item["institution"] for item in center_viewer.call("GET", path)
                    .json()[key]}
        assert {"county-a", "county-b"} <= everyone
        narrowed = center_viewer.call("GET", path, params={"institution": "county-b"})
        assert {i["institution"] for i in narrowed.json()[key]} == {"county-b"}
        outside = local_viewer.call("GET", path, params={"institution": "county-b"})
        assert outside.status_code == 403 and code_of(outside) == "out_of_scope"
    plans = local_viewer.call("GET", "/api/plans").json()["plans"]
    assert plans == [{"institution": "county-a", "name": "his", "system": "his",
                      "repository": "local", "schedule": "0 2 * * *", "rpo": "15min",
                      "rto": "1h", "retention": {"daily": 30, "yearly": 15},
                      "copies": [], "restore_test": None}]
    sites = local_viewer.call("GET", "/api/sites").json()["sites"]
    assert sites == [{"institution": "county-a", "name": "main", "title": "主院区",
                      "location": "CN-SC", "role": "production"}]
    systems = local_viewer.call("GET", "/api/systems").json()["systems"]
    assert systems[0]["sources"] == ["postgres host=db dbname=his"]
    assert systems[0]["plans"] == ["his"]
    repos = local_viewer.call("GET", "/api/repositories").json()["repositories"]
    assert repos[0]["url"] == "/backup/county-a"
    refusals = [r for r in audit_records(site.catalog, "config.change") if r["result"] == "denied"]
    assert {(r["actor"], r["detail"]["reason"]) for r in refusals} >= {
        ("a-admin", "out_of_scope"), ("a-viewer", "forbidden")}
    reads = [r for r in audit_records(site.catalog, "config.read") if r["result"] == "denied"]
    assert {(r["actor"], r["target"]) for r in reads} >= {
        ("a-admin", "county-b"), ("a-viewer", "sites")}


def test_import_and_export_from_the_command_line(site: Site) -> None:
    _hospitals(site)
    tmp = site.tmp
    (tmp / "medark.toml").write_text(doc("county-c"), encoding="utf-8")
    made = site.user("sysadmin").call("POST", "/api/institutions", json={"name": "county-c"})
    assert made.status_code in (201, 409)
    done = run(site.env, "server", "config", "import", "--catalog", site.catalog,
               "--institution", "county-c", str(tmp / "medark.toml"),
               "--comment", "the hospital's file")
    assert done.returncode == 0, done.stderr
    assert "county-c configuration version 1" in done.stdout
    (tmp / "bad.toml").write_text(BAD, encoding="utf-8")
    refused = run(site.env, "server", "config", "import", "--catalog", site.catalog,
                  "--institution", "county-c", str(tmp / "bad.toml"))
    assert refused.returncode == 15, refused.stderr
    assert f"{tmp / 'bad.toml'}:3: sites.main.colour: unknown key" in refused.stderr
    assert "Traceback" not in refused.stderr
    current = site.user("sysadmin").call("GET", "/api/institutions/county-c/config")
    config = current.json()["config"]
    assert (config["version"], config["author"], config["comment"]) == \
        (1, "server", "the hospital's file")
    out = tmp / "exported.toml"
    exported = run(site.env, "server", "config", "export", "--catalog", site.catalog,
                   "--institution", "county-c", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.read_text(encoding="utf-8") == doc("county-c")
    to_stdout = run(site.env, "server", "config", "export", "--catalog", site.catalog,
                    "--institution", "county-c", "--version", "1")
    assert to_stdout.returncode == 0 and to_stdout.stdout == doc("county-c")
    missing = run(site.env, "server", "config", "export", "--catalog", site.catalog,
                  "--institution", "county-c", "--version", "5")
    assert missing.returncode != 0 and "no version 5" in missing.stderr
    records = [r for r in audit_records(site.catalog, "config.change") if r["target"] == "county-c"]
    assert [(r["actor"], r["source"], r["result"]) for r in records] == [
        ("server", "cli", "ok"), ("server", "cli", "failed")]


def test_concurrent_saves_from_one_version_make_one_version(site: Site) -> None:
    """Whichever order the saves reach the catalog in, one wins and the others are told
    the configuration changed (the version check, or the unique version on a race)."""
    _hospitals(site)
    sysadmin = site.user("sysadmin")
    made = sysadmin.call("POST", "/api/institutions", json={"name": "county-race"})
    assert made.status_code in (201, 409)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: _put(sysadmin, "county-race", doc(
            "county-race", f"{n} 1 * * *"), None, f"writer {n}"), range(4)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409, 409, 409], [a.text for a in answers]
    assert {code_of(a) for a in answers if a.status_code == 409} == {"config_changed"}
    versions = sysadmin.call("GET", "/api/institutions/county-race/config/versions").json()
    assert [v["version"] for v in versions["versions"]] == [1]


def test_a_stored_version_newer_rules_refuse_stays_readable(site: Site) -> None:
    """A version saved before a check existed (written here directly) is still shown as
    saved and can be replaced; the views leave it out and say so."""
    _hospitals(site)
    sysadmin = site.user("sysadmin")
    made = sysadmin.call("POST", "/api/institutions", json={"name": "county-old"})
    assert made.status_code in (201, 409)
    old = doc("county-old").replace("host=db dbname=his", "host=db password=old")
    catalog = Catalog(site.catalog)
    try:
        with catalog._engine.begin() as connection:
            inst = connection.execute(text(
                "SELECT id FROM institutions WHERE name = 'county-old'")).scalar()
            connection.execute(text(
                "INSERT INTO config_versions (institution_id, version, document, sha256, "
                "author, comment, created_at) VALUES (:i, 1, :d, :h, 'old', '', :t)"),
                {"i": inst, "d": old, "h": hashlib.sha256(old.encode()).hexdigest(),
                 "t": datetime.now(UTC)})
    finally:
        catalog.close()
    shown = sysadmin.call("GET", "/api/institutions/county-old/config")
    assert shown.status_code == 200 and shown.json()["config"]["document"] == old
    plans = sysadmin.call("GET", "/api/plans", params={"institution": "county-old"}).json()
    assert plans["plans"] == []
    assert [(i["institution"], i["version"]) for i in plans["invalid"]] == [
        ("county-old", 1)]
    assert "no password" in plans["invalid"][0]["message"]
    assert "password=old" not in plans["invalid"][0]["message"]
    fixed = _put(sysadmin, "county-old", doc("county-old"), 1, "password to ~/.pgpass")
    assert fixed.status_code == 200 and fixed.json()["config"]["version"] == 2
    plans = sysadmin.call("GET", "/api/plans", params={"institution": "county-old"}).json()
    assert plans["invalid"] == [] and [p["name"] for p in plans["plans"]] == ["his"]


def test_the_signed_in_user_reads_times_in_the_institutions_zone(site: Site) -> None:
    sysadmin = site.user("sysadmin")
    made = sysadmin.call("POST", "/api/institutions", json={"name": "county-z"})
    assert made.status_code == 201, made.text
    person = site.new_user("zone-viewer", ["viewer"], "county-z")
    # before the institution has a configuration: the configuration's default zone
    assert person.call("GET", "/api/me").json()["user"]["timezone"] == "Asia/Shanghai"
    saved = _put(sysadmin, "county-z", 'timezone = "Asia/Urumqi"\n' + doc("county-z"), None)
    assert saved.status_code in (200, 201), saved.text
    assert person.call("GET", "/api/me").json()["user"]["timezone"] == "Asia/Urumqi"
    signed_in = login(site.server, "zone-viewer", person.password)[1]
    assert signed_in.json()["user"]["timezone"] == "Asia/Urumqi"
    # the center's accounts read the center's configuration's zone (none yet: default)
    assert sysadmin.call("GET", "/api/me").json()["user"]["timezone"] == "Asia/Shanghai"
