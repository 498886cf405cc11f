"""A database restored to a second from the console, end to end: the world of
tests/server/pitr_world.py (a throwaway PostgreSQL cluster whose WAL the real
agent's schedule streams, a base backup, two rows committed a second apart, the agent's
window reported) on the console's server; an operator of that hospital walks the
wizard in chromium with the browser's clock in another zone than UTC: the system, the
window drawn on the timeline, a time outside it refused with the nearest window's
bounds, the second between the two rows typed on the hospital's clock, the database and
the agent's declared target, the summary with the exact time and zone, and follows the
job to its success, which names the new data directory (there on disk). In English the
same up to the progress, the window's latest second taken with the keyboard, and
axe-core finds no serious violation on the new steps. Each step is screenshotted at
1366x768 in both languages into the artefacts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from console_site import (
    AXE,
    Console,
    Problems,
    artefacts,
    browser_fixture,
    console_fixture,
    settle,
)
from pg_server import can_run_servers
from pitr_world import HOSP, World, job_ended, parse_time, pg, world
from server_site import Site
from test_console_pages import AXE_RUN

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))
console = console_fixture()
browser = browser_fixture()
__all__ = ["pg", "world"]  # the cluster and the agent, as the server's test makes them

WORDS = {
    "zh-CN": {"next": "下一步", "start": "开始恢复", "outside": "不在任何连续日志窗口内",
              "nearest": "最近的窗口", "source": "计划 his · 数据源 postgres",
              "unknown": "尚未上报"},
    "en": {"next": "Next", "start": "Start the restore",
           "outside": "is not inside a window of continuous log capture",
           "nearest": "Nearest window", "source": "Plan his · source postgres",
           "unknown": "has not reported"},
}
ZONE = re.compile(r"([A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*)\s*[（(]UTC")


@pytest.fixture(scope="module")
def site(console: Console) -> Site:
    """The console's server as the PITR world's site (its institution and agent)."""
    return console.site


def _shot(page: Any, name: str, locale: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(artefacts() / f"pitr-{name}-{locale}-1366x768.png"))
    assert not page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"), name


def _wall(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def _to_the_point_step(console: Console, browser: Any, world: World, locale: str,
                       **options: Any) -> tuple[Any, Any, Problems, str]:
    console.users.setdefault("pitr-op", world.op)
    # a browser clock east of UTC: what is typed is the hospital's, what is sent is UTC
    context = console.context(browser, "pitr-op", locale=locale, timezone_id="Asia/Shanghai",
                              **options)
    page = context.new_page()
    problems = Problems(page)
    page.goto("/restore")
    settle(page)
    page.locator(".system-card", has_text="his").click()
    page.locator(".nav").get_by_role("button", name=WORDS[locale]["next"]).click()
    page.locator(".tl-window").first.wait_for()
    found = ZONE.search(page.locator("#restore-second-zone").inner_text())
    assert found, page.locator("#restore-second-zone").inner_text()
    return context, page, problems, found.group(1)


def _no_serious_violation(page: Any, step: str) -> None:
    if page.evaluate("typeof axe === 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(AXE_RUN)
    assert not violations, f"{step}: " + "\n".join(violations)


def _walk_to_confirm(page: Any, locale: str, zone: str, moment: datetime,
                     axe: bool = False) -> None:
    words = WORDS[locale]
    next_step = page.locator(".nav").get_by_role("button", name=words["next"])
    utc = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    page.locator(".step-point .chosen", has_text=utc).wait_for()
    _shot(page, "2-point", locale)
    if axe:
        _no_serious_violation(page, "the point in time")
    next_step.click()
    # the only database whose window holds the second, and the agent's only target
    page.locator(".source-card.is-checked", has_text=words["source"]).wait_for()
    page.locator(".targets .el-radio.is-checked", has_text="restores").wait_for()
    _shot(page, "3-source", locale)
    if axe:
        _no_serious_violation(page, "the database and target")
    next_step.click()
    summary = page.locator(".step-confirm")
    summary.get_by_text(f"{_wall(moment, zone)}").wait_for()
    assert utc in summary.inner_text() and zone in summary.inner_text()
    assert "restores" in summary.inner_text()
    _shot(page, "4-confirm", locale)


def _submit_and_follow(page: Any, world: World, locale: str, moment: datetime) -> None:
    with page.expect_response(lambda r: r.url.endswith("/restores")
                              and r.request.method == "POST") as posted:
        page.get_by_role("button", name=WORDS[locale]["start"]).click()
    assert posted.value.status == 202, posted.value.text()
    assert posted.value.request.post_data_json == {
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "plan": "his", "source": "postgres",
        "target": "restores"}
    job = job_ended(world.op, posted.value.json()["job"]["id"])
    assert job["status"] == "succeeded", job["error"]
    name = f"his-postgres-{moment:%Y%m%dT%H%M%SZ}"
    assert job["details"]["restore"]["data_dir"] == name
    assert (world.restores / name / "recovery.signal").exists()
    page.locator(".step-progress .el-alert--success", has_text=name).wait_for(timeout=60_000)
    _shot(page, "5-progress", locale)


def test_a_database_restored_to_a_second_typed_on_the_hospitals_clock(
        console: Console, browser: Any, world: World) -> None:
    context, page, problems, zone = _to_the_point_step(console, browser, world, "zh-CN")
    try:
        words = WORDS["zh-CN"]
        _shot(page, "1-timeline", "zh-CN")
        field = page.locator("#restore-second-text")
        # a day before the window: refused, with the window's bounds and its nearest end
        field.fill(_wall(world.first_row - timedelta(days=1), zone))
        field.press("Enter")
        problem = page.locator("#restore-second-problem")
        problem.get_by_text(words["outside"]).wait_for()
        assert words["nearest"] in problem.inner_text()
        assert page.locator(".nav .el-button--primary").is_disabled()
        _shot(page, "2-outside", "zh-CN")
        field.fill(_wall(world.moment, zone))
        field.press("Enter")
        problem.wait_for(state="detached")
        _walk_to_confirm(page, "zh-CN", zone, world.moment)
        _submit_and_follow(page, world, "zh-CN", world.moment)
        assert not problems.found, problems.found
    finally:
        context.close()


def test_in_english_the_windows_latest_second_from_the_keyboard(
        console: Console, browser: Any, world: World) -> None:
    # axe is injected as a script of its own: the console's CSP would refuse it (the
    # Chinese walk keeps the CSP)
    context, page, problems, zone = _to_the_point_step(console, browser, world, "en",
                                                       bypass_csp=True)
    try:
        page.locator(".tl-window").last.focus()
        page.keyboard.press("Enter")
        typed = page.locator("#restore-second-text").input_value()
        end = datetime.strptime(typed, "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=ZoneInfo(zone)).astimezone(UTC)
        # the newest window's end as the page read it (the agent may have moved it since)
        newest = max(parse_time(w["end"]) for w in world.op.call(
            "GET", f"/api/institutions/{HOSP}/systems/his/recovery").json()["windows"])
        assert world.moment < end <= newest, (typed, zone, newest)
        _walk_to_confirm(page, "en", zone, end, axe=True)
        _submit_and_follow(page, world, "en", end)
        assert not problems.found, problems.found
    finally:
        context.close()
