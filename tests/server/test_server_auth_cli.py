"""`medark server` sign-in over real HTTP on SQLite and PostgreSQL catalogs: init and the
forced password change, TOTP for administrators, lockout and its window, the idle
timeout, CSRF, login rate limiting, TLS cookies, bad input, and the audit records."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from server_site import (
    LOCKOUT_AFTER,
    LOCKOUT_SECONDS,
    Site,
    User,
    audit_records,
    code_of,
    first_login,
    login,
    next_code,
    run,
    site_fixture,
    start,
)
from sqlalchemy import select

from medark.catalog.store import Catalog
from medark.server.db import transaction
from medark.server.tables import User as UserRow

site = site_fixture()


def _new_user(site: Site, name: str, roles: list[str]) -> str:
    """Created by the security administrator; its one-time password."""
    made = site.user("secadmin").call("POST", "/api/users", json={
        "name": name, "institution": "center", "roles": roles})
    assert made.status_code == 201, made.text
    return str(made.json()["one_time_password"])


@dataclass
class IdleSession:
    user: User
    used_at: float
    """time.monotonic() of its last request."""


IDLE_TIMEOUT = 5
"""Long enough that a loaded machine's slow sign-in steps (argon2 on 2 busy cores:
seconds) do not outlast it between two requests."""


@pytest.fixture(scope="module", autouse=True)
def idle_session(site: Site) -> Iterator[IdleSession]:
    """A viewer signed in on a server of its own with a short idle timeout, then left
    idle: set up before the module's first test (autouse), so that the wait for its
    timeout passes while the other tests run; test_idle_sessions_end, the last, ends it."""
    one_time = _new_user(site, "idle-viewer", ["viewer"])
    short = start(site.env, site.catalog, "--idle-timeout", str(IDLE_TIMEOUT))
    try:
        user = first_login(short, "idle-viewer", one_time)
        assert user.call("GET", "/api/me").status_code == 200
        time.sleep(IDLE_TIMEOUT / 2)
        assert user.call("GET", "/api/me").status_code == 200  # use keeps it alive
        yield IdleSession(user, time.monotonic())
    finally:
        short.stop()


def test_init_once_then_the_first_login_forces_a_password_change(site: Site) -> None:
    again = run(site.env, "server", "init", "--catalog", site.catalog)
    assert again.returncode == 1 and "already initialised" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    fresh = f"sqlite:///{site.tmp / 'fresh.db'}"
    refused = run({**site.env, "MEDARK_CATALOG": fresh}, "server", "--listen", "127.0.0.1:0")
    assert refused.returncode == 2 and "not initialised" in refused.stderr
    made = run(site.env, "--json", "server", "init", "--catalog", fresh, "--center", "c2")
    doc = json.loads(made.stdout)
    assert doc["message_type"] == "server_initialised" and doc["center"] == "c2"
    assert [a["role"] for a in doc["administrators"]] == ["sysadmin", "secadmin",
                                                          "auditadmin"]

    one_time = site.passwords["auditadmin"]
    client, response = login(site.server, "auditadmin", one_time)
    assert response.status_code == 200
    me = response.json()["user"]
    assert me["roles"] == ["auditadmin"] and me["password_change_required"] is True
    for method, path in (("GET", "/api/me"), ("GET", "/api/institutions"),
                         ("POST", "/api/me/totp"), ("GET", "/api/users")):
        refused = client.request(method, path)
        assert refused.status_code == 403 and code_of(refused) == "password_change_required"
    weak = client.post("/api/me/password", json={"current_password": one_time,
                                                 "new_password": "alllowercase"})
    assert weak.status_code == 422 and code_of(weak) == "password_policy"
    assert "alllowercase" not in weak.text
    named = client.post("/api/me/password", json={"current_password": one_time,
                                                  "new_password": "Auditadmin-2026x"})
    assert named.status_code == 422 and "user name" in named.json()["error"]["message"]
    wrong = client.post("/api/me/password", json={"current_password": "not-it",
                                                  "new_password": "Good-Pass-2026!"})
    assert wrong.status_code == 403 and code_of(wrong) == "wrong_password"
    done = client.post("/api/me/password", json={"current_password": one_time,
                                                 "new_password": "Good-Pass-2026!"})
    assert done.status_code == 200
    # an administrator without a second factor enrols it before anything else
    refused = client.get("/api/institutions")
    assert refused.status_code == 403 and code_of(refused) == "totp_enrolment_required"
    assert client.get("/api/me").status_code == 200
    uri = client.post("/api/me/totp").json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/")
    totp = pyotp.parse_uri(uri)
    bad = client.post("/api/me/totp/confirm", json={"code": "000000" if totp.now() != "000000"
                                                    else "111111"})
    assert bad.status_code == 401 and code_of(bad) == "totp_invalid"
    assert client.post("/api/me/totp/confirm", json={"code": totp.now()}).status_code == 200
    assert client.get("/api/institutions").status_code == 200
    again_enrol = client.post("/api/me/totp")
    assert again_enrol.status_code == 409 and code_of(again_enrol) == "totp_already_enrolled"
    # the one-time password is gone
    _c, old = login(site.server, "auditadmin", one_time)
    assert old.status_code == 401 and code_of(old) == "login_failed"


def test_administrators_need_their_totp_code(site: Site) -> None:
    admin = site.user("secadmin")
    assert admin.totp is not None
    _c, missing = login(site.server, "secadmin", admin.password)
    assert missing.status_code == 401 and code_of(missing) == "totp_required"
    _c, wrong = login(site.server, "secadmin", admin.password, "12345")
    assert wrong.status_code == 401 and code_of(wrong) == "totp_invalid"
    code = next_code(admin.totp)
    client, ok = login(site.server, "secadmin", admin.password, code)
    assert ok.status_code == 200, ok.text
    assert client.get("/api/users").status_code == 200
    _c, replay = login(site.server, "secadmin", admin.password, code)
    assert replay.status_code == 401 and code_of(replay) == "totp_invalid"
    # an operator needs no second factor
    first_login(site.server, "totp-operator", _new_user(site, "totp-operator", ["operator"]))


def test_lockout_after_failures_then_unlock_after_the_window(site: Site) -> None:
    one_time = _new_user(site, "lock-me", ["viewer"])
    for _ in range(LOCKOUT_AFTER):
        _c, failed = login(site.server, "lock-me", "Wrong-password-1")
        assert failed.status_code == 401 and code_of(failed) == "login_failed"
    _c, locked = login(site.server, "lock-me", one_time)
    assert locked.status_code == 423 and code_of(locked) == "account_locked"
    shown = site.user("secadmin").call("GET", "/api/users/lock-me").json()["user"]
    assert shown["locked_until"] is not None
    time.sleep(LOCKOUT_SECONDS + 0.5)
    _c, back = login(site.server, "lock-me", one_time)
    assert back.status_code == 200, back.text
    # an unknown user gets the same answer as a wrong password
    _c, unknown = login(site.server, "nobody-here", "Whatever-123")
    assert unknown.status_code == 401 and code_of(unknown) == "login_failed"

    records = [r for r in audit_records(site.catalog) if r["target"] == "lock-me"]
    logins = [(r["action"], r["result"]) for r in records if r["action"] in ("login",
                                                                             "lockout")]
    assert logins == [("login", "failed")] * LOCKOUT_AFTER + [
        ("lockout", "ok"), ("login", "denied"), ("login", "ok")], logins
    assert all(r["source"] == "127.0.0.1" for r in records if r["action"] == "login")


def test_unsafe_methods_need_the_csrf_header(site: Site) -> None:
    admin = site.user("secadmin")
    token = admin.client.headers.pop("X-CSRF-Token")
    try:
        assert admin.call("GET", "/api/users").status_code == 200
        body = {"name": "csrf-victim", "institution": "center", "roles": ["viewer"]}
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            refused = admin.call("POST", "/api/users", json=body, headers=headers)
            assert refused.status_code == 403 and code_of(refused) == "csrf_failed"
            refused = admin.call("POST", "/api/logout", headers=headers)
            assert refused.status_code == 403 and code_of(refused) == "csrf_failed"
        assert admin.call("GET", "/api/users/csrf-victim").status_code == 404
        made = admin.call("POST", "/api/users", json=body, headers={"X-CSRF-Token": token})
        assert made.status_code == 201
    finally:
        admin.client.headers["X-CSRF-Token"] = token


def test_logins_are_rate_limited_per_address(site: Site) -> None:
    limited = start(site.env, site.catalog, "--login-rate", "3")
    try:
        for _ in range(3):
            _c, failed = login(limited, "nobody", "Wrong-password-1")
            assert failed.status_code == 401
        _c, refused = login(limited, "nobody", "Wrong-password-1")
        assert refused.status_code == 429 and code_of(refused) == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        limited.stop()


def test_bad_input_gets_a_stable_error_never_a_500(site: Site) -> None:
    admin = site.user("secadmin")
    anonymous = site.server.client()
    cases = [
        (anonymous, "POST", "/api/login", {"content": b"{not json"}),
        (anonymous, "POST", "/api/login", {"json": {"username": "x"}}),
        (anonymous, "POST", "/api/login", {"json": {"username": 5, "password": []}}),
        (anonymous, "POST", "/api/login", {"json": {"username": "x", "password": "y" * 5000}}),
        (anonymous, "POST", "/api/login", {"json": ["a", "b"]}),
        (anonymous, "POST", "/api/login", {"json": {"username": "a\x00b", "password": "c"}}),
        (anonymous, "POST", "/api/login", {"content": b'{"username": "\\udcff", "password": "c"}'}),
        (anonymous, "GET", "/api/nothing-here", {}),
        (anonymous, "PUT", "/api/health", {}),
        (admin.client, "POST", "/api/users", {"json": {"name": "Bad Name!", "institution":
                                                       "center", "roles": ["viewer"]}}),
        (admin.client, "POST", "/api/users", {"json": {"name": "x", "institution": "center",
                                                       "roles": ["root"]}}),
        (admin.client, "POST", "/api/users", {"json": {"name": "x", "institution": "nowhere",
                                                       "roles": ["viewer"]}}),
        (admin.client, "POST", "/api/users", {"json": {"name": "x", "institution": "center",
                                                       "roles": [], "extra": 1}}),
        (admin.client, "PATCH", "/api/users/%00%ff", {"json": {"disabled": True}}),
        (admin.client, "GET", "/api/users/a%00", {}),
        (admin.client, "DELETE", "/api/tokens/a%00", {}),
        (admin.client, "POST", "/api/users", {"json": {"name": "x", "institution": "c\x00",
                                                       "roles": ["viewer"]}}),
        (admin.client, "PATCH", "/api/users/secadmin", {"content": b"\xff\xfe"}),
        (admin.client, "POST", "/api/tokens", {"json": {"name": "t", "role": "sysadmin",
                                                        "institution": "center"}}),
        (admin.client, "POST", "/api/tokens", {"json": {"name": "t", "role": "viewer",
                                                        "institution": "center", "days": -1}}),
    ]
    for client, method, path, kwargs in cases:
        response = client.request(method, path, **kwargs)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        code_of(response)
        assert "y" * 100 not in response.text


def _tls_files(tmp: Path) -> tuple[Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp / "server.pem").write_bytes(cert.public_bytes(pem))
    (tmp / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp / "server.key").chmod(0o600)
    return tmp / "server.pem", tmp / "server.key"


def test_tls_cookies_are_secure_and_beyond_loopback_needs_tls(site: Site) -> None:
    plain = run({**site.env, "MEDARK_CATALOG": site.catalog}, "server", "--listen",
                "0.0.0.0:0")
    assert plain.returncode == 2 and "needs TLS" in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    cert, key = _tls_files(site.tmp)
    context = ssl.create_default_context(cafile=str(cert))
    served = start(site.env, site.catalog, "--tls-cert", str(cert), "--tls-key", str(key),
                   verify=context)
    try:
        assert served.url.startswith("https://127.0.0.1:")
        one_time = _new_user(site, "tls-viewer", ["viewer"])
        _client, response = login(served, "tls-viewer", one_time)
        assert response.status_code == 200
        cookies = {c.split("=", 1)[0]: c.lower()
                   for c in response.headers.get_list("set-cookie")}
        session = cookies["medark_session"]
        assert "secure" in session and "httponly" in session and "samesite=strict" in session
        assert "secure" in cookies["medark_csrf"] and "httponly" not in cookies["medark_csrf"]
        with pytest.raises(httpx.ConnectError):
            httpx.get(served.url + "/api/health", verify=True, timeout=10)
    finally:
        served.stop()
    _c, response = login(site.server, "tls-viewer", "whatever-wrong-1")
    cookies_plain = response.headers.get_list("set-cookie")
    assert cookies_plain == []


def test_no_secret_in_the_audit_trail_or_the_server_log(site: Site) -> None:
    admin = site.user("secadmin")
    one_time = _new_user(site, "secret-check", ["operator"])
    user = first_login(site.server, "secret-check", one_time)
    records = audit_records(site.catalog)
    text = json.dumps(records)
    assert admin.totp is not None
    secrets = [*site.passwords.values(), admin.password, one_time, user.password,
               "Wrong-password-1", admin.totp.secret]
    assert not [s for s in secrets if s in text]
    # the catalog holds the TOTP secret encrypted (server/totpkey.py), on both catalogs
    catalog = Catalog(site.catalog)
    try:
        with transaction(catalog) as session:
            stored = session.scalars(select(UserRow.totp_secret).where(
                UserRow.name == "secadmin")).one()
    finally:
        catalog.close()
    assert stored and len(stored) == 64 and admin.totp.secret not in stored
    actions = {(r["action"], r["result"]) for r in records}
    assert {("login", "ok"), ("login", "failed"), ("user.create", "ok"),
            ("password.change", "ok"), ("totp.enrol", "ok"), ("totp.confirm", "ok"),
            ("server.init", "ok")} <= actions
    created = [r for r in records if r["action"] == "user.create"
               and r["target"] == "secret-check"]
    assert created and created[0]["actor"] == "secadmin"
    assert created[0]["detail"] == {"roles": ["operator"]}


def test_idle_sessions_end(idle_session: IdleSession) -> None:
    """Last in the module: its session has been idle while the other tests ran."""
    time.sleep(max(0.0, idle_session.used_at + IDLE_TIMEOUT + 1.5 - time.monotonic()))
    user = idle_session.user
    expired = user.call("GET", "/api/me")
    assert expired.status_code == 401 and code_of(expired) == "session_expired"
    gone = user.call("GET", "/api/me")
    assert gone.status_code == 401 and code_of(gone) == "not_authenticated"
