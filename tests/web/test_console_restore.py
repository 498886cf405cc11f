"""The restore wizard end to end: a real `medark agent` of the hospital backs up a
small tree (its configuration, with an `[agent] restore_targets` table, is the
institution's on the server); an operator walks the console's wizard in chromium —
the system, the snapshot on the timeline, one file found through the snapshot's
directories, the agent's declared target, the summary — and follows the job to its
success; the restored file's bytes are the original's. A regional center's operator
without a grant sees the server's grant_required said with a grant request. Each step
is screenshotted (zh-CN, 1366x768) into the artefacts."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console_site import (
    INSTITUTION,
    Console,
    Problems,
    artefacts,
    browser_fixture,
    console_fixture,
    settle,
    wait_job,
)
from server_site import import_config, new_repository, pacs_config, running_agent, wait_for

console = console_fixture()
browser = browser_fixture()


@dataclass
class World:
    data: Path
    scratch: Path


@pytest.fixture(scope="module")
def world(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The hospital's agent running, one backup of its tree done."""
    tmp = tmp_path_factory.mktemp("restore")
    env = {**console.site.env, "HOME": str(tmp / "home")}
    data, scratch = tmp / "data", tmp / "scratch"
    for n in range(8):
        (data / f"series-{n % 2}").mkdir(parents=True, exist_ok=True)
        (data / f"series-{n % 2}" / f"image-{n}.dcm").write_bytes(os.urandom(4096 + n))
    scratch.mkdir()
    # the server reads the repository's password from its own directory (beside its key)
    password_file = console.site.tmp / "repository-passwords" / "pacs.pass"
    repo = tmp / "repo"
    new_repository(env, repo, password_file)
    config = tmp / "medark.toml"
    config.write_text(pacs_config(repo, password_file, data, more=(
        f'\n[agent]\nrestore_targets = {{ scratch = "{scratch}" }}\n')))
    import_config(console.site.env, console.site.catalog, INSTITUTION, config)
    sysadmin = console.users["sysadmin"]
    with running_agent(env, console.url, sysadmin, INSTITUTION, "restore-agent",
                       tmp / "state", config):
        operator = console.users["operator"]
        wait_for("the agent's restore targets", lambda: [
            a for a in operator.call(
                "GET", f"/api/institutions/{INSTITUTION}/systems/pacs/recovery"
            ).json().get("agents", []) if a["targets"] == ["scratch"]])
        backup = operator.call("POST", "/api/jobs", json={
            "institution": INSTITUTION, "plan": "pacs", "kind": "backup"})
        assert backup.status_code == 202, backup.text
        done = wait_job(console, backup.json()["job"]["id"])
        assert done["status"] == "succeeded", done["error"]
        yield World(data, scratch)


def _shot(page: Any, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(artefacts() / f"restore-{name}-zh-CN-1366x768.png"))
    assert not page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"), name


def test_restore_one_file_through_the_wizard(console: Console, browser: Any,
                                             world: World) -> None:
    original = world.data / "series-1" / "image-3.dcm"
    context = console.context(browser, "operator")
    try:
        page = context.new_page()
        problems = Problems(page)
        page.goto("/restore")
        settle(page)
        _shot(page, "1-system")
        next_step = page.locator(".nav").get_by_role("button", name="下一步")
        page.locator(".system-card", has_text="pacs").click()
        next_step.click()
        page.locator(".tl-point").last.click()
        page.get_by_text("已选时间点：").wait_for()
        _shot(page, "2-point")
        next_step.click()
        for part in original.parent.parts[1:]:
            page.locator(f'button[aria-label="打开目录 {part}"]').click()
            page.locator(".crumbs", has_text=part).wait_for()
        row = page.locator(".step-items .el-table__row").filter(
            has=page.locator(".entry-name", has_text=re.compile(r"^image-3\.dcm$")))
        row.locator(".el-checkbox").click()
        page.get_by_text("已选 1 项").wait_for()
        # the only declared target is chosen for the operator
        assert page.locator(".targets .el-radio.is-checked", has_text="scratch").count() == 1
        _shot(page, "3-items")
        next_step.click()
        page.locator(".step-confirm").get_by_text(str(original)).wait_for()
        _shot(page, "4-confirm")
        with page.expect_response(lambda r: r.url.endswith("/restores")
                                  and r.request.method == "POST") as posted:
            page.get_by_role("button", name="开始恢复").click()
        assert posted.value.status == 202, posted.value.text()
        job_id = posted.value.json()["job"]["id"]
        page.locator(".step-progress .el-alert--success").wait_for(timeout=120_000)
        page.get_by_text("文件已恢复到代理的恢复目标“scratch”").wait_for()
        _shot(page, "5-progress")
        assert not problems.found, problems.found
    finally:
        context.close()
    job = wait_job(console, job_id)
    assert job["status"] == "succeeded" and job["kind"] == "restore", job
    restored = world.scratch / original.relative_to("/")
    assert restored.read_bytes() == original.read_bytes()
    # only the chosen file came back
    assert [p.name for p in world.scratch.rglob("*.dcm")] == ["image-3.dcm"]


def test_a_center_operator_without_a_grant_is_told_and_may_request_one(
        console: Console, browser: Any, world: World) -> None:
    console.users["center-operator"] = console.site.new_user("center-op", ["operator"],
                                                             "center")
    context = console.context(browser, "center-operator")
    try:
        page = context.new_page()
        problems = Problems(page)
        page.goto("/restore")
        settle(page)
        page.locator(".inst-select").click()
        page.get_by_role("option", name=re.compile(INSTITUTION)).click()
        page.locator(".system-card", has_text="pacs").click()
        page.locator(".nav").get_by_role("button", name="下一步").click()
        notice = page.locator(".grant-notice")
        notice.get_by_text("需要跨机构授权").wait_for()
        _shot(page, "6-grant-required")
        notice.get_by_role("button", name="申请授权").click()
        dialog = page.get_by_role("dialog")
        dialog.locator("textarea").fill("会诊：调阅影像")
        with page.expect_response(lambda r: r.url.endswith("/api/grants")
                                  and r.request.method == "POST") as posted:
            dialog.get_by_role("button", name="提交申请").click()
        assert posted.value.status == 201, posted.value.text()
        grant = posted.value.json()["grant"]
        notice.get_by_text("等待 hosp-a 的安全管理员审批").wait_for()
        assert not problems.found, problems.found
    finally:
        context.close()
    assert grant["state"] == "requested" and grant["scope"] == {"systems": ["pacs"]}, grant
