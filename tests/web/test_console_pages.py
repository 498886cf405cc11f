"""Every page of the console's menu (the pages each role sees: pages added later are
picked up from web/src/pages/*/index.ts) on a server with a hospital's configuration and
jobs: axe-core finds no serious or critical accessibility violation, and each page is
photographed at 1366x768 and 1920x1080 in Chinese and English into the test artefacts
($MEDARK_TEST_ARTEFACTS or .artefacts/console/) with no page error, console error or
server error, and no horizontal scroll at 1366x768."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from console_site import (
    AXE,
    INSTITUTION,
    LOCALES,
    SIZES,
    Console,
    Problems,
    artefacts,
    browser_fixture,
    console_fixture,
    pages_with_roles,
    settle,
)

from medark.catalog import job_queue
from medark.catalog.store import Catalog

console = console_fixture()
browser = browser_fixture()

SYSTEMS = ("his", "pacs", "lis", "emr")
CONFIG_HEAD = """\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/backup/hosp-a"
"""
SYSTEM = """
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
SERIOUS = ("serious", "critical")
AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] })
  return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
    .map(v => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3)
      .map(n => n.target.join(' ')).join('; ')})`)
}"""


@pytest.fixture(scope="module")
def seeded(console: Console) -> Console:
    """The hospital's systems and 60 jobs over a week, as its agent would report them."""
    document = CONFIG_HEAD + "".join(SYSTEM.format(name=name, minute=n * 10)
                                     for n, name in enumerate(SYSTEMS))
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
                agent="agent-a", plan=SYSTEMS[i % len(SYSTEMS)],
                kind="backup" if i % 7 else "check",
                status="failed" if failed else "succeeded", scheduled_for=when,
                started_at=when, finished_at=when + timedelta(seconds=rng.randint(30, 900)),
                error="repository unreachable" if failed else None,
                snapshot_id=None if failed else f"{rng.getrandbits(128):032x}",
                bytes_added=rng.randrange(1 << 30), details=None)
    finally:
        catalog.close()
    return console


def _pages() -> list[tuple[str, str | None]]:
    """(path, role) of every page to look at: the login page signed out, then each page
    of the menu as the first role that sees it."""
    return [("/login", None), *pages_with_roles()]


def _name(path: str, role: str | None) -> str:
    return f"{path.strip('/').replace('/', '_') or 'root'}-{role or 'signed-out'}"


def test_no_serious_accessibility_violation(seeded: Console, browser: Any) -> None:
    found: dict[str, list[str]] = {}
    for path, role in _pages():
        # axe is injected as a script of its own: the console's CSP would refuse it
        context = seeded.context(browser, role, bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(path)
            settle(page)
            page.add_script_tag(path=str(AXE))
            violations = page.evaluate(AXE_RUN)
            if violations:
                found[f"{path} as {role or 'signed out'}"] = violations
        finally:
            context.close()
    assert not found, "serious or critical accessibility violations:\n" + "\n".join(
        f"{where}:\n  " + "\n  ".join(items) for where, items in found.items())


def test_screenshots_of_every_page_in_both_languages_and_sizes(seeded: Console,
                                                               browser: Any) -> None:
    out = artefacts()
    problems: list[str] = []
    taken = 0
    for locale in LOCALES:
        for size in SIZES:
            contexts: dict[str | None, Any] = {}
            try:
                for path, role in _pages():
                    if role not in contexts:
                        contexts[role] = seeded.context(browser, role, locale=locale,
                                                        size=size)
                    page = contexts[role].new_page()
                    seen = Problems(page)
                    page.goto(path)
                    settle(page)
                    assert page.evaluate("document.documentElement.lang") == locale, path
                    shot = out / f"{_name(path, role)}-{locale}-{size[0]}x{size[1]}.png"
                    page.screenshot(path=str(shot))
                    taken += 1
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    if size == SIZES[0] and wide > size[0]:
                        seen.found.append(f"scrolls sideways: {wide} px wide")
                    problems += [f"{path} {locale} {size}: {p}" for p in seen.found]
                    page.close()
            finally:
                for context in contexts.values():
                    context.close()
    assert taken == len(_pages()) * len(LOCALES) * len(SIZES)
    assert not problems, "\n".join(problems)
