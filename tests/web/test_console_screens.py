"""Every page of the console's menu (pages added later are picked up from
web/src/pages/*/index.ts), on a server with a hospital's configuration and jobs,
photographed at 1366x768 and 1920x1080 in Chinese into the test artefacts
($MEDARK_TEST_ARTEFACTS or .artefacts/console/), with no page error, console error or
server error, and no horizontal scroll at 1366x768
(test_console_screens_en.py: the other language, on a server of its own so
both run at once). Look at them: Chinese renders, nothing overlaps or is cut off, the
charts have data."""

from __future__ import annotations

from typing import Any

from console_site import Console, browser_fixture, console_fixture, photograph, seed

console = console_fixture()
browser = browser_fixture()


def test_screenshots_of_every_page_in_chinese(console: Console, browser: Any) -> None:
    photograph(seed(console), browser, "zh-CN")
