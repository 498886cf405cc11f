"""The web console served by a real `medark server` at / (server/console.py): index.html
at / and at any page's path, never cached, with the console's Content-Security-Policy;
hashed assets cached as immutable; /api untouched; a short page when the console is not
built. The server serves a console directory made here (MEDARK_CONSOLE_DIR), so these
tests do not need npm; the last one checks the real build when `make web` made it."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from server_site import Server, base_env, code_of, init, start

from medark.server import console, roles

INDEX = ('<!doctype html><html lang="zh-CN"><head><script type="module" '
         'src="/assets/index-Ab12Cd34.js"></script></head><body><div id="app"></div>'
         '</body></html>\n')
SCRIPT = "console.log('medark')\n"
WEB_PERMISSIONS = Path(__file__).parents[2] / "web" / "src" / "auth" / "permissions.json"


def _built(directory: Path) -> Path:
    (directory / "assets").mkdir(parents=True)
    (directory / "index.html").write_text(INDEX, encoding="utf-8")
    (directory / "assets" / "index-Ab12Cd34.js").write_text(SCRIPT, encoding="utf-8")
    (directory / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>",
                                           encoding="utf-8")
    return directory


def _serve(tmp: Path, directory: Path) -> Server:
    env = base_env(tmp)
    catalog = f"sqlite:///{tmp / 'catalog.db'}"
    init(env, catalog)
    return start({**env, console.ENV: str(directory)}, catalog)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("console")
    directory = _built(tmp / "console")
    (tmp / "secret.txt").write_text("not for the web", encoding="utf-8")
    (directory / "assets" / "escape.js").symlink_to(tmp / "secret.txt")
    server = _serve(tmp, directory)
    yield server, directory
    server.stop()


@pytest.fixture(scope="module")
def client(served: tuple[Server, Path]) -> httpx.Client:
    return served[0].client()


def _raw_get(server: Server, path: str) -> tuple[int, bytes]:
    """A GET of the path exactly as written (httpx would tidy away the '..')."""
    where = urlsplit(server.url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_index_at_the_root_and_at_any_page(client: httpx.Client) -> None:
    for path in ("/", "/jobs", "/jobs/42/events", "/login?redirect=/jobs", "/页面"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.text == INDEX, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    head = client.head("/jobs")
    assert head.status_code == 200 and head.content == b""


def test_content_security_policy_allows_only_the_server_itself(client: httpx.Client
                                                               ) -> None:
    policy = dict(part.strip().split(" ", 1) for part in
                  client.get("/").headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["style-src"] == "'self'"  # no inline style
    assert policy["connect-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "http" not in " ".join(policy.values())  # no CDN, no other origin


def test_assets_are_immutable_other_files_revalidated(client: httpx.Client) -> None:
    asset = client.get("/assets/index-Ab12Cd34.js")
    assert asset.status_code == 200 and asset.text == SCRIPT
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset.headers["content-type"]
    assert asset.headers["x-content-type-options"] == "nosniff"
    icon = client.get("/favicon.svg")
    assert icon.status_code == 200 and icon.headers["cache-control"] == "no-cache"
    assert icon.headers["content-type"] == "image/svg+xml"


def test_a_missing_asset_is_404_not_the_page(client: httpx.Client) -> None:
    for path in ("/assets/index-OLD00000.js", "/assets/", "/assets/escape.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "<html" not in response.text and "not for the web" not in response.text


def test_nothing_outside_the_console_directory(served: tuple[Server, Path]) -> None:
    server = served[0]
    for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt",
                 "/assets/%2e%2e/%2e%2e/secret.txt", "/.hidden", "/assets/..%5c..%5csecret.txt"):
        status, body = _raw_get(server, path)
        assert b"not for the web" not in body, path
        assert status in (200, 400, 404), (path, status)
        if status == 200:
            assert body.decode() == INDEX, path


def test_the_api_is_untouched(client: httpx.Client) -> None:
    health = client.get("/api/health")
    assert health.json() == {"status": "ok"}
    assert "content-security-policy" not in health.headers
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404 and code_of(missing) == "not_found"
    assert client.get("/api").status_code == 404
    assert client.get("/api/jobs").status_code == 401  # still needs a sign-in
    wrong = client.put("/api/jobs")
    assert wrong.status_code == 405 and code_of(wrong) == "method_not_allowed"
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    # other methods outside /api are the API's too: JSON, never the page
    posted = client.post("/jobs", json={})
    assert posted.status_code in (404, 405) and code_of(posted)


def test_a_console_not_built_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    server = _serve(tmp_path, empty)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as plain:
            for path in ("/", "/jobs", "/assets/index-Ab12Cd34.js"):
                response = plain.get(path)
                assert response.status_code == 503, path
                assert response.headers["content-type"].startswith("text/plain")
                assert "make web" in response.text
            assert plain.get("/api/health").json() == {"status": "ok"}
    finally:
        server.stop()


def test_the_console_shows_no_permission_the_server_does_not_grant() -> None:
    """web/src/auth/permissions.json decides the menus: a page or an action there for a
    role the server refuses would be a console that offers what fails."""
    table = json.loads(WEB_PERMISSIONS.read_text(encoding="utf-8"))
    shown = {role: set(granted) for role, granted in table.items()
             if not role.startswith("_")}
    assert set(shown) == set(roles.ROLES)
    for role, granted in shown.items():
        assert granted <= roles.PERMISSIONS[role], (role, granted - roles.PERMISSIONS[role])
    # and the separation of duties holds in the console as on the server
    assert {r for r, g in shown.items() if roles.AUDIT_READ in g} == {roles.AUDITADMIN}
    assert {r for r, g in shown.items() if roles.JOBS_RUN in g} == {roles.OPERATOR,
                                                                   roles.SYSADMIN}


def test_the_real_build_is_whole() -> None:
    """What `make web` built (make test builds it first): every script and stylesheet
    index.html names is in the package, so the wheel ships a console that loads."""
    index = console.CONSOLE_DIR / "index.html"
    if not index.is_file():
        pytest.skip("the console is not built here (make web)")
    html = index.read_text(encoding="utf-8")
    named = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert any(name.endswith(".js") for name in named), html
    for name in named:
        assert (console.CONSOLE_DIR / name.lstrip("/")).is_file(), name
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
