"""The web console end to end: a real `medark server` serving the built console
(`make web`) on a SQLite catalog, its users signed in, and Debian's chromium driven by
Playwright (never a downloaded browser). A module takes one server (`console =
console_fixture()`) and one browser (`browser = browser_fixture()`).

The pages a test visits come from the console's own menu (web/src/pages/*/index.ts and
web/src/auth/permissions.json, read here at test time), so pages added later are tested
without touching these tests. Screenshots go to $MEDARK_TEST_ARTEFACTS or
.artefacts/console/ in the repository."""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_site import (
    Server,
    Site,
    User,
    base_env,
    init,
    start,
    wait_for,
)

from medark.catalog import job_queue
from medark.catalog.store import Catalog

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CONSOLE = Path(os.environ.get("MEDARK_CONSOLE_DIR") or
               ROOT / "src" / "medark" / "server" / "console")
"""The built console the server serves (server/console.py reads the same variable)."""
AXE = WEB / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
INSTITUTION = "hosp-a"
ROLES = ("sysadmin", "secadmin", "auditadmin", "operator", "viewer")
HOSPITAL_USERS = {"operator": "op-a", "viewer": "view-a"}
"""The hospital roles' accounts (of INSTITUTION); the administrators are init's."""
SIZES = ((1366, 768), (1920, 1080))
LOCALES = ("zh-CN", "en")
LOCALE_KEY = "medark.locale"
TOTP_STEP = 30


def artefacts() -> Path:
    """Where screenshots go (made on demand)."""
    where = Path(os.environ.get("MEDARK_TEST_ARTEFACTS") or ROOT / ".artefacts") / "console"
    where.mkdir(parents=True, exist_ok=True)
    return where


# --- what the console's menu holds ------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """A side-menu entry: the page's path and the permission it needs."""

    area: str
    path: str
    permission: str


def _bracketed(text: str, start: int) -> str:
    """The text of the bracket opening at `start` up to its match."""
    depth = 0
    for at in range(start, len(text)):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(text[at], 0)
        if depth == 0:
            return text[start:at + 1]
    raise AssertionError("unbalanced brackets")


def menu_entries() -> list[Entry]:
    """Every area's menu entries, in pages/index.ts's order. An entry whose path or
    permission is not a literal fails here rather than being left out."""
    index = (WEB / "src" / "pages" / "index.ts").read_text(encoding="utf-8")
    listed = re.search(r"AREAS[^=]*=\s*\[([^\]]*)\]", index)
    assert listed, "pages/index.ts lists no AREAS"
    entries = []
    for area in re.findall(r"\w+", listed.group(1)):
        source = (WEB / "src" / "pages" / area / "index.ts").read_text(encoding="utf-8")
        found = re.search(r"\bmenu:\s*\[", source)
        assert found, f"pages/{area}/index.ts: no menu"
        menu = _bracketed(source, found.end() - 1)[1:-1]
        at = 0
        while (opening := menu.find("{", at)) >= 0:
            item = _bracketed(menu, opening)
            at = opening + len(item)
            path = re.search(r"\bpath:\s*'([^']+)'", item)
            permission = re.search(r"\bpermission:\s*([\w.]+|'[^']+')", item)
            assert path and permission, f"pages/{area}/index.ts: cannot read {item!r}"
            entries.append(Entry(area, path.group(1), _value(area, permission.group(1))))
    return entries


def _value(area: str, expression: str) -> str:
    """A string literal, or a constant of the area's folder: `NAME = '...'` or a key of
    `NAME = { key: '...' }`."""
    if expression.startswith("'"):
        return expression[1:-1]
    name, _dot, key = expression.partition(".")
    for source in sorted((WEB / "src" / "pages" / area).glob("*.ts")):
        text = source.read_text(encoding="utf-8")
        found = re.search(rf"\b(?:const|let)\s+{name}\b[^=]*=\s*", text)
        if not found:
            continue
        if not key:
            literal = re.match(r"'([^']+)'", text[found.end():])
        else:
            assert text[found.end()] == "{", f"pages/{area}: {name} is not an object"
            body = _bracketed(text, found.end())
            literal = re.search(rf"\b{key}:\s*'([^']+)'", body)
        assert literal, f"pages/{area}: cannot read {expression}"
        return literal.group(1)
    raise AssertionError(f"pages/{area}: {name} is not defined in the area's folder")


def permissions() -> dict[str, set[str]]:
    """What each role may do (web/src/auth/permissions.json)."""
    doc = json.loads((WEB / "src" / "auth" / "permissions.json").read_text(encoding="utf-8"))
    return {role: set(granted) for role, granted in doc.items() if not role.startswith("_")}


def menu_of(role: str) -> list[str]:
    """The paths of the pages `role` sees in its menu, in order."""
    granted = permissions()[role]
    return [e.path for e in menu_entries() if e.permission in granted]


def pages_with_roles() -> list[tuple[str, str]]:
    """Each page in the menu with the first role that sees it."""
    seen: dict[str, str] = {}
    for role in ROLES:
        for path in menu_of(role):
            seen.setdefault(path, role)
    return list(seen.items())


# --- the server and its users -----------------------------------------------------

@dataclass
class Console:
    """The server, its users and their browser sign-ins."""

    site: Site
    users: dict[str, User]
    """By role."""
    used_steps: dict[str, int] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.site.server.url

    @property
    def server(self) -> Server:
        return self.site.server

    def code(self, role: str) -> str | None:
        """A TOTP code the server has not seen yet for the role's user (None when it has
        no second factor): the next time step, waiting for it to come when the one
        after the current is spent."""
        user = self.users[role]
        if user.totp is None:
            return None
        while True:
            current = int(time.time()) // TOTP_STEP
            step = max(current, self.used_steps.get(role, current) + 1)
            if step <= current + 1:
                self.used_steps[role] = step
                return user.totp.at(step * TOTP_STEP)
            time.sleep((current + 1) * TOTP_STEP - time.time() + 0.1)

    def state(self, browser: Any, role: str) -> dict[str, Any]:
        """The storage state (session and CSRF cookies) of the role signed in through
        the API, once per module."""
        if role not in self.states:
            context = browser.new_context(base_url=self.url)
            try:
                user = self.users[role]
                body = {"username": user.name, "password": user.password}
                code = self.code(role)
                if code:
                    body["totp"] = code
                reply = context.request.post("/api/login", data=body)
                assert reply.ok, reply.text()
                self.states[role] = context.storage_state()
            finally:
                context.close()
        return self.states[role]

    def context(self, browser: Any, role: str | None, *, locale: str | None = "zh-CN",
                size: tuple[int, int] = SIZES[0], **options: Any) -> Any:
        """A browser context signed in as `role` (None: signed out) with the console's
        language chosen (None: the console's default)."""
        context = browser.new_context(
            base_url=self.url, viewport={"width": size[0], "height": size[1]},
            storage_state=self.state(browser, role) if role else None, **options)
        if locale:
            context.add_init_script(
                f"localStorage.setItem('{LOCALE_KEY}', {json.dumps(locale)})")
        return context


def _first_login_steps(console: Console) -> None:
    """The steps the administrators' TOTP confirmations spent."""
    now = int(time.time()) // TOTP_STEP
    for role in ("sysadmin", "secadmin", "auditadmin"):
        console.used_steps[role] = now


def make_console(tmp: Path) -> Iterator[Console]:
    assert (CONSOLE / "index.html").is_file(), (
        "the console is not built: run `make web` (make test builds it first)")
    env = base_env(tmp)
    catalog = f"sqlite:///{tmp / 'catalog.db'}"
    passwords = init(env, catalog)
    server = start(env, catalog, "--single-security-admin", "--login-rate", "100000",
                   "--agent-offline-after", "600")
    site = Site(env, catalog, server, passwords, tmp)
    try:
        users = {role: site.user(role) for role in ("sysadmin", "secadmin", "auditadmin")}
        made = users["sysadmin"].call("POST", "/api/institutions",
                                      json={"name": INSTITUTION, "title": "县人民医院"})
        assert made.status_code == 201, made.text
        for role, name in HOSPITAL_USERS.items():
            users[role] = site.new_user(name, [role], INSTITUTION)
        console = Console(site, users)
        _first_login_steps(console)
        yield console
    finally:
        server.stop()


def console_fixture() -> Any:
    """The module's `console` fixture (`console = console_fixture()`)."""
    def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
        yield from make_console(tmp_path_factory.mktemp("console"))
    return pytest.fixture(scope="module", name="console")(console)


def browser_fixture() -> Any:
    """The module's `browser` fixture: Debian's chromium, headless."""
    def browser() -> Iterator[Any]:
        if not CHROMIUM.exists():
            pytest.skip(f"{CHROMIUM} is absent (Debian's chromium: make debs installs it)")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                yield launched
            finally:
                launched.close()
    return pytest.fixture(scope="module", name="browser")(browser)



# --- the data the pages show ------------------------------------------------------

SEED_SYSTEMS = ("his", "pacs", "lis", "emr")
SEED_HEAD = """\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/backup/hosp-a"
"""
SEED_SYSTEM = """
[systems.{name}]
owner = "IT"
records = "outpatient"

[[systems.{name}.sources]]
type = "postgres"
dsn = "host=db-{name} dbname={name}"

[plans.{name}]
system = "{name}"
repository = "local"
schedule = "{minute} 1 * * *"
rpo = "1d"
rto = "4h"
retention = {{ daily = 30, yearly = 15 }}
"""


def seed(console: Console) -> Console:
    """The hospital's systems and 60 jobs over a week, as its agent would report them."""
    document = SEED_HEAD + "".join(SEED_SYSTEM.format(name=name, minute=n * 10)
                                   for n, name in enumerate(SEED_SYSTEMS))
    put = console.users["sysadmin"].call(
        "PUT", f"/api/institutions/{INSTITUTION}/config",
        json={"document": document, "comment": "seed", "base_version": None})
    assert put.status_code == 200, put.text
    rng = random.Random(17)
    now = datetime.now(UTC)
    catalog = Catalog(console.site.catalog)
    try:
        for i in reversed(range(60)):  # the newest job last: the highest id
            when = now - timedelta(hours=i * 3 + 1)
            failed = i % 13 == 5
            job_queue.record_remote(
                catalog, origin_key=f"{INSTITUTION}/seed:{i}", institution=INSTITUTION,
                agent="agent-a", plan=SEED_SYSTEMS[i % len(SEED_SYSTEMS)],
                kind="backup" if i % 7 else "check",
                status="failed" if failed else "succeeded", scheduled_for=when,
                started_at=when, finished_at=when + timedelta(seconds=rng.randint(30, 900)),
                error="repository unreachable" if failed else None,
                snapshot_id=None if failed else f"{rng.getrandbits(128):032x}",
                bytes_added=rng.randrange(1 << 30), details=None)
    finally:
        catalog.close()
    return console


def pages_to_visit() -> list[tuple[str, str | None]]:
    """(path, role) of every page to look at: the login page signed out, then each page
    of the menu as the first role that sees it."""
    return [("/login", None), *pages_with_roles()]


def shot_name(path: str, role: str | None) -> str:
    return f"{path.strip('/').replace('/', '_') or 'root'}-{role or 'signed-out'}"


# --- pages ------------------------------------------------------------------------

class Problems:
    """A page's errors, kept to fail the test with: uncaught exceptions, console errors
    and server errors (5xx). The browser's own "Failed to load resource" line for a 4xx
    is left out: the console handles those (a 401 at the login asks for the code)."""

    def __init__(self, page: Any) -> None:
        self.found: list[str] = []
        Quiet(page)
        page.on("pageerror", lambda error: self.found.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("response", lambda reply: reply.status >= 500 and self.found.append(
            f"server error: {reply.status} {reply.request.method} {reply.url}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.found.append(f"console error: {message.text} "
                              f"({message.location.get('url', '')})")


def sign_in_through_the_page(page: Any, console: Console, role: str) -> None:
    """The login page: user and password, then the TOTP step for an administrator; back
    in the console once its side menu shows."""
    user = console.users[role]
    page.goto("/login")
    page.locator("input[name=username]").fill(user.name)
    page.locator("input[name=password]").fill(user.password)
    page.locator("button[type=submit]").click()
    code = console.code(role)
    if code:
        page.locator("input[name=totp]").fill(code)
        page.locator("button[type=submit]").click()
    page.locator("nav .menu-link").first.wait_for()


class Quiet:
    """Counts a page's requests in flight (the live event streams aside, which stay
    open): attach before the page's first request."""

    def __init__(self, page: Any) -> None:
        self.open: set[Any] = set()
        page.on("request", self._started)
        page.on("requestfinished", lambda request: self.open.discard(request))
        page.on("requestfailed", lambda request: self.open.discard(request))
        page._medark_quiet = self

    def _started(self, request: Any) -> None:
        if request.resource_type != "eventsource" and "/events" not in request.url:
            self.open.add(request)


def settle(page: Any, quiet_ms: int = 300) -> None:
    """Wait for the page's data: no request in flight (live streams aside, when the
    page has a Quiet) for `quiet_ms`, no loading mask, then a moment for charts to
    draw."""
    page.wait_for_load_state("load")
    try:
        page.locator("main").first.wait_for()  # the layout's, or the login page's
    except Exception as exc:  # what the page showed instead, for the failure's reader
        body = page.evaluate("() => document.body ? document.body.innerText : ''")
        raise AssertionError(f"no <main> on {page.url} ({str(exc).splitlines()[0]}); "
                             f"the page shows: {' '.join(str(body).split())[:400]!r}") from None
    quiet = getattr(page, "_medark_quiet", None)
    if quiet is not None:
        since = time.monotonic()
        deadline = since + 30
        while time.monotonic() < deadline:
            page.wait_for_timeout(50)
            if quiet.open:
                since = time.monotonic()
            elif time.monotonic() - since >= quiet_ms / 1000:
                break
    page.wait_for_function(
        "() => !document.querySelector('.el-loading-mask:not([style*=\"display: none\"])')",
        timeout=15000)
    page.wait_for_timeout(quiet_ms)


def menu_links(page: Any) -> list[str]:
    """The paths the side menu links to."""
    page.locator("nav .menu-link").first.wait_for()
    return [str(href) for href in page.locator("nav a.menu-link").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))")]


def shows_not_found(page: Any) -> bool:
    """The not-found page (its result box and its link back home) is on screen."""
    page.locator(".el-result").first.wait_for()
    return bool(page.locator(".el-result a[href='/']").count())


def wait_job(console: Console, job_id: int, timeout: float = 120) -> dict[str, Any]:
    """The job once it ended (through the API, as the operator)."""
    operator = console.users["operator"]

    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = operator.call("GET", f"/api/jobs/{job_id}").json()["job"]
        return job if job["status"] not in ("queued", "running") else None
    return dict(wait_for(f"job {job_id}", ended, timeout))


def photograph(console: Console, browser: Any, locale: str) -> None:
    """Every page (pages_to_visit) in `locale` at each of SIZES into the artefacts, as
    <page>-<role>-<locale>-<size>.png (the larger size by resizing the same page).
    Fails on page, console or server errors and on sideways scroll at 1366x768."""
    out = artefacts()
    problems: list[str] = []
    contexts: dict[str | None, Any] = {}
    try:
        for path, role in pages_to_visit():
            if role not in contexts:
                contexts[role] = console.context(browser, role, locale=locale)
            page = contexts[role].new_page()
            seen = Problems(page)
            page.goto(path)
            for n, (width, height) in enumerate(SIZES):
                if n:
                    page.set_viewport_size({"width": width, "height": height})
                settle(page)
                assert page.evaluate("document.documentElement.lang") == locale, path
                page.screenshot(path=str(
                    out / f"{shot_name(path, role)}-{locale}-{width}x{height}.png"))
                wide = page.evaluate("document.documentElement.scrollWidth")
                if width == SIZES[0][0] and wide > width:
                    seen.found.append(f"scrolls sideways at {width}x{height}: {wide} px")
            problems += [f"{path} as {role or 'signed out'} ({locale}): {p}"
                         for p in seen.found]
            page.close()
    finally:
        for context in contexts.values():
            context.close()
    assert not problems, "\n".join(problems)
