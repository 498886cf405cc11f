"""`medark server` hardening over real HTTP on a SQLite catalog: the API docs served
without a CDN, schemathesis against the OpenAPI document, TOTP secrets encrypted at rest
under the server key, and X-Forwarded-For believed only from --trusted-proxy addresses."""

from __future__ import annotations

import re
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from server_site import (
    Server,
    User,
    base_env,
    code_of,
    first_login,
    init,
    login,
    next_code,
    run,
    start,
)

from medark.catalog.audit_trail import read_records
from medark.catalog.store import Catalog


@dataclass
class Hardened:
    env: dict[str, str]
    catalog: str
    db: Path
    server: Server
    secadmin: User
    tmp: Path
    passwords: dict[str, str]


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hardened]:
    tmp = tmp_path_factory.mktemp("hardened")
    env = base_env(tmp)
    db = tmp / "catalog.db"
    catalog = f"sqlite:///{db}"
    passwords = init(env, catalog)
    server = start(env, catalog, "--login-rate", "100000")
    try:
        admin = first_login(server, "secadmin", passwords["secadmin"])
        yield Hardened(env, catalog, db, server, admin, tmp, passwords)
    finally:
        server.stop()


def _sources(catalog: str, action: str, target: str) -> list[str]:
    opened = Catalog(catalog)
    try:
        return [str(r.public()["source"]) for r in read_records(opened)
                if r.public()["action"] == action and r.public()["target"] == target]
    finally:
        opened.close()


def test_the_api_docs_need_no_internet(hardened: Hardened) -> None:
    client = hardened.server.client()
    page = client.get("/api/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page.text, re.I), page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assets += re.findall(r"""url:\s*["']([^"']+)["']""", page.text)
    assert {"/api/docs/static/swagger-ui-bundle.js", "/api/docs/static/swagger-ui.css",
            "/api/openapi.json"} <= set(assets), assets
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and got.content, asset
    assert "validatorUrl" in page.text  # no badge fetched from validator.swagger.io
    assert "javascript" in client.get(
        "/api/docs/static/swagger-ui-bundle.js").headers["content-type"]
    missing = client.get("/api/docs/static/../../app.py")
    assert missing.status_code == 404


def _schemathesis(hardened: Hardened, user: User, *selection: str) -> str:
    """schemathesis with every check (its default) against the live server, signed in
    as `user` (session cookie and CSRF header); a bounded number of examples. A new
    password the schema allows may still fail the policy's character classes, which a
    JSON schema cannot say. Its output; it must pass."""
    cookie = user.client.cookies.get("medark_session")
    assert cookie
    config = hardened.tmp / "schemathesis.toml"
    # a new password the schema allows may break the policy; a document the schema
    # allows is rarely a valid medark.toml, nor its base version the current one
    config.write_text("".join(f'[[operations]]\ninclude-path = "{path}"\n'
                              "checks.positive_data_acceptance.enabled = false\n"
                              for path in ("/api/me/password",
                                           "/api/institutions/{name}/config"))
                      # the live event stream stays open for max_seconds (default 600)
                      + '[[operations]]\ninclude-path = "/api/events"\n'
                        'parameters = { "query.max_seconds" = 1 }\n')
    schemathesis = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [str(schemathesis), "--config-file", str(config), "run",
         f"{hardened.server.url}/api/openapi.json", *selection,
         "--max-examples", "15", "--phases", "examples,coverage,fuzzing",
         "--workers", "1", "--seed", "1", "--suppress-health-check", "all", "--no-color",
         "-H", f"Cookie: medark_session={cookie}",
         "-H", f"X-CSRF-Token: {user.client.headers['X-CSRF-Token']}"],
        env=hardened.env, capture_output=True, text=True,
        timeout=600, check=False, cwd=hardened.tmp)  # a loaded machine is slow
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    # the session survived the run: it really was signed in throughout
    me = user.call("GET", "/api/me")
    assert me.status_code == 200, me.text
    return done.stdout


def test_schemathesis_finds_no_500_and_no_schema_violation(hardened: Hardened) -> None:
    """Every operation as the security administrator (but /api/logout, which would end
    the session the rest of the run uses); adding institutions as the system
    administrator, first (the security administrator's run may change its account)."""
    sysadmin = first_login(hardened.server, "sysadmin", hardened.passwords["sysadmin"])
    # /api/institutions (2 operations) and the configuration views (9) in one run
    out = _schemathesis(hardened, sysadmin, "--include-path-regex",
                        "^/api/(institutions$|institutions/[^/]+/config|sites$|systems$"
                        "|repositories$|plans$)")
    assert re.search(r"Tested: +11\b", out), out
    # nor the agents' endpoints but enrolment: they take only an agent's credential, and
    # a session reaches them as 403 agent_only (test_agents_cli.py), where schemathesis
    # wants the 401 of a missing Authorization header their declared security implies
    out = _schemathesis(hardened, hardened.secadmin, "--exclude-path-regex",
                        "^/api/(logout$|agent/(?!enroll$))")
    spec = hardened.server.client().get("/api/openapi.json").json()
    operations = sum(len(methods) for path, methods in spec["paths"].items()
                     if not path.startswith("/api/agent/") or path == "/api/agent/enroll")
    assert re.search(rf"Tested: +{operations - 1}\b", out), out


def test_a_security_administrator_cannot_reset_itself(hardened: Hardened) -> None:
    """A stolen session cookie must not buy a new password or second factor; a change
    to one's own account keeps the session making it. Also found by schemathesis: a 0
    taken for false, and a 405's Allow header naming one method of two."""
    admin = hardened.secadmin
    for body in ({"reset_password": True}, {"reset_totp": True}):
        refused = admin.call("PATCH", "/api/users/secadmin", json=body)
        assert refused.status_code == 409 and code_of(refused) == "self_reset", body
    assert "one_time_password" not in refused.text
    kept = admin.call("PATCH", "/api/users/secadmin", json={"roles": ["secadmin", "viewer"]})
    assert kept.status_code == 200 and kept.json()["user"]["roles"] == ["secadmin", "viewer"]
    assert set(kept.json()) == {"user"}
    back = admin.call("PATCH", "/api/users/secadmin", json={"roles": ["secadmin"]})
    assert back.status_code == 200 and admin.call("GET", "/api/me").status_code == 200
    coerced = admin.call("PATCH", "/api/users/secadmin", json={"reset_totp": 0})
    assert coerced.status_code == 422 and code_of(coerced) == "invalid_request"
    # RFC 9110: a 405 lists every method of the path (Starlette's named only the first)
    wrong = admin.call("PUT", "/api/users")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, POST"


def _row(db: Path, name: str) -> tuple[int, str | None]:
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT id, totp_secret FROM users WHERE name = ?",
                             (name,)).fetchone()
    return int(found[0]), found[1]


def test_totp_secrets_are_encrypted_at_rest(hardened: Hardened) -> None:
    admin = hardened.secadmin
    assert admin.totp is not None
    _id, stored = _row(hardened.db, "secadmin")
    assert stored and len(stored) == 64
    assert admin.totp.secret not in stored and admin.totp.secret.lower() not in stored.lower()
    key = hardened.tmp / "audit.server-key"  # beside MEDARK_AUDIT_KEY_FILE audit.key
    assert key.stat().st_mode & 0o777 == 0o600
    assert not Path(str(hardened.db) + ".server-key").exists()
    _c, ok = login(hardened.server, "secadmin", admin.password, next_code(admin.totp))
    assert ok.status_code == 200, ok.text

    # a plain secret from before encryption is encrypted when a server starts
    made = admin.call("POST", "/api/users", json={"name": "legacy-totp",
                                                  "institution": "center",
                                                  "roles": ["operator"]})
    assert made.status_code == 201
    legacy = first_login(hardened.server, "legacy-totp", made.json()["one_time_password"])
    plain = pyotp.random_base32()
    user_id, _ = _row(hardened.db, "legacy-totp")
    with sqlite3.connect(hardened.db) as conn:
        conn.execute("UPDATE users SET totp_secret = ?, totp_confirmed = 1 WHERE id = ?",
                     (plain, user_id))
    second = start(hardened.env, hardened.catalog)
    try:
        _id, sealed = _row(hardened.db, "legacy-totp")
        assert sealed and len(sealed) == 64 and plain not in sealed
        _c, needs = login(second, "legacy-totp", legacy.password)
        assert needs.status_code == 401 and code_of(needs) == "totp_required"
        _c, ok = login(second, "legacy-totp", legacy.password, pyotp.TOTP(plain).now())
        assert ok.status_code == 200, ok.text
        # a secret copied onto another user's row does not sign that user in
        with sqlite3.connect(hardened.db) as conn:
            conn.execute("UPDATE users SET totp_secret = ? WHERE name = 'legacy-totp'",
                         (stored,))
        _c, moved = login(second, "legacy-totp", legacy.password, next_code(admin.totp))
        assert moved.status_code == 503 and "does not decrypt" in moved.text
        assert admin.totp.secret not in moved.text
    finally:
        log = second.stop()
    assert plain not in log and admin.totp.secret not in log

    # a wrong, missing or unprotected key: one line, exit 16, nothing served
    wrong = hardened.tmp / "wrong.key"
    wrong.write_text(secrets.token_hex(32) + "\n")
    wrong.chmod(0o600)
    loose = hardened.tmp / "loose.key"
    loose.write_text(secrets.token_hex(32) + "\n")
    loose.chmod(0o644)
    for path, message in ((wrong, "does not decrypt the stored TOTP secrets"),
                          (hardened.tmp / "nowhere.key", "is missing but"),
                          (loose, "readable by others")):
        env = {**hardened.env, "MEDARK_CATALOG": hardened.catalog,
               "MEDARK_SERVER_KEY_FILE": str(path)}
        refused = run(env, "server", "--listen", "127.0.0.1:0")
        assert refused.returncode == 16, (path, refused.stdout, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "server key" in lines[0], lines
        assert not (hardened.tmp / "nowhere.key").exists()


def test_forwarded_for_is_believed_only_from_trusted_proxies(hardened: Hardened) -> None:
    env = hardened.env
    untrusted = start(env, hardened.catalog, "--login-rate", "2")
    trusted = start(env, hardened.catalog, "--login-rate", "2",
                    "--trusted-proxy", "10.9.8.7", "--trusted-proxy", "127.0.0.1")
    try:
        def attempt(server: Server, user: str, forwarded: str) -> int:
            client = server.client(headers={"X-Forwarded-For": forwarded})
            return client.post("/api/login", json={"username": user,
                                                   "password": "Wrong-password-1"}
                               ).status_code

        # forged from an untrusted address: ignored, every attempt counts for 127.0.0.1
        assert attempt(untrusted, "xff-untrusted", "203.0.113.1") == 401
        assert attempt(untrusted, "xff-untrusted", "203.0.113.2") == 401
        assert attempt(untrusted, "xff-untrusted", "203.0.113.3") == 429
        assert set(_sources(hardened.catalog, "login", "xff-untrusted")) == {"127.0.0.1"}
        # from a trusted proxy: the client it names is the source and is rate-limited
        assert attempt(trusted, "xff-trusted", "203.0.113.1") == 401
        assert attempt(trusted, "xff-trusted", "203.0.113.1") == 401
        assert attempt(trusted, "xff-trusted", "203.0.113.1") == 429
        assert attempt(trusted, "xff-trusted", "198.51.100.4") == 401
        assert _sources(hardened.catalog, "login", "xff-trusted") == [
            "203.0.113.1", "203.0.113.1", "198.51.100.4"]
    finally:
        untrusted.stop()
        trusted.stop()
    bad = run({**env, "MEDARK_CATALOG": hardened.catalog}, "server", "--trusted-proxy",
              "proxy.example")
    assert bad.returncode == 2 and "not an IP address or network" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 3 and "Traceback" not in bad.stderr
