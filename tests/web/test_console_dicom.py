"""The restore wizard's study search end to end: a real `medark agent` backs up a small
PACS tree of synthetic DICOM files (tests/dicom_samples.py; its backup records the
DICOM catalog); an operator walks the wizard in chromium, opens the "影像检查检索" tab
beside the file browser, searches by a Chinese patient name, chooses one study, and
the agent restores it (`medark dicom restore`) into its declared target: the restored
files are the study's originals, byte for byte, and nothing else. The search is
screenshotted in zh-CN and en at 1366x768 and checked by axe."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console_site import (
    AXE,
    INSTITUTION,
    Console,
    Problems,
    artefacts,
    browser_fixture,
    console_fixture,
    settle,
    wait_job,
)
from dicom_samples import SampleTree, uid, write_sample_tree
from server_site import import_config, new_repository, pacs_config, running_agent, wait_for
from test_console_pages import AXE_RUN

console = console_fixture()
browser = browser_fixture()

WORDS = {"zh-CN": {"next": "下一步", "tab": "影像检查检索", "name": "患者姓名（可输入部分）",
                   "search": "检索", "start": "开始恢复"},
         "en": {"next": "Next", "tab": "Study search", "name": "Patient name (or part of it)",
                "search": "Search", "start": "Start the restore"}}


@dataclass
class World:
    tree: SampleTree
    scratch: Path


@pytest.fixture(scope="module")
def world(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The hospital's agent running, one backup of its PACS tree done (with its DICOM
    catalog)."""
    tmp = tmp_path_factory.mktemp("dicom")
    env = {**console.site.env, "HOME": str(tmp / "home")}
    data, scratch = tmp / "pacs", tmp / "scratch"
    tree = write_sample_tree(data)
    scratch.mkdir()
    password_file = console.site.tmp / "repository-passwords" / "pacs-dicom.pass"
    repo = tmp / "repo"
    new_repository(env, repo, password_file)
    config = tmp / "medark.toml"
    config.write_text(pacs_config(repo, password_file, data, more=(
        f'\n[agent]\nrestore_targets = {{ scratch = "{scratch}" }}\n')))
    import_config(console.site.env, console.site.catalog, INSTITUTION, config)
    with running_agent(env, console.url, console.users["sysadmin"], INSTITUTION,
                       "dicom-agent", tmp / "state", config):
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
        yield World(tree, scratch)


def _to_search(page: Any, locale: str) -> None:
    """From /restore to the study search of the system's latest snapshot."""
    words = WORDS[locale]
    page.goto("/restore")
    settle(page)
    next_step = page.locator(".nav").get_by_role("button", name=words["next"])
    page.locator(".system-card", has_text="pacs").click()
    next_step.click()
    page.locator(".tl-point").last.click()
    next_step.click()
    page.get_by_role("tab", name=words["tab"]).click()
    page.locator(f'.dicom-filters input[aria-label="{words["name"]}"]').wait_for()


def _search(page: Any, locale: str, name: str) -> None:
    words = WORDS[locale]
    page.locator(f'.dicom-filters input[aria-label="{words["name"]}"]').fill(name)
    with page.expect_response(lambda r: "/dicom?" in r.url) as replied:
        page.locator(".dicom-filters").get_by_role("button", name=words["search"]).click()
    assert replied.value.status == 200, replied.value.text()


def _check(page: Any, locale: str) -> None:
    """No sideways scroll at 1366x768, no serious accessibility violation; a
    screenshot."""
    page.wait_for_timeout(300)
    page.screenshot(path=str(artefacts() / f"restore-dicom-{locale}-1366x768.png"))
    assert not page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth")
    if page.evaluate("typeof axe === 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(AXE_RUN)
    assert not violations, "\n".join(violations)


def test_a_study_found_by_a_chinese_name_is_restored(console: Console, browser: Any,
                                                     world: World) -> None:
    words = WORDS["zh-CN"]
    context = console.context(browser, "operator", bypass_csp=True)
    try:
        page = context.new_page()
        problems = Problems(page)
        _to_search(page, "zh-CN")
        _search(page, "zh-CN", "张")
        rows = page.locator(".dicom-table .study-row")
        rows.first.wait_for()
        assert rows.count() == 2  # 张三's two studies, not 李四's
        chest = rows.filter(has_text="胸部CT平扫")
        assert "ACC1001" in chest.inner_text() and "2026-11-03" in chest.inner_text()
        # the keyboard opens the study's series
        chest.locator(".expander").focus()
        page.keyboard.press("Enter")
        assert page.locator(".dicom-table .series-row").count() == 2
        chest.locator("input.pick").click()
        page.get_by_text("已选 1 个检查").wait_for()
        assert page.locator(".targets .el-radio.is-checked", has_text="scratch").count() == 1
        _check(page, "zh-CN")
        page.locator(".nav").get_by_role("button", name=words["next"]).click()
        page.locator(".step-confirm").get_by_text(uid(1)).wait_for()
        with page.expect_response(lambda r: r.url.endswith("/restores")
                                  and r.request.method == "POST") as posted:
            page.get_by_role("button", name=words["start"]).click()
        assert posted.value.status == 202, posted.value.text()
        assert posted.value.request.post_data_json["dicom"] == [
            {"study": uid(1), "series": []}]
        job_id = posted.value.json()["job"]["id"]
        page.locator(".step-progress .el-alert--success").wait_for(timeout=120_000)
        images = page.locator(".step-progress .outcome dt", has_text="恢复影像数")
        assert images.locator("xpath=following-sibling::dd[1]").inner_text() == "5"
        assert not problems.found, problems.found
    finally:
        context.close()
    job = wait_job(console, job_id)
    assert job["status"] == "succeeded" and job["kind"] == "restore", job
    assert job["details"]["restore"]["instances"] == 5, job["details"]
    study = world.tree.study(uid(1))
    for instance in study:
        original = world.tree.path(instance)
        restored = world.scratch / original.relative_to("/")
        assert restored.read_bytes() == original.read_bytes(), instance.relpath
    # only the chosen study came back
    assert sorted(p for p in world.scratch.rglob("*") if p.is_file()) == sorted(
        world.scratch / world.tree.path(i).relative_to("/") for i in study)


def test_the_study_search_in_english(console: Console, browser: Any, world: World) -> None:
    context = console.context(browser, "operator", locale="en", bypass_csp=True)
    try:
        page = context.new_page()
        problems = Problems(page)
        _to_search(page, "en")
        _search(page, "en", "doe")
        row = page.locator(".dicom-table .study-row")
        row.first.wait_for()
        assert row.count() == 1 and "Knee MR" in row.inner_text()
        row.locator(".expander").click()
        page.locator(".dicom-table .series-row input.pick").first.click()
        page.get_by_text("One study selected").wait_for()
        page.get_by_text("one series", exact=True).wait_for()
        _check(page, "en")
        assert not problems.found, problems.found
    finally:
        context.close()
