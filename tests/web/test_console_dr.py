"""A DR switch-over from the console, end to end: a real PostgreSQL primary/standby pair
with pgbouncer and the test HIS app in front (tests/dr_site.py, as
tests/server/test_server_dr_cli.py uses it), a real enrolled `medark agent run` of the
hospital holding the pair in its [dr.his] table (the same configuration is the
institution's on the server). An operator in chromium notes on the topology's list view
that `his` is served at site main, then on the DR page asks for a switch-over of `his`
through the two-step confirmation (the system's name typed), and watches the steps
drawer fill with step names and durations while the action runs (the east site's
service start waits for a gate file the test opens only once the drawer shows the
promotion) until the job succeeds. The topology, open all along in another page, moves
`his` to east without a reload once the agent has reported the new roles (every 6
heartbeats, 1 s apart here; the page reads again on its live feed's job end, and every
60 s: a DR report fires no live event of its own); the DR page shows east as primary
and healthy once the old primary streams as its standby. A failback through the API
leaves the pair as it began. Screenshots (zh-CN, 1366x768) go to the artefacts."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
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
from dr_site import Site as DrSite
from dr_site import his_site
from medark_command import MEDARK
from pg_server import can_run_servers
from pgbouncer_server import pgbouncer_bin
from server_site import run, wait_for
from test_server_dr_cli import config_text

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed"),
]

console = console_fixture()
browser = browser_fixture()

SYSTEM = "his"
DR_API = f"/api/institutions/{INSTITUTION}/dr"
ACTION_API = f"/api/institutions/{INSTITUTION}/systems/{SYSTEM}/dr"


@dataclass
class World:
    dr: DrSite
    sites: dict[str, str]
    """The sites' titles, by name (what the pages show)."""


def serving_site(console: Console) -> str | None:
    """The site the agent last reported as primary for the system (the DR API)."""
    for agent in console.users["operator"].call("GET", DR_API).json()["agents"]:
        for entry in agent["systems"]:
            if entry["system"] == SYSTEM:
                return next((n["site"] for n in entry.get("nodes", [])
                             if n.get("role") == "primary"), None)
    return None


@pytest.fixture(scope="module")
def world(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The pair, the institution's configuration and its agent, its DR status reported."""
    tmp = tmp_path_factory.mktemp("console-dr")
    env = {**console.site.env, "HOME": str(tmp / "home")}
    (tmp / "dr").mkdir()
    agent: subprocess.Popen[str] | None = None
    with his_site(tmp / "dr") as dr:
        try:
            config = tmp / "medark.toml"
            config.write_text(config_text(dr), encoding="utf-8")
            imported = run(console.site.env, "server", "config", "import", "--catalog",
                           console.site.catalog, "--institution", INSTITUTION, str(config))
            assert imported.returncode == 0, imported.stderr
            token = console.users["sysadmin"].call(
                "POST", "/api/agents/enrolment-tokens",
                json={"institution": INSTITUTION, "hours": 1, "name": "his-host"})
            assert token.status_code == 201, token.text
            state = tmp / "agent"
            enrolled = run(env, "agent", "enroll", "--server", console.url, "--token",
                           token.json()["secret"], "--state-dir", str(state))
            assert enrolled.returncode == 0, enrolled.stderr
            agent = subprocess.Popen(
                [MEDARK, "agent", "run", "--state-dir", str(state), "--config", str(config),
                 "--heartbeat", "1", "--wait", "2", "--grace", "20"],
                env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert wait_for("the agent's DR status", lambda: serving_site(console),
                            timeout=120) == "main"
            topology = console.users["operator"].call("GET", "/api/topology").json()
            sites = {n["name"]: n["title"] for n in topology["nodes"] if n["type"] == "site"}
            assert set(sites) == {"main", "east"}, sites
            yield World(dr, sites)
        finally:
            if agent is not None:
                if agent.poll() is None:
                    agent.send_signal(signal.SIGTERM)
                _out, err = agent.communicate(timeout=60)
                assert "Traceback" not in err, err


def _shot(page: Any, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(artefacts() / f"dr-{name}-zh-CN-1366x768.png"))
    assert not page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"), name


def _topology_site(page: Any, title: str) -> Any:
    """The list view's `his` row group showing the system at the site titled `title`."""
    group = page.locator("table.links tbody").filter(
        has=page.locator("th.system-cell", has_text=re.compile(rf"^\s*{SYSTEM}\b")))
    return group.locator("th.system-cell .sub", has_text=f"· {title}")


def test_a_switchover_from_the_dr_page_moves_the_topology(
        console: Console, browser: Any, world: World) -> None:
    pair, work = world.dr.pair, world.dr.work
    main, east = world.sites["main"], world.sites["east"]
    context = console.context(browser, "operator")
    try:
        topology = context.new_page()
        topology_problems = Problems(topology)
        topology.goto("/topology")
        settle(topology)
        topology.locator(".view-switch").get_by_text("列表").click()
        _topology_site(topology, main).wait_for()
        assert not _topology_site(topology, east).count()

        page = context.new_page()
        problems = Problems(page)
        page.goto("/dr")
        settle(page)
        row = page.locator(".dr-table .el-table__body-wrapper .el-table__row").filter(
            has=page.locator(".dr-system", has_text=SYSTEM))
        row.locator(".dr-node", has=page.locator(".dr-role-primary")).filter(
            has_text=main).wait_for()
        _shot(page, "1-status")

        # fixed columns render the actions cell twice: the visible one is clicked
        page.locator(".el-table__row .dr-actions").get_by_role(
            "button", name="计划内切换").locator("visible=true").first.click()
        page.get_by_role("menuitem", name="计划内切换").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("第 1 步，共 2 步").wait_for()
        dialog.get_by_text(f"此操作会把系统 {SYSTEM} 在站点之间切换").wait_for()
        _shot(page, "2-confirm-step-1")
        dialog.get_by_role("button", name="下一步").click()
        send = dialog.get_by_role("button", name="执行")
        name_box = dialog.locator("#dr-confirm-name")
        name_box.fill(SYSTEM.upper())
        dialog.get_by_text("输入的名称与系统名称不一致").wait_for()
        assert send.is_disabled()
        name_box.fill(SYSTEM)
        _shot(page, "3-confirm-step-2")
        with page.expect_response(lambda r: r.url.endswith(ACTION_API)
                                  and r.request.method == "POST") as posted:
            send.click()
        assert posted.value.status == 202, posted.value.text()
        job_id = posted.value.json()["job"]["id"]
        assert posted.value.json()["job"]["kind"] == "dr_switchover"

        drawer = page.locator(".el-drawer", has_text=f"任务 #{job_id} 的步骤")
        steps = drawer.locator("ol.steps li.step:not(.step-running)")
        # live: the action is held at the east site's service start until the gate opens
        promoted = steps.filter(has=page.locator(".step-name", has_text="promote standby"))
        promoted.wait_for(timeout=180_000)
        drawer.locator(".step-running").wait_for()
        assert console.users["operator"].call(
            "GET", f"/api/jobs/{job_id}").json()["job"]["status"] == "running"
        assert promoted.locator(".step-result").inner_text().strip() == "成功"
        assert re.search(r"\d", promoted.locator(".step-seconds").inner_text())
        _shot(page, "4-steps-running")
        (work / "gate").touch()

        drawer.locator(".steps-head").get_by_text("成功").wait_for(timeout=180_000)
        drawer.locator(".steps-total").wait_for()
        job = wait_job(console, job_id)
        assert job["status"] == "succeeded", job["error"]
        names = [s["name"] for s in job["details"]["dr_action"]["steps"]]
        shown = [n.strip() for n in steps.locator(".step-name").all_inner_texts()]
        assert shown == names, (shown, names)
        seconds = steps.locator(".step-seconds").all_inner_texts()
        assert len(seconds) == len(names) and all(re.search(r"\d", s) for s in seconds)
        assert not drawer.locator(".step-running").count()
        _shot(page, "5-steps-done")
        assert {pair.standby.port: pair.standby.sql("SELECT pg_is_in_recovery()"),
                pair.primary.port: pair.primary.sql("SELECT pg_is_in_recovery()")} == {
                    pair.standby.port: "f", pair.primary.port: "t"}

        # the topology, in the other page and never reloaded: it reads again at the
        # job's end (its live feed) and every 60 s; the agent's report of the new roles
        # may come after the job's end and fires no live event of its own
        _topology_site(topology, east).wait_for(timeout=150_000)
        # the DR page polls: east the primary, and healthy once the old primary
        # streams as its standby (the agent's next report)
        drawer.get_by_role("button", name=re.compile("关闭|Close")).click()
        row.locator(".dr-node", has=page.locator(".dr-role-primary")).filter(
            has_text=east).wait_for(timeout=120_000)
        row.locator(".dr-state", has_text="正常").wait_for(timeout=120_000)
        row.locator(".dr-node", has=page.locator(".dr-role:not(.dr-role-primary)")).filter(
            has_text=main).wait_for()
        _shot(page, "6-status-after")
        assert serving_site(console) == "east"
        assert not _topology_site(topology, main).count()
        topology.bring_to_front()
        _shot(topology, "7-topology-after")
        assert not problems.found, problems.found
        assert not topology_problems.found, topology_problems.found
    finally:
        context.close()

    # back as it began: a failback through the API, confirmed with the name
    asked = console.users["operator"].call("POST", ACTION_API,
                                           json={"action": "failback", "confirm": SYSTEM})
    assert asked.status_code == 202, asked.text
    back = wait_job(console, asked.json()["job"]["id"], timeout=300)
    assert back["status"] == "succeeded", back["error"]
    assert {pair.primary.port: pair.primary.sql("SELECT pg_is_in_recovery()"),
            pair.standby.port: pair.standby.sql("SELECT pg_is_in_recovery()")} == {
                pair.primary.port: "f", pair.standby.port: "t"}
