"""A backup run from the console: a real `medark agent` of the hospital, enrolled with
its single-use token and holding a plan of a small tree (the same configuration is the
institution's on the server), takes the job an operator queues with the Jobs page's
"run now"; the page shows the job's progress reach 100 % and its success from the live
feed (/api/events: no read of the list meanwhile), and the snapshot is in the agent's
repository. A link with ?plan= and ?status= opens the page with those filters."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from console_site import (
    INSTITUTION,
    Console,
    Problems,
    browser_fixture,
    console_fixture,
    settle,
)
from medark_command import PASSWORD
from server_site import new_repository, pacs_config, run, running_agent, wait_for

console = console_fixture()
browser = browser_fixture()


@pytest.fixture(scope="module")
def agent(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The hospital's agent, running; its repository."""
    tmp = tmp_path_factory.mktemp("agent")
    env = {**console.site.env, "HOME": str(tmp / "home")}
    data = tmp / "data"
    for n in range(20):
        (data / f"series-{n % 4}").mkdir(parents=True, exist_ok=True)
        (data / f"series-{n % 4}" / f"image-{n}.dcm").write_bytes(os.urandom(64 * 1024))
    repo = tmp / "repo"
    new_repository(env, repo, tmp / "password")
    document = pacs_config(repo, tmp / "password", data)
    (tmp / "medark.toml").write_text(document)
    sysadmin = console.users["sysadmin"]
    put = sysadmin.call("PUT", f"/api/institutions/{INSTITUTION}/config", json={
        "document": document, "comment": "the console's test", "base_version": None})
    assert put.status_code == 200, put.text
    with running_agent(env, console.url, sysadmin, INSTITUTION, "pacs-agent", tmp / "state",
                       tmp / "medark.toml"):
        wait_for("the agent's plans", lambda: [
            a for a in sysadmin.call("GET", "/api/agents").json()["agents"]
            if a["name"] == "pacs-agent" and a["plans"] == ["pacs"]])
        yield repo


def test_run_a_backup_and_watch_it_reach_100_percent(console: Console, browser: Any,
                                                       agent: Path) -> None:
    context = console.context(browser, "operator", locale="en")
    try:
        page = context.new_page()
        problems = Problems(page)
        page.goto("/jobs")
        settle(page)
        page.get_by_role("button", name="Run now").click()
        dialog = page.get_by_role("dialog")
        submit = dialog.get_by_role("button", name="Run", exact=True)
        # the plan is the institution's first, filled in once /api/plans answers
        page.wait_for_function("b => !b.disabled", arg=submit.element_handle())
        with page.expect_response(lambda r: r.url.endswith("/api/jobs")
                                  and r.request.method == "POST") as posted:
            submit.click()
        reply = posted.value
        assert reply.status == 202, reply.text()
        job_id = reply.json()["job"]["id"]
        row = page.locator(".el-table__row").filter(
            has=page.get_by_role("button", name=f"Job #{job_id}", exact=True))
        row.wait_for()
        # from here on the row moves with the live feed's events, not a read of the list
        reads: list[str] = []
        page.on("request", lambda request: request.method == "GET" and urlsplit(
            request.url).path == "/api/jobs" and reads.append(request.url))
        bar = row.get_by_role("progressbar")
        seen: list[str] = []

        def reached() -> bool:
            value = bar.get_attribute("aria-valuenow") if bar.count() else None
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)
            return value == "100"
        wait_for(f"job {job_id} at 100 % on the page", reached, timeout=120, every=0.2)
        row.get_by_text("Succeeded").wait_for()
        assert seen[-1] == "100" and all(0 <= float(v) <= 100 for v in seen), seen
        assert not reads, reads
        assert not problems.found, problems.found
    finally:
        context.close()
    job = console.users["operator"].call("GET", f"/api/jobs/{job_id}").json()["job"]
    assert job["status"] == "succeeded" and job["agent"] == "pacs-agent", job
    assert job["requested_by"] == console.users["operator"].name
    listed = run({**console.site.env, "MEDARK_PASSWORD": PASSWORD}, "--json", "snapshots",
                 "--repo", str(agent))
    assert job["snapshot_id"][:8] in listed.stdout, listed.stdout


def test_a_link_opens_the_jobs_of_one_plan(console: Console, browser: Any,
                                           agent: Path) -> None:
    operator = console.users["operator"]
    done = [j for j in operator.call("GET", "/api/jobs", params={"plan": "pacs"}).json()["jobs"]
            if j["status"] == "succeeded"]
    assert done, "the first test's job"
    context = console.context(browser, "operator", locale="en")
    try:
        page = context.new_page()
        problems = Problems(page)
        page.goto("/jobs?plan=pacs&status=succeeded")
        settle(page)
        filters = page.locator("form.filters")
        filters.get_by_text("pacs", exact=True).wait_for()  # the selects show the query's
        filters.get_by_text("Succeeded", exact=True).wait_for()
        for listed in done:
            page.get_by_role("button", name=f"Job #{listed['id']}", exact=True).wait_for()
        assert page.locator(".el-table__row").count() == len(done)
        page.goto("/jobs?plan=no-such-plan")
        settle(page)
        page.get_by_text("No jobs match").wait_for()
        # the reset empties the filters and the URL's query with them
        page.get_by_role("button", name="Reset").click()
        page.get_by_role("button", name=f"Job #{done[0]['id']}", exact=True).wait_for()
        assert not parse_qs(urlsplit(page.url).query).get("plan"), page.url
        assert not problems.found, problems.found
    finally:
        context.close()
