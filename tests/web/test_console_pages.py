"""Every page of the console's menu (the pages each role sees: pages added later are
picked up from web/src/pages/*/index.ts) on a server with a hospital's configuration and
jobs: axe-core finds no serious or critical accessibility violation
(test_console_screens.py photographs them); a plan's link on the dashboard's system
details and on the systems page opens the Jobs page with that plan's jobs only."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from console_site import (
    AXE,
    INSTITUTION,
    SEED_SYSTEMS,
    Console,
    Problems,
    Quiet,
    artefacts,
    browser_fixture,
    console_fixture,
    pages_to_visit,
    seed,
    settle,
)

console = console_fixture()
browser = browser_fixture()

AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] })
  return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
    .map(v => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3)
      .map(n => n.target.join(' ')).join('; ')})`)
}"""


@pytest.fixture(scope="module")
def seeded(console: Console) -> Console:
    return seed(console)


def test_no_serious_accessibility_violation(seeded: Console, browser: Any) -> None:
    found: dict[str, list[str]] = {}
    for path, role in pages_to_visit():
        # axe is injected as a script of its own: the console's CSP would refuse it
        context = seeded.context(browser, role, bypass_csp=True)
        try:
            page = context.new_page()
            Quiet(page)
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


def _plans_listed(page: Any) -> list[str]:
    """The plan of each row of the Jobs page (its plan / institution column)."""
    page.locator("#main .el-table__row").first.wait_for()
    cells = page.locator("#main .el-table__row td:nth-child(2)")
    return [str(text).split()[0]
            for text in cells.evaluate_all("cells => cells.map(c => c.innerText)")]


def test_a_plan_links_to_its_jobs(seeded: Console, browser: Any) -> None:
    # seed(): 60 jobs, their plans taken in turn, so a quarter of them is one plan's
    each = 60 // len(SEED_SYSTEMS)
    context = seeded.context(browser, "operator", locale="en")
    try:
        page = context.new_page()
        problems = Problems(page)
        page.goto("/dashboard")
        page.locator("#main .tile", has_text="his").first.click()
        drawer = page.locator(".el-drawer")
        link = drawer.get_by_role("link", name="Jobs of plan his").first
        link.wait_for()
        page.wait_for_timeout(400)  # the drawer's opening transition
        page.screenshot(path=str(artefacts() / "dashboard-drawer-en-1366x768.png"))
        link.focus()  # by the keyboard
        page.keyboard.press("Enter")
        page.wait_for_url("**/jobs?**")
        assert parse_qs(urlsplit(page.url).query) == {
            "institution": [INSTITUTION], "plan": ["his"]}, page.url
        settle(page)
        assert _plans_listed(page) == ["his"] * each

        page.goto("/systems")
        settle(page)
        page.get_by_role("link", name="Jobs of plan lis").first.click()
        page.wait_for_url("**/jobs?**plan=lis**")
        settle(page)
        assert _plans_listed(page) == ["lis"] * each
        assert not problems.found, problems.found
    finally:
        context.close()
