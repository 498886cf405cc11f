"""`medark server` roles over real HTTP on SQLite and PostgreSQL catalogs: separation of
duties, a role x endpoint matrix (and nothing without a login), user changes with their
audit records, API tokens, and institutions as tenants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server_site import FILES_CONFIG, Site, User, code_of, first_login, login, site_fixture
from sqlalchemy import text

from medark.catalog.audit_trail import read_records
from medark.catalog.store import Catalog

site = site_fixture()

ROLES = ("sysadmin", "secadmin", "auditadmin", "operator", "viewer")
EVERYONE = frozenset(ROLES)
Body = Callable[[str], dict[str, Any] | None]
READERS = frozenset({"sysadmin", "operator", "viewer"})
"""Who reads an institution's configuration and its sites, systems, repositories, plans."""
RUNNERS = frozenset({"sysadmin", "operator"})
"""Who runs a job now and cancels one."""


def _audit(site: Site) -> list[dict[str, Any]]:
    catalog = Catalog(site.catalog)
    try:
        return [record.public() for record in read_records(catalog)]
    finally:
        catalog.close()


def _create(site: Site, name: str, roles: list[str], institution: str = "center",
            by: User | None = None) -> str:
    made = (by or site.user("secadmin")).call("POST", "/api/users", json={
        "name": name, "institution": institution, "roles": roles})
    if made.status_code == 202:  # four eyes: a second security administrator exists
        return site._approved(made.json()["approval"]["id"])
    assert made.status_code == 201, made.text
    return str(made.json()["one_time_password"])


def _ready(site: Site, name: str, roles: list[str], institution: str = "center",
           by: User | None = None) -> User:
    if name not in site.ready:
        site.ready[name] = first_login(site.server, name,
                                       _create(site, name, roles, institution, by))
    return site.ready[name]


def test_no_account_holds_two_administrator_roles(site: Site) -> None:
    secadmin = site.user("secadmin")
    for pair in (["sysadmin", "secadmin"], ["secadmin", "auditadmin"],
                 ["sysadmin", "auditadmin"], ["sysadmin", "secadmin", "auditadmin"]):
        refused = secadmin.call("POST", "/api/users", json={
            "name": "sod-" + "-".join(pair), "institution": "center", "roles": pair})
        assert refused.status_code == 409, refused.text
        assert code_of(refused) == "separation_of_duties"
        assert "separation of duties" in refused.json()["error"]["message"]
    # one administrator role with the other roles is fine
    _create(site, "sod-ok", ["sysadmin", "operator"])
    refused = secadmin.call("PATCH", "/api/users/sod-ok",
                            json={"roles": ["sysadmin", "auditadmin"]})
    assert refused.status_code == 409 and code_of(refused) == "separation_of_duties"
    kept = secadmin.call("GET", "/api/users/sod-ok").json()["user"]
    assert kept["roles"] == ["operator", "sysadmin"]
    # the refusals are audited
    denied = [r for r in _audit(site) if r["result"] == "denied"
              and str(r["target"]).startswith("sod-")]
    assert len(denied) == 5
    assert {r["detail"]["reason"] for r in denied} == {"separation_of_duties"}
    assert {r["actor"] for r in denied} == {"secadmin"}


ENDPOINTS: list[tuple[str, str, Body, frozenset[str], int]] = [
    ("GET", "/api/me", lambda r: None, EVERYONE, 200),
    ("GET", "/api/institutions", lambda r: None, EVERYONE, 200),
    ("POST", "/api/institutions", lambda r: {"name": f"hosp-{r}"}, frozenset({"sysadmin"}),
     201),
    ("GET", "/api/users", lambda r: None, frozenset({"secadmin"}), 200),
    ("POST", "/api/users", lambda r: {"name": f"new-{r}", "institution": "center",
                                      "roles": ["viewer"]}, frozenset({"secadmin"}), 201),
    ("GET", "/api/users/target", lambda r: None, frozenset({"secadmin"}), 200),
    ("PATCH", "/api/users/target", lambda r: {"roles": ["operator"]},
     frozenset({"secadmin"}), 200),
    ("DELETE", "/api/users/target", lambda r: None, frozenset({"secadmin"}), 200),
    ("GET", "/api/tokens", lambda r: None, frozenset({"secadmin"}), 200),
    ("POST", "/api/tokens", lambda r: {"name": f"tok-{r}", "role": "viewer",
                                       "institution": "center"}, frozenset({"secadmin"}),
     201),
    ("DELETE", "/api/tokens/target", lambda r: None, frozenset({"secadmin"}), 200),
    # four-eyes approvals: the security administrators' (test_server_approvals_cli.py)
    ("GET", "/api/approvals", lambda r: None, frozenset({"secadmin"}), 200),
    ("GET", "/api/approvals/2147483647", lambda r: None, frozenset({"secadmin"}), 404),
    *(("POST", f"/api/approvals/2147483647/{verb}", lambda r: None,
       frozenset({"secadmin"}), 404) for verb in ("approve", "reject")),
    # the audit trail: the audit administrator's alone
    *(("GET", f"/api/audit{tail}", lambda r: None, frozenset({"auditadmin"}), 200)
      for tail in ("", "/export", "/verify")),
    # agents: enrolment tokens and revoking are the system administrator's
    ("POST", "/api/agents/enrolment-tokens", lambda r: {"institution": "center"},
     frozenset({"sysadmin"}), 201),
    ("GET", "/api/agents", lambda r: None, frozenset({"sysadmin", "operator", "viewer"}),
     200),
    ("DELETE", "/api/agents/center/target", lambda r: None, frozenset({"sysadmin"}), 200),
    # grants: every role sees its institution's (test_server_grants_cli.py has the rest)
    ("GET", "/api/grants", lambda r: None, EVERYONE, 200),
    # configurations: the first save is the system administrator's; then every reader's
    ("PUT", "/api/institutions/center/config", lambda r: {
        "document": FILES_CONFIG, "comment": r, "base_version": None}, frozenset({"sysadmin"}),
     200),
    ("GET", "/api/institutions/center/config", lambda r: None, READERS, 200),
    ("GET", "/api/institutions/center/config/versions", lambda r: None, READERS, 200),
    ("GET", "/api/institutions/center/config/versions/1", lambda r: None, READERS, 200),
    ("GET", "/api/institutions/center/config/diff?from=1&to=1", lambda r: None, READERS,
     200),
    *(("GET", f"/api/{view}", lambda r: None, READERS, 200)
      for view in ("sites", "systems", "repositories", "plans")),
    # jobs: every role reads its institution's; a plan of the configuration saved above
    # is run now (the catalog's first job, 1) and cancelled by operators and sysadmins
    ("GET", "/api/jobs", lambda r: None, EVERYONE, 200),
    ("POST", "/api/jobs", lambda r: {"institution": "center", "plan": "his",
                                     "kind": "backup"}, RUNNERS, 202),
    ("GET", "/api/jobs/1", lambda r: None, EVERYONE, 200),
    ("POST", "/api/jobs/999999/cancel", lambda r: None, RUNNERS, 404),
    # oversight: alerts and compliance for every role; reports carry the audit trail's
    # access section: the administrators' (made by sysadmin and auditadmin; a hospital
    # without a configuration answers those 409, test_server_oversight_cli.py the rest)
    ("GET", "/api/alerts", lambda r: None, EVERYONE, 200),
    ("GET", "/api/institutions/center/compliance", lambda r: None, EVERYONE, 200),
    ("POST", "/api/institutions/hosp-sysadmin/reports", lambda r: {"kind": "monthly"},
     frozenset({"sysadmin", "auditadmin"}), 409),
    ("GET", "/api/reports", lambda r: None, frozenset({"sysadmin", "secadmin",
                                                      "auditadmin"}), 200),
    ("GET", "/api/reports/1", lambda r: None, frozenset({"sysadmin", "secadmin",
                                                        "auditadmin"}), 404),
    # restores and DR through the agent (test_server_restores_cli.py has the rest): a
    # restore of the institution's own system is the operators' (202: queued for an
    # agent); DR status every role's; a DR action the runners' (a switchover without
    # its confirmation: 422)
    ("POST", "/api/institutions/center/systems/his/restores", lambda r: {
        "snapshot": "latest", "target": "scratch"}, frozenset({"operator"}), 202),
    # the restore wizard's read (test_server_recovery_cli.py): the snapshot readers';
    # the center's repository has no password file in the server's directory: 503
    ("GET", "/api/institutions/center/systems/his/recovery", lambda r: None,
     frozenset({"operator", "viewer"}), 503),
    ("GET", "/api/institutions/center/dr", lambda r: None, EVERYONE, 200),
    ("POST", "/api/institutions/center/systems/his/dr", lambda r: {
        "action": "switchover"}, RUNNERS, 422),
    # the console's overview (test_server_dashboard_cli.py): the dashboard and its live
    # events for every role, as jobs and alerts; the topology for the configuration's
    # readers (the event stream ends after max_seconds)
    ("GET", "/api/dashboard", lambda r: None, EVERYONE, 200),
    ("GET", "/api/topology", lambda r: None, READERS, 200),
    ("GET", "/api/events?max_seconds=1", lambda r: None, EVERYONE, 200),
]
"""(method, path, body for a role, roles allowed, status when allowed)."""


def test_every_role_against_every_endpoint(site: Site) -> None:
    # the second security administrator last: once it exists, four eyes apply to the
    # other administrators' creation; it is disabled at the end, for the tests after
    users = {role: _ready(site, f"matrix-{role}", [role])
             for role in sorted(ROLES, key=lambda role: role == "secadmin")}
    secadmin = site.user("secadmin")
    # one target each: only the security administrator's calls change it
    _create(site, "target", ["viewer"])
    made = secadmin.call("POST", "/api/tokens", json={
        "name": "target", "role": "viewer", "institution": "center"})
    assert made.status_code == 201
    bearer = secadmin.call("POST", "/api/tokens", json={
        "name": "matrix-viewer-token", "role": "viewer", "institution": "center"}
        ).json()["secret"]
    token_client = site.server.client(headers={"Authorization": f"Bearer {bearer}"})
    anonymous = site.server.client()
    enrolment = site.user("sysadmin").call("POST", "/api/agents/enrolment-tokens", json={
        "institution": "center"}).json()["secret"]
    enrolled = anonymous.post("/api/agent/enroll", json={
        "token": enrolment, "name": "target", "host": "h", "version": "1"})
    assert enrolled.status_code == 201, enrolled.text
    for method, path, body, allowed, ok in ENDPOINTS:
        for role in ROLES:
            response = users[role].call(method, path.format(role=role), json=body(role))
            if role in allowed:
                assert response.status_code == ok, (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.text)
                assert code_of(response) == "forbidden"
        # an API token acts with its role (viewer) and needs no CSRF header
        response = token_client.request(method, path.format(role="token"),
                                        json=body("token"))
        expected = ok if "viewer" in allowed else 403
        assert response.status_code == expected, (method, path, response.text)
        response = anonymous.request(method, path.format(role="anonymous"),
                                     json=body("anonymous"))
        assert response.status_code == 401 and code_of(response) == "not_authenticated"
    # a token cannot act as a person
    for path in ("/api/me/password", "/api/me/totp"):
        refused = token_client.post(path, json={"current_password": "a",
                                                "new_password": "b"} if "pass" in path
                                    else None)
        assert refused.status_code == 403 and code_of(refused) == "session_required"
    for role in ROLES:
        assert users[role].call("POST", "/api/logout").status_code == 200
        gone = users[role].call("GET", "/api/me")
        assert gone.status_code == 401 and code_of(gone) == "not_authenticated"
        del site.ready[f"matrix-{role}"]
    disabled = secadmin.call("PATCH", "/api/users/matrix-secadmin", json={"disabled": True})
    assert disabled.status_code == 200, disabled.text


def test_nothing_is_reachable_without_a_login(site: Site) -> None:
    anonymous = site.server.client()
    spec = anonymous.get("/api/openapi.json").json()
    public = {"/api/health", "/api/login", "/api/agent/enroll"}
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            response = anonymous.request(method.upper(), path.replace("{name}", "secadmin"),
                                         json={})
            if path in public:
                assert response.status_code in (200, 422), (path, response.text)
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert code_of(response) == "not_authenticated"
            checked += 1
    assert checked >= 14
    assert anonymous.get("/api/health").json() == {"status": "ok"}
    assert anonymous.get("/api/docs").status_code == 200
    forged = site.server.client(cookies={"medark_session": "forged"},
                                headers={"Authorization": "Bearer mdk_forged"})
    response = forged.get("/api/users")
    assert response.status_code == 401 and code_of(response) == "invalid_token"


def test_user_changes_end_sessions_and_are_audited(site: Site) -> None:
    secadmin = site.user("secadmin")
    changed = _ready(site, "changed-user", ["viewer"])
    assert changed.call("GET", "/api/me").status_code == 200
    response = secadmin.call("PATCH", "/api/users/changed-user", json={"roles": ["operator"]})
    assert response.status_code == 200 and response.json()["user"]["roles"] == ["operator"]
    ended = changed.call("GET", "/api/me")
    assert ended.status_code == 401
    reset = secadmin.call("PATCH", "/api/users/changed-user", json={"reset_password": True})
    one_time = reset.json()["one_time_password"]
    client, response = login(site.server, "changed-user", one_time)
    assert response.json()["user"]["password_change_required"] is True
    assert response.json()["user"]["roles"] == ["operator"]
    disabled = secadmin.call("DELETE", "/api/users/changed-user")
    assert disabled.status_code == 200 and disabled.json()["user"]["disabled"] is True
    assert client.get("/api/me").status_code == 401
    _c, refused = login(site.server, "changed-user", one_time)
    assert refused.status_code == 401 and code_of(refused) == "login_failed"
    assert secadmin.call("GET", "/api/users/changed-user").status_code == 200  # kept
    yourself = secadmin.call("DELETE", "/api/users/secadmin")
    assert yourself.status_code == 409 and code_of(yourself) == "self_lockout"

    records = [r for r in _audit(site) if r["target"] == "changed-user"
               and r["actor"] == "secadmin"]
    assert [(r["action"], r["detail"]) for r in records] == [
        ("user.create", {"roles": ["viewer"]}),
        ("user.update", {"roles": {"from": ["viewer"], "to": ["operator"]}}),
        ("user.update", {"password_reset": True}),
        ("user.disable", {"disabled": True}),
    ]
    assert one_time not in str(_audit(site))


def test_api_tokens_are_scoped_shown_once_and_stored_hashed(site: Site) -> None:
    secadmin = site.user("secadmin")
    made = secadmin.call("POST", "/api/tokens", json={
        "name": "backup-bot", "role": "operator", "institution": "center", "days": 1})
    assert made.status_code == 201
    secret = made.json()["secret"]
    assert secret.startswith("mdk_") and made.json()["token"]["role"] == "operator"
    listed = secadmin.call("GET", "/api/tokens").text
    assert "backup-bot" in listed and secret not in listed
    bot = site.server.client(headers={"Authorization": f"Bearer {secret}"})
    me = bot.get("/api/me").json()["user"]
    assert me == {"name": "backup-bot", "kind": "token", "institution": "center",
                  "regional_center": True, "roles": ["operator"],
                  "password_change_required": False, "totp_enrolment_required": False,
                  "timezone": "Asia/Shanghai"}
    admin_token = secadmin.call("POST", "/api/tokens", json={
        "name": "root-bot", "role": "sysadmin", "institution": "center"})
    assert admin_token.status_code == 422 and code_of(admin_token) == "invalid_request"
    catalog = Catalog(site.catalog)
    try:
        with catalog._engine.connect() as connection:
            stored = connection.execute(text(
                "SELECT token_hash FROM api_tokens WHERE name = 'backup-bot'")).scalar()
            sessions = connection.execute(text("SELECT id FROM user_sessions")).scalars()
            cookies = {c for u in site.ready.values()
                       for c in [u.client.cookies.get("medark_session")] if c}
            assert cookies and not cookies & set(sessions)
    finally:
        catalog.close()
    assert stored and secret not in stored and len(stored) == 64
    assert secadmin.call("DELETE", "/api/tokens/backup-bot").status_code == 200
    revoked = bot.get("/api/me")
    assert revoked.status_code == 401 and code_of(revoked) == "invalid_token"


def test_a_hospital_sees_only_its_own_accounts(site: Site) -> None:
    sysadmin = site.user("sysadmin")
    made = sysadmin.call("POST", "/api/institutions", json={"name": "county-1",
                                                            "title": "县人民医院"})
    assert made.status_code == 201 and made.json()["institution"]["kind"] == "hospital"
    again = sysadmin.call("POST", "/api/institutions", json={"name": "county-1"})
    assert again.status_code == 409 and code_of(again) == "conflict"
    local = _ready(site, "county-1-sec", ["secadmin"], "county-1")
    _create(site, "county-1-nurse", ["viewer"], "county-1", by=local)
    names = {u["name"] for u in local.call("GET", "/api/users").json()["users"]}
    assert names == {"county-1-sec", "county-1-nurse"}
    institutions = local.call("GET", "/api/institutions").json()["institutions"]
    assert [i["name"] for i in institutions] == ["county-1"]
    outside = local.call("GET", "/api/users/secadmin")
    assert outside.status_code == 403 and code_of(outside) == "forbidden"
    refused = local.call("POST", "/api/users", json={"name": "intruder",
                                                     "institution": "center",
                                                     "roles": ["sysadmin"]})
    assert refused.status_code == 403
    center_view = {u["name"] for u in site.user("secadmin").call("GET", "/api/users")
                   .json()["users"]}
    assert {"county-1-sec", "county-1-nurse", "secadmin"} <= center_view
