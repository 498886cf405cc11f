"""`medark server` dashboard, topology and live events over real HTTP on SQLite and
PostgreSQL catalogs. The agent's side goes through the agent API as `medark agent`
sends it (enrolment, heartbeats with the DR status, its own schedule's results, a job
claimed, its progress and result); the figures, the scope of each account, and the live
events (a job's state, an agent revoked, an alert resolved, a missed event replayed after
a reconnection) are checked as the console would see them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from server_site import (
    FILES_CONFIG,
    Site,
    User,
    code_of,
    first_login,
    lis_pair_config,
    lis_pair_status,
    site_fixture,
    start,
)

from medark.catalog.store import Catalog
from medark.server import dashboard_facts as facts

site = site_fixture()

WAIT = 60.0
"""Seconds a test waits for an event before it gives up (no timing is asserted)."""
CONFIG_A = lis_pair_config(drill="0 3 1 * *", more="""
[hospital]
tier = "三甲"
level = 3

[repositories.offsite]
site = "east"
url = "sftp://backup@10.0.0.9/medark"

[systems.his]
name = "HIS"
owner = "IT"
criticality = "core"
[[systems.his.sources]]
type = "files"
paths = ["/srv/his"]

[systems.pacs]
owner = "IT"
[[systems.pacs.sources]]
type = "files"
paths = ["/srv/pacs"]

[systems.emr]
owner = "IT"
[[systems.emr.sources]]
type = "files"
paths = ["/srv/emr"]

[plans.his]
system = "his"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "1h"
retention = { daily = 7 }
copies = [{ to = "offsite", schedule = "0 3 * * *" }]
restore_test = { schedule = "0 5 * * 0" }

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "4h"
retention = { daily = 7 }

[plans.emr]
system = "emr"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "1h"
retention = { daily = 7 }
""")


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def result(local_id: int, plan: str, kind: str, status: str, hours: float,
           details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job of the agent's own schedule, as `medark agent` uploads it."""
    return {"local_id": local_id, "plan": plan, "kind": kind, "status": status,
            "started_at": ago(hours=hours), "finished_at": ago(hours=hours - 0.1),
            "error": None if status == "succeeded" else "it broke",
            "snapshot_id": "ab" * 32 if kind == "backup" and status == "succeeded"
            else None, "details": details}


DR_STATUS = lis_pair_status(lag_bytes=4096, lag_seconds=0.5, last_drill={
    "id": 3, "system": "lis", "kind": "drill", "status": "succeeded",
    "started_at": ago(days=2), "finished_at": ago(days=2, seconds=-40),
    "switch_seconds": 12.5, "steps": []})


class Agent:
    """The agent's side of the API, with its own credential."""

    def __init__(self, site: Site, institution: str, name: str) -> None:
        token = site.user("sysadmin").call("POST", "/api/agents/enrolment-tokens", json={
            "institution": institution}).json()["secret"]
        self.client = site.server.client()
        made = self.client.post("/api/agent/enroll", json={
            "token": token, "name": name, "host": f"{name}.local", "version": "1"})
        assert made.status_code == 201, made.text
        self.client.headers["Authorization"] = f"Bearer {made.json()['credential']}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.client.request(method, path, json=body)
        assert answer.status_code in (200, 204), answer.text
        return answer.json() if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def people(site: Site) -> dict[str, Any]:
    sysadmin = site.user("sysadmin")
    for name, document in (("hosp-a", CONFIG_A), ("hosp-b", FILES_CONFIG)):
        made = sysadmin.call("POST", "/api/institutions", json={"name": name})
        assert made.status_code == 201, made.text
        saved = sysadmin.call("PUT", f"/api/institutions/{name}/config", json={
            "document": document, "comment": "first", "base_version": None})
        assert saved.status_code == 200, saved.text
    ready: dict[str, Any] = {"sysadmin": sysadmin, "secadmin": site.user("secadmin")}
    for name, institution, role in (("dash-view-a", "hosp-a", "viewer"),
                                    ("dash-op-a", "hosp-a", "operator"),
                                    ("dash-op-b", "hosp-b", "operator"),
                                    ("dash-view-center", "center", "viewer")):
        made = ready["secadmin"].call("POST", "/api/users", json={
            "name": name, "institution": institution, "roles": [role]})
        assert made.status_code == 201, made.text
        ready[name] = first_login(site.server, name, made.json()["one_time_password"])
    agent = Agent(site, "hosp-a", "agent-a")
    agent.call("POST", "/api/agent/heartbeat", {
        "version": "1", "plans": ["his", "pacs", "lis", "emr"], "dr_systems": ["lis"],
        "dr_status": DR_STATUS})
    recorded = agent.call("POST", "/api/agent/results", {"results": [
        result(1, "his", "backup", "succeeded", 2),
        result(2, "his", "copy:offsite", "succeeded", 1.5),
        result(3, "his", "restore_test", "succeeded", 1, {"rto_seconds": 120.0}),
        result(4, "pacs", "backup", "succeeded", 72),
        result(5, "pacs", "backup", "failed", 20),
        result(6, "lis", "backup", "succeeded", 3)]})
    assert recorded == {"recorded": 6, "duplicates": 0}
    ready["agent"] = agent
    ready["site"] = site
    return ready


def systems_of(answer: httpx.Response) -> dict[str, dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return {f"{s['institution']}/{s['name']}": s for s in answer.json()["systems"]}


def test_the_dashboard_judges_each_system_from_the_agents_reports(
        people: dict[str, Any]) -> None:
    answer = people["dash-view-a"].call("GET", "/api/dashboard")
    found = systems_of(answer)
    assert set(found) == {"hosp-a/his", "hosp-a/pacs", "hosp-a/lis", "hosp-a/emr"}
    his = found["hosp-a/his"]
    assert his["title"] == "HIS" and his["criticality"] == "core"
    # two hours old against the plan's day: within it, but over 三甲's 10 minutes
    assert 7000 < his["rpo"]["achieved_seconds"] < 7600
    assert his["rpo"]["target_seconds"] == 86400 and his["rpo"]["target_source"] == "plan"
    assert his["rpo"]["tier_seconds"] == 600 and his["rpo"]["log_streamed"] is False
    assert his["status"] == "warning" and his["reasons"] == ["rpo_over_tier"]
    assert his["last_backup"]["status"] == "succeeded"
    assert his["last_backup"]["snapshot_id"] == "ab" * 32
    assert his["restore_test"]["rto_seconds"] == 120.0
    assert his["restore_test"]["rto_target_seconds"] == 3600
    [copy] = his["offsite"]
    assert copy["target"] == "offsite" and copy["site"] == "east" and copy["offsite"]
    assert copy["state"] == "ok" and 5000 < copy["lag_seconds"] < 5800
    assert his["offsite_lag_seconds"] == copy["lag_seconds"] and his["dr"] is None
    # the newest backup failed and the last good one is three days old
    pacs = found["hosp-a/pacs"]
    assert pacs["status"] == "critical"
    assert pacs["reasons"] == ["rpo_breached", "backup_failed"]
    assert pacs["last_backup"]["status"] == "failed"
    assert pacs["last_backup"]["error"] == "it broke"
    assert pacs["restore_test"] is None and pacs["offsite"] == []
    assert pacs["offsite_lag_seconds"] is None
    # the standby as the agent reported it, the drill it remembered
    lis = found["hosp-a/lis"]
    dr = lis["dr"]
    assert dr["state"] == "ok" and dr["lag_bytes"] == 4096 and dr["lag_seconds"] == 0.5
    assert dr["standby_site"] == "east" and dr["current_primary_site"] == "main"
    assert dr["agent"] == "agent-a" and dr["reported_at"] is not None
    assert dr["last_drill"]["status"] == "succeeded"
    assert dr["last_drill"]["seconds"] == 12.5
    assert "drill_overdue" not in lis["reasons"]
    # nothing reported yet: unknown, never a made-up figure
    emr = found["hosp-a/emr"]
    assert emr["status"] == "unknown" and emr["reasons"] == ["no_jobs"]
    assert emr["rpo"]["achieved_seconds"] is None and emr["last_backup"] is None
    summary = answer.json()["summary"]
    assert summary == {"systems": 4, "ok": 0, "warning": 2, "critical": 1, "unknown": 1,
                       "open_alerts": 0}
    [inst] = answer.json()["institutions"]
    assert inst["name"] == "hosp-a" and inst["timezone"] == "Asia/Shanghai"
    assert inst["agents"] == {"online": 1, "offline": 0} and inst["problem"] is None


def test_each_account_sees_its_scope(people: dict[str, Any], site: Site) -> None:
    center = people["dash-view-center"].call("GET", "/api/dashboard")
    names = {i["name"]: i for i in center.json()["institutions"]}
    assert {"hosp-a", "hosp-b", "center"} <= set(names)
    assert names["center"]["problem"]["code"] == "no_configuration"
    assert "hosp-b/his" in systems_of(center) and "hosp-a/pacs" in systems_of(center)
    narrowed = people["dash-view-center"].call("GET", "/api/dashboard?institution=hosp-b")
    assert set(systems_of(narrowed)) == {"hosp-b/his"}
    own = people["dash-op-b"].call("GET", "/api/dashboard")
    assert set(systems_of(own)) == {"hosp-b/his"}
    assert [i["name"] for i in own.json()["institutions"]] == ["hosp-b"]
    for path in ("/api/dashboard", "/api/topology", "/api/events"):
        refused = people["dash-op-b"].call("GET", f"{path}?institution=hosp-a")
        assert refused.status_code == 403 and code_of(refused) == "out_of_scope", path
    unknown = people["dash-view-center"].call("GET", "/api/dashboard?institution=nowhere")
    assert unknown.status_code == 404 and code_of(unknown) == "not_found"
    # topology: the configuration's readers; the security administrator reads the
    # dashboard (as it reads jobs and alerts) but not the configuration's topology
    secadmin = people["secadmin"]
    assert secadmin.call("GET", "/api/dashboard").status_code == 200
    refused = secadmin.call("GET", "/api/topology")
    assert refused.status_code == 403 and code_of(refused) == "forbidden"
    anonymous = site.server.client()
    for path in ("/api/dashboard", "/api/topology", "/api/events"):
        response = anonymous.get(path)
        assert response.status_code == 401 and code_of(response) == "not_authenticated"


def test_the_topology_links_systems_repositories_copies_and_standbys(
        people: dict[str, Any]) -> None:
    answer = people["dash-view-a"].call("GET", "/api/topology")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    nodes = {n["id"]: n for n in body["nodes"]}
    links = {link["id"]: link for link in body["links"]}
    assert {"institution:hosp-a", "site:hosp-a/main", "site:hosp-a/east",
            "system:hosp-a/his", "repository:hosp-a/local", "repository:hosp-a/offsite",
            "standby:hosp-a/lis"} <= set(nodes)
    assert not any(n["institution"] == "hosp-b" for n in nodes.values())
    assert nodes["site:hosp-a/east"]["parent"] == "institution:hosp-a"
    assert nodes["repository:hosp-a/offsite"]["parent"] == "site:hosp-a/east"
    assert nodes["repository:hosp-a/offsite"]["url"] == "sftp://backup@10.0.0.9/medark"
    assert nodes["system:hosp-a/pacs"]["status"] == "critical"
    assert nodes["system:hosp-a/his"]["parent"] == "site:hosp-a/main"
    backup = links["backup:hosp-a/his"]
    assert (backup["source"], backup["target"]) == ("system:hosp-a/his",
                                                    "repository:hosp-a/local")
    assert backup["state"] == "ok" and 7000 < backup["lag_seconds"] < 7600
    assert links["backup:hosp-a/pacs"]["state"] == "broken"
    assert links["backup:hosp-a/emr"]["state"] == "unknown"
    assert links["backup:hosp-a/emr"]["lag_seconds"] is None
    copy = links["copy:hosp-a/his>offsite"]
    assert (copy["source"], copy["target"]) == ("repository:hosp-a/local",
                                                "repository:hosp-a/offsite")
    assert copy["offsite"] and copy["state"] == "ok"
    standby = links["replication:hosp-a/lis"]
    assert (standby["source"], standby["target"]) == ("system:hosp-a/lis",
                                                      "standby:hosp-a/lis")
    assert standby["state"] == "ok" and standby["lag_bytes"] == 4096
    assert nodes["standby:hosp-a/lis"]["site"] == "east"


class Stream:
    """An open GET /api/events, read in the test's own thread (the server's keep-alive
    every --keep-alive seconds bounds each read)."""

    def __init__(self, user: User, query: str = "", last_event_id: str | None = None
                 ) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.context = user.client.stream("GET", f"/api/events?max_seconds=300{query}",
                                          headers=headers, timeout=WAIT)
        self.response = self.context.__enter__()
        assert self.response.status_code == 200, self.response.read()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.lines = self.response.iter_lines()

    def next_event(self, deadline: float) -> tuple[str, str, dict[str, Any]] | None:
        """The next event, or None once `deadline` (time.monotonic) has passed."""
        name, ident, data = "message", "", ""
        while time.monotonic() < deadline:
            line = next(self.lines)
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                return name, ident, json.loads(data)
        return None

    def wait_for(self, what: str, match: Callable[[str, dict[str, Any]], bool]
                 ) -> tuple[str, str, dict[str, Any]]:
        """The first event that matches (the others before it are dropped)."""
        deadline = time.monotonic() + WAIT
        while (found := self.next_event(deadline)) is not None:
            if match(found[0], found[2]):
                return found
        raise AssertionError(f"no {what} event within {WAIT} s")

    def wait_for_all(self, what: str, **matches: Callable[[str, dict[str, Any]], bool]
                     ) -> dict[str, dict[str, Any]]:
        """The first event matching each of `matches`, in whatever order they come."""
        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + WAIT
        while len(found) < len(matches):
            event = self.next_event(deadline)
            if event is None:
                raise AssertionError(f"no {what} event within {WAIT} s: {sorted(found)} "
                                     "only")
            for key, match in matches.items():
                if key not in found and match(event[0], event[2]):
                    found[key] = event[2]
        return found

    def close(self) -> None:
        self.response.close()
        self.context.__exit__(None, None, None)


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def _job_event(job_id: int, status: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda name, data: (name == "job" and data["job"]["id"] == job_id
                               and data["kind"] == "status"
                               and data["data"].get("status") == status)


def test_live_events_follow_jobs_agents_and_alerts_in_scope(
        people: dict[str, Any], streams: list[Stream]) -> None:
    mine = Stream(people["dash-view-a"])
    theirs = Stream(people["dash-op-b"])
    secadmin = Stream(people["secadmin"])
    streams += [mine, theirs, secadmin]
    for stream in streams:
        name, cursor, ready = stream.wait_for("ready", lambda n, _d: n == "ready")
        assert ready["resumed"] is False and int(cursor) == ready["cursor"]
    queued = people["dash-op-a"].call("POST", "/api/jobs", json={
        "institution": "hosp-a", "plan": "his", "kind": "backup"})
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job"]["id"]
    _n, first_id, event = mine.wait_for("queued", _job_event(job_id, "queued"))
    assert event["job"]["institution"] == "hosp-a" and event["job"]["plan"] == "his"
    # the agent claims it, reports progress and its result: each reaches the console
    agent = people["agent"]
    offer = agent.call("GET", "/api/agent/jobs?wait=5")
    assert offer["job"]["id"] == job_id
    mine.wait_for("running", _job_event(job_id, "running"))
    agent.call("POST", f"/api/agent/jobs/{job_id}/events",
               {"kind": "progress", "data": {"percent": 40.0, "message": "half"}})
    _n, _i, progress = mine.wait_for("progress", lambda n, d: n == "job"
                                     and d["job"]["id"] == job_id and d["kind"] == "progress")
    assert progress["data"]["percent"] == 40.0
    agent.call("POST", f"/api/agent/jobs/{job_id}/result", {
        "status": "succeeded", "snapshot_id": "cd" * 32})
    mine.wait_for("succeeded", _job_event(job_id, "succeeded"))
    # another hospital's stream saw none of it: its first job event is its own job
    other = people["dash-op-b"].call("POST", "/api/jobs", json={
        "institution": "hosp-b", "plan": "his", "kind": "backup"})
    assert other.status_code == 202
    _n, _i, seen = theirs.wait_for("a job", lambda n, _d: n == "job")
    assert seen["job"]["id"] == other.json()["job"]["id"]
    assert seen["job"]["institution"] == "hosp-b"
    # an agent revoked: a state change for those who may read agents, not the secadmin
    revoked = people["sysadmin"].call("DELETE", "/api/agents/hosp-a/agent-a")
    assert revoked.status_code == 200, revoked.text
    _n, _i, change = mine.wait_for("agent", lambda n, _d: n == "agent")
    assert change["state"] == "revoked" and change["agent"]["name"] == "agent-a"
    cancel = people["dash-op-a"].call("POST", "/api/jobs", json={
        "institution": "hosp-a", "plan": "pacs", "kind": "backup"})
    marker = cancel.json()["job"]["id"]
    name, _i, _d = secadmin.wait_for("the next job", lambda n, d: n == "agent" or (
        n == "job" and d["job"]["id"] == marker))
    assert name == "job"  # the revocation came before it, and was not sent
    # an agent that stops heartbeating goes offline with an alert (the server's own
    # task), and comes back when it beats again, the alert resolved
    quiet = Agent(people["site"], "hosp-a", "agent-quiet")
    quiet.call("POST", "/api/agent/heartbeat", {"version": "1", "interval": 1})
    went = mine.wait_for_all(
        "offline", agent=lambda n, d: n == "agent" and d["agent"]["name"] == "agent-quiet"
        and d["state"] == "offline", alert=lambda n, d: n == "alert")
    assert went["agent"]["state"] == "offline"
    assert went["agent"]["agent"]["institution"] == "hosp-a"
    opened = went["alert"]
    assert opened["state"] == "opened" and opened["alert"]["kind"] == "agent_offline"
    assert opened["alert"]["institution"] == "hosp-a"
    counted = people["dash-view-a"].call("GET", "/api/dashboard").json()
    assert counted["summary"]["open_alerts"] == 1
    quiet.call("POST", "/api/agent/heartbeat", {"version": "1", "interval": 60})
    back = mine.wait_for_all(
        "online", agent=lambda n, d: n == "agent" and d["agent"]["name"] == "agent-quiet",
        alert=lambda n, d: n == "alert")
    assert back["agent"]["state"] == "online"
    resolved = back["alert"]
    assert resolved["state"] == "resolved" and resolved["alert"]["resolved_at"]
    assert resolved["alert"]["id"] == opened["alert"]["id"]
    # a DR action's steps, as the agent running it reports each
    drill = people["dash-op-a"].call("POST", "/api/institutions/hosp-a/systems/lis/dr",
                                     json={"action": "drill"})
    assert drill.status_code == 202, drill.text
    offer = quiet.call("GET", "/api/agent/jobs?wait=5")
    assert offer["job"]["id"] == drill.json()["job"]["id"]
    quiet.call("POST", f"/api/agent/jobs/{offer['job']['id']}/events", {
        "kind": "log", "data": {"message": "promote: ok in 1.500 s", "step": {
            "name": "promote", "result": "ok", "seconds": 1.5,
            "started": ago(seconds=2), "detail": ""}}})
    _n, _i, step = mine.wait_for("dr_step", lambda n, _d: n == "dr_step")
    assert step["job"]["id"] == offer["job"]["id"] and step["job"]["kind"] == "dr_drill"
    assert step["step"]["name"] == "promote" and step["step"]["seconds"] == 1.5
    # the agent's DR report: a new lag alone is no event, the roles swapped are one
    def report(lag: float, primary: str) -> None:
        standby = "east" if primary == "main" else "main"
        status = [{**DR_STATUS[0], "lag": {**DR_STATUS[0]["lag"], "seconds": lag},
                   "nodes": [{**DR_STATUS[0]["nodes"][0], "site": primary},
                             {**DR_STATUS[0]["nodes"][1], "site": standby}]}]
        quiet.call("POST", "/api/agent/heartbeat", {
            "version": "1", "interval": 60, "dr_systems": ["lis"], "dr_status": status})

    report(0.5, "main")
    _n, _i, dr = mine.wait_for("dr_status", lambda n, _d: n == "dr_status")
    assert dr["agent"] == "agent-quiet" and dr["systems"] == ["lis"]
    assert dr["institution"] == "hosp-a"
    report(3.5, "main")
    marker = people["dash-op-a"].call("POST", "/api/jobs", json={
        "institution": "hosp-a", "plan": "emr", "kind": "backup"}).json()["job"]["id"]
    name, _i, _d = mine.wait_for("the marker job", lambda n, d: n == "dr_status" or (
        n == "job" and d["job"]["id"] == marker))
    assert name == "job"  # the same picture with another lag was no event
    report(0.2, "east")
    _n, _i, swapped = mine.wait_for("dr_status", lambda n, _d: n == "dr_status")
    assert swapped["agent"] == "agent-quiet"
    # reconnecting after the first event replays what came after it, in scope
    again = Stream(people["dash-view-a"], last_event_id=first_id)
    streams.append(again)
    _n, _i, replayed = again.wait_for("replayed running", _job_event(job_id, "running"))
    assert replayed["job"]["institution"] == "hosp-a"
    _n, _i, ready = again.wait_for("ready", lambda n, _d: n == "ready")
    assert ready["resumed"] is True and ready["replayed"] >= 3


def test_the_stream_ends_after_max_seconds(people: dict[str, Any]) -> None:
    with people["dash-view-a"].client.stream("GET", "/api/events?max_seconds=1",
                                             timeout=WAIT) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert text.startswith("retry: 1000\n\n") and "event: ready\n" in text
    bad = people["dash-view-a"].call("GET", "/api/events?max_seconds=0")
    assert bad.status_code == 422 and code_of(bad) == "invalid_request"


def test_older_jobs_are_found_beyond_the_recent_window(
        people: dict[str, Any], site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest jobs are grouped first (dashboard_facts.RECENT of them); a plan whose
    newest or newest successful job is older is looked up further back: the same
    figures as one pass over every job."""
    catalog = Catalog(site.catalog)
    try:
        scope = [("hosp-a", "hosp-a"), ("hosp-b", "hosp-b")]
        whole = facts.load(catalog, scope)
        assert whole.succeeded[("hosp-a", "pacs", "backup")].status == "succeeded"
        monkeypatch.setattr(facts, "RECENT", 1)
        windowed = facts.load(catalog, scope)
    finally:
        catalog.close()
    assert windowed.newest == whole.newest and windowed.succeeded == whole.succeeded
    assert windowed.running == whole.running and len(whole.newest) >= 5


def test_another_process_delivers_the_event_and_stops_with_a_stream_open(
        people: dict[str, Any], site: Site) -> None:
    """A second server process on the catalog streams a job queued through the first
    (events come from catalog rows, not a process's memory); and a console left open
    while it stops (SIGTERM): the stream ends and the server exits 0 with nothing but
    its own lines in the log (no request cancelled at the shutdown's timeout)."""
    second = start(site.env, site.catalog)  # sessions are in the catalog: any process
    client = httpx.Client(base_url=second.url, timeout=WAIT,
                          cookies={"medark_session": people["dash-view-a"].client.cookies[
                              "medark_session"]})
    try:
        with client.stream("GET", "/api/events?max_seconds=300") as response:
            assert response.status_code == 200, response.read()
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("event: ")) == \
                "event: ready"
            queued = people["dash-op-a"].call("POST", "/api/jobs", json={
                "institution": "hosp-a", "plan": "emr", "kind": "backup"})
            assert queued.status_code == 202, queued.text
            wanted = f'"id":{queued.json()["job"]["id"]},"institution":"hosp-a"'
            assert any(line.startswith("data: ") and wanted in line for line in lines)
            second.proc.terminate()
            list(lines)  # the server ends the stream: the iteration stops
    finally:
        client.close()
    err = second.stop()
    assert "timeout graceful shutdown" not in err and "CancelledError" not in err, err


def test_signing_out_ends_the_stream(people: dict[str, Any], site: Site,
                                     streams: list[Stream]) -> None:
    """An open stream does not outlive its session (nor keep it alive: it is looked at,
    not touched)."""
    made = people["secadmin"].call("POST", "/api/users", json={
        "name": "dash-leaving", "institution": "hosp-a", "roles": ["viewer"]})
    assert made.status_code == 201, made.text
    leaving = first_login(site.server, "dash-leaving", made.json()["one_time_password"])
    stream = Stream(leaving)
    streams.append(stream)
    stream.wait_for("ready", lambda n, _d: n == "ready")
    assert leaving.call("POST", "/api/logout").status_code == 200
    deadline = time.monotonic() + WAIT
    with pytest.raises(StopIteration):
        while time.monotonic() < deadline:
            next(stream.lines)
    again = leaving.call("GET", "/api/events")
    assert again.status_code == 401 and code_of(again) == "not_authenticated"
