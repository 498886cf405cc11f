"""Every page of the console's menu (the pages each role sees: pages added later are
picked up from web/src/pages/*/index.ts) on a server with a hospital's configuration and
jobs: axe-core finds no serious or critical accessibility violation
(test_console_screens.py photographs them)."""

from __future__ import annotations

from typing import Any

import pytest
from console_site import (
    AXE,
    Console,
    Quiet,
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
