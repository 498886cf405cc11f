"""`medark server` jobs over real HTTP on SQLite and PostgreSQL catalogs: run now queues a
job of a configured plan, listed newest first and in scope; cancel of a queued and of a
running job; a job's progress as Server-Sent Events in order, ending on its final status
and resumable with Last-Event-ID (the agent's side is played by the test through
catalog/job_queue.py); every run, cancel and refusal audited. And the server scheduler:
two server processes on one catalog elect one leader, each task slot runs once, and when
the leader is killed (SIGKILL) the other takes over; a job whose agent fell silent is
failed."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from catalog_urls import KINDS, catalog_urls
from server_site import (
    FILES_CONFIG,
    Server,
    Site,
    User,
    base_env,
    code_of,
    first_login,
    init,
    site_fixture,
    start,
)

from medark.catalog import job_queue as jq
from medark.catalog.audit_trail import read_records
from medark.catalog.statuses import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from medark.catalog.store import Catalog
from medark.server.scheduler import task_runs

site = site_fixture()

WAIT = 90.0
"""Seconds a test waits for the server's background work before it gives up."""


@pytest.fixture(scope="module")
def people(site: Site) -> dict[str, User]:
    """Two hospitals with a configuration each; an operator and a viewer of hosp-a, an
    operator of hosp-b, an operator of the regional center."""
    sysadmin = site.user("sysadmin")
    for name in ("hosp-a", "hosp-b"):
        made = sysadmin.call("POST", "/api/institutions", json={"name": name})
        assert made.status_code in (201, 409), made.text
        saved = sysadmin.call("PUT", f"/api/institutions/{name}/config", json={
            "document": FILES_CONFIG, "comment": "first", "base_version": None})
        assert saved.status_code in (200, 409), saved.text
    secadmin = site.user("secadmin")
    ready = {}
    for name, institution, role in (("op-a", "hosp-a", "operator"),
                                    ("view-a", "hosp-a", "viewer"),
                                    ("op-b", "hosp-b", "operator"),
                                    ("op-center", "center", "operator")):
        made = secadmin.call("POST", "/api/users", json={
            "name": name, "institution": institution, "roles": [role]})
        assert made.status_code == 201, made.text
        ready[name] = first_login(site.server, name, made.json()["one_time_password"])
    ready["sysadmin"] = sysadmin
    return ready


def _catalog(site: Site) -> Iterator[Catalog]:
    catalog = Catalog(site.catalog)
    try:
        yield catalog
    finally:
        catalog.close()


@pytest.fixture
def catalog(site: Site) -> Iterator[Catalog]:
    yield from _catalog(site)


def _audit(catalog: Catalog, action: str) -> list[dict[str, Any]]:
    return [r.public() for r in read_records(catalog) if r.action == action]


def _run(user: User, institution: str = "hosp-a", plan: str = "his",
         kind: str = "backup") -> httpx.Response:
    return user.call("POST", "/api/jobs", json={"institution": institution, "plan": plan,
                                                "kind": kind})


def test_run_now_queues_a_job_of_a_configured_plan(site: Site, people: dict[str, User],
                                                   catalog: Catalog) -> None:
    answer = _run(people["op-a"])
    assert answer.status_code == 202, answer.text
    job = answer.json()["job"]
    assert job["status"] == QUEUED and job["institution"] == "hosp-a"
    assert job["plan"] == "his" and job["kind"] == "backup" and job["system"] == "his"
    assert job["requested_by"] == "op-a" and job["agent"] is None
    assert job["cancel_requested"] is False and job["progress"] is None
    listed = people["op-a"].call("GET", "/api/jobs").json()["jobs"]
    assert listed[0] == job
    assert people["op-a"].call("GET", f"/api/jobs/{job['id']}").json() == {"job": job}
    by_center = _run(people["op-center"], "hosp-b", kind="restore_test")
    assert by_center.status_code == 202 and by_center.json()["job"]["institution"] == "hosp-b"
    by_sysadmin = _run(people["sysadmin"], "hosp-a", kind="check")
    assert by_sysadmin.status_code == 202

    unknown = _run(people["op-a"], plan="pacs")
    assert unknown.status_code == 422 and code_of(unknown) == "unknown_plan"
    assert "pacs" in unknown.json()["error"]["message"]
    wrong_kind = _run(people["op-a"], kind="prune")
    assert wrong_kind.status_code == 422 and code_of(wrong_kind) == "invalid_request"
    viewer = _run(people["view-a"])
    assert viewer.status_code == 403 and code_of(viewer) == "forbidden"
    elsewhere = _run(people["op-b"], "hosp-a")
    assert elsewhere.status_code == 403 and code_of(elsewhere) == "out_of_scope"
    nowhere = _run(people["op-center"], "no-such-hospital")
    assert nowhere.status_code == 404

    records = _audit(catalog, "job.run")
    ok = [r for r in records if r["result"] == "ok"]
    assert {(r["actor"], r["target"]) for r in ok} >= {
        ("op-a", "hosp-a/his"), ("op-center", "hosp-b/his"), ("sysadmin", "hosp-a/his")}
    assert any(r["detail"].get("job") == job["id"] for r in ok)
    refused = {(r["actor"], r["result"], r["detail"].get("reason"))
               for r in records if r["result"] != "ok"}
    assert refused >= {("op-a", "failed", "unknown_plan"), ("view-a", "denied", "forbidden"),
                       ("op-b", "denied", "out_of_scope")}


def test_the_list_is_scoped_filtered_and_paged(site: Site, people: dict[str, User]) -> None:
    for _ in range(3):
        assert _run(people["op-b"], "hosp-b").status_code == 202
        assert _run(people["op-a"], "hosp-a").status_code == 202
    center = people["op-center"].call("GET", "/api/jobs?limit=500").json()["jobs"]
    assert {"hosp-a", "hosp-b"} <= {j["institution"] for j in center}
    assert [j["id"] for j in center] == sorted((j["id"] for j in center), reverse=True)
    mine = people["view-a"].call("GET", "/api/jobs?limit=500").json()["jobs"]
    assert mine and {j["institution"] for j in mine} == {"hosp-a"}
    assert [j["id"] for j in mine] == [j["id"] for j in center if j["institution"] == "hosp-a"]
    narrowed = people["op-center"].call("GET", "/api/jobs?institution=hosp-b").json()
    assert {j["institution"] for j in narrowed["jobs"]} == {"hosp-b"}
    refused = people["view-a"].call("GET", "/api/jobs?institution=hosp-b")
    assert refused.status_code == 403 and code_of(refused) == "out_of_scope"

    first = people["view-a"].call("GET", "/api/jobs?limit=2").json()
    assert len(first["jobs"]) == 2 and first["next_before_id"] == first["jobs"][1]["id"]
    second = people["view-a"].call(
        "GET", f"/api/jobs?limit=2&before_id={first['next_before_id']}").json()
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == [j["id"] for j in mine[:4]]
    queued = people["view-a"].call("GET", "/api/jobs?status=queued&limit=500").json()["jobs"]
    assert queued and {j["status"] for j in queued} == {QUEUED}
    assert people["view-a"].call("GET", "/api/jobs?status=lost").status_code == 422
    assert people["view-a"].call("GET", "/api/jobs?limit=501").status_code == 422
    # another hospital's job is not admitted to exist
    other = next(j["id"] for j in center if j["institution"] == "hosp-b")
    hidden = people["view-a"].call("GET", f"/api/jobs/{other}")
    assert hidden.status_code == 404 and code_of(hidden) == "not_found"
    assert people["view-a"].call("GET", "/api/jobs/999999999").status_code == 404


def test_cancel_a_queued_and_a_running_job(site: Site, people: dict[str, User],
                                          catalog: Catalog) -> None:
    queued = _run(people["op-a"]).json()["job"]
    cancelled = people["op-a"].call("POST", f"/api/jobs/{queued['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["job"]["status"] == CANCELLED
    again = people["op-a"].call("POST", f"/api/jobs/{queued['id']}/cancel")
    assert again.status_code == 409 and code_of(again) == "job_ended"

    running = _run(people["op-a"]).json()["job"]
    claimed = _claim(catalog, running["id"])
    assert claimed.agent == "agent-a"
    assert people["view-a"].call("POST", f"/api/jobs/{running['id']}/cancel"
                                 ).status_code == 403
    hidden = people["op-b"].call("POST", f"/api/jobs/{running['id']}/cancel")
    assert hidden.status_code == 404
    asked = people["op-center"].call("POST", f"/api/jobs/{running['id']}/cancel")
    assert asked.status_code == 200, asked.text
    assert asked.json()["job"]["status"] == RUNNING
    assert asked.json()["job"]["cancel_requested"] is True
    assert jq.set_progress(catalog, running["id"], {"percent": 50.0}) is True  # the agent sees it
    jq.finish_job(catalog, running["id"], CANCELLED, error="cancelled on request")
    seen = people["op-a"].call("GET", f"/api/jobs/{running['id']}").json()["job"]
    assert seen["status"] == CANCELLED and seen["progress"]["percent"] == 50.0

    records = _audit(catalog, "job.cancel")
    assert {(r["actor"], r["target"], r["result"]) for r in records} >= {
        ("op-a", f"job:{queued['id']}", "ok"), ("op-a", f"job:{queued['id']}", "failed"),
        ("view-a", f"job:{running['id']}", "denied"), ("op-b", f"job:{running['id']}", "denied"),
        ("op-center", f"job:{running['id']}", "ok")}


def _claim(catalog: Catalog, job_id: int) -> jq.JobRecord:
    """The agent's side: claim queued hosp-a jobs until this one is claimed."""
    while True:
        claimed = jq.claim_next(catalog, institution="hosp-a", agent="agent-a", plans=["his"],
                                host="his-db-1")
        assert claimed is not None, f"job {job_id} was not claimable"
        if claimed.id == job_id:
            return claimed
        jq.finish_job(catalog, claimed.id, FAILED, error="not this test's job")


def _events(lines: Iterator[str], on_event: Callable[[dict[str, Any]], None] | None = None
            ) -> list[dict[str, Any]]:
    """Server-Sent Events until the stream ends: {id, event, data} each (comments
    skipped); `on_event` is called after each, while the stream is still open."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if current:
                found.append(current)
                if on_event is not None:
                    on_event(current)
                current = {}
            continue
        field, _sep, value = line.partition(": ")
        current[field] = json.loads(value) if field == "data" else value
    assert not current, "the stream ended in the middle of an event"
    return found


def test_progress_streams_as_server_sent_events(site: Site, people: dict[str, User],
                                               catalog: Catalog) -> None:
    job = _run(people["op-a"]).json()["job"]
    job_id = job["id"]

    def agent(event: dict[str, Any]) -> None:
        """Plays the agent once the stream is open: claims, reports, finishes."""
        if event["event"] == "status" and event["data"]["data"]["status"] == QUEUED:
            _claim(catalog, job_id)
            jq.set_progress(catalog, job_id, {"percent": 10.0, "bytes_done": 100,
                                              "bytes_total": 1000, "eta_seconds": 9.0,
                                              "message": "reading /srv/his"})
            jq.add_event(catalog, job_id, "log", {"message": "3 files changed"})
            jq.set_progress(catalog, job_id, {"percent": 100.0, "bytes_done": 1000,
                                              "bytes_total": 1000, "eta_seconds": 0.0,
                                              "message": "done"})
            jq.finish_job(catalog, job_id, SUCCEEDED, snapshot_id="ab12cd34",
                          bytes_added=1000)

    client = people["view-a"].client
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.iter_lines(), agent)
    kinds = [(e["event"], e["data"]["data"].get("status")) for e in events]
    assert kinds == [("status", QUEUED), ("status", RUNNING), ("progress", None),
                     ("log", None), ("progress", None), ("status", SUCCEEDED)]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e["data"]["id"] for e in events] == ids
    assert all(e["data"]["job_id"] == job_id for e in events)
    assert events[2]["data"]["data"] == {"percent": 10.0, "bytes_done": 100,
                                         "bytes_total": 1000, "eta_seconds": 9.0,
                                         "message": "reading /srv/his"}
    assert events[3]["data"]["data"] == {"message": "3 files changed"}
    assert events[-1]["data"]["data"]["snapshot_id"] == "ab12cd34"

    # a reconnecting client resumes after the last event it saw, and an ended job's
    # stream ends at once
    with client.stream("GET", f"/api/jobs/{job_id}/events",
                       headers={"Last-Event-ID": str(ids[2])}) as response:
        rest = _events(response.iter_lines())
    assert [int(e["id"]) for e in rest] == ids[3:]
    with client.stream("GET", f"/api/jobs/{job_id}/events",
                       headers={"Last-Event-ID": str(ids[-1])}) as response:
        assert _events(response.iter_lines()) == []
    with client.stream("GET", f"/api/jobs/{job_id}/events",
                       headers={"Last-Event-ID": "not-ours"}) as response:
        assert [int(e["id"]) for e in _events(response.iter_lines())] == ids  # all
    # scope: another hospital's operator learns nothing; the center reads it
    hidden = people["op-b"].call("GET", f"/api/jobs/{job_id}/events")
    assert hidden.status_code == 404 and code_of(hidden) == "not_found"
    with people["op-center"].client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert len(_events(response.iter_lines())) == len(events)


def test_a_stream_does_not_hold_up_other_requests(site: Site, people: dict[str, User],
                                                  catalog: Catalog) -> None:
    """Several open streams of a job that does not move; the server still answers, and
    each stream ends when the job is cancelled."""
    job_id = _run(people["op-a"]).json()["job"]["id"]
    streams = []
    for _ in range(6):
        client = site.server.client(cookies=people["view-a"].client.cookies)
        request = client.build_request("GET", f"/api/jobs/{job_id}/events")
        streams.append(client.send(request, stream=True))
    try:
        for response in streams:
            assert response.status_code == 200
        for _ in range(10):
            assert people["view-a"].call("GET", "/api/jobs?limit=1").status_code == 200
        assert people["op-a"].call("POST", f"/api/jobs/{job_id}/cancel").status_code == 200
        for response in streams:
            events = _events(response.iter_lines())
            assert [e["data"]["data"]["status"] for e in events] == [QUEUED, CANCELLED]
    finally:
        for response in streams:
            response.close()


def test_a_quiet_stream_sends_keep_alive_comments(site: Site, people: dict[str, User]
                                                 ) -> None:
    """A job nobody runs: after --keep-alive seconds of silence the stream sends a comment
    (proxies close idle connections), and it still ends on the cancel."""
    job_id = _run(people["op-a"]).json()["job"]["id"]
    seen: list[str] = []
    with people["view-a"].client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        lines = response.iter_lines()
        for line in lines:
            seen.append(line)
            if line.startswith(":"):
                break
        assert people["op-a"].call("POST", f"/api/jobs/{job_id}/cancel").status_code == 200
        rest = list(lines)
    assert seen[-1] == ": keep-alive"
    assert seen[0] == f"id: {seen[0].split()[1]}" and "event: status" in seen
    assert any(line.startswith("data: ") and CANCELLED in line for line in rest)


# ---- the server scheduler: two processes, one leader ---------------------------------


@pytest.fixture(params=KINDS)
def two_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[str, list[Server]]]:
    """One catalog, two `medark server` processes on it, jobs.stale every half second."""
    tmp = tmp_path_factory.mktemp("leader")
    env = base_env(tmp)
    for url in catalog_urls(request.param, tmp / "catalog.db", "medark_leader"):
        init(env, url)
        servers = [start(env, url, "--job-stale-after", "2") for _ in range(2)]
        try:
            yield url, servers
        finally:
            for server in servers:
                if server.proc.poll() is None:
                    server.stop()
                else:
                    server.proc.communicate(timeout=30)


def _until(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting: {what}")


def test_one_leader_runs_each_slot_once_and_another_takes_over(
        two_servers: tuple[str, list[Server]]) -> None:
    url, servers = two_servers
    pids = {server.proc.pid for server in servers}
    catalog = Catalog(url)
    try:
        def runs() -> list[dict[str, Any]]:
            return task_runs(catalog, "jobs.stale")

        first = _until("five slots run", lambda: len(runs()) >= 5 and runs())
        leaders = {r["leader_pid"] for r in first}
        assert len(leaders) == 1 and leaders <= pids, (leaders, pids)
        leader = leaders.pop()
        slots = [r["slot"] for r in runs()]
        assert len(slots) == len(set(slots))  # each slot once
        if url.startswith("postgresql"):
            with catalog._engine.connect() as connection:
                held = connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = "
                    "l.database WHERE d.datname = current_database() AND l.granted "
                    "AND l.locktype = 'advisory' "
                    "AND l.objid = (x'6D6564736368'::bigint & x'FFFFFFFF'::bigint)"
                ).scalar()
            assert held == 1

        # a job whose agent says nothing is failed by the leader
        job = jq.queue_job(catalog, institution="hosp-x", plan="his", kind="backup",
                           requested_by=None)
        assert jq.claim_next(catalog, institution="hosp-x", agent="quiet", plans=["his"],
                             host="h") is not None
        stale = _until("the silent job failed", lambda: (
            found := jq.get_job(catalog, job.id)) is not None and found.status == FAILED
            and found)
        assert stale.error == jq.STALE_ERROR

        killed = next(s for s in servers if s.proc.pid == leader)
        killed.proc.send_signal(signal.SIGKILL)
        killed.proc.wait(timeout=30)
        survivor = next(s for s in servers if s.proc.pid != leader)
        taken = _until("the other server leads", lambda: [
            r for r in runs() if r["leader_pid"] == survivor.proc.pid])
        assert taken
        later = runs()
        slots = [r["slot"] for r in later]
        assert len(slots) == len(set(slots))
        assert {r["leader_pid"] for r in later} == {leader, survivor.proc.pid}
        # the survivor still serves
        assert httpx.get(f"{survivor.url}/api/health", timeout=30).json() == {"status": "ok"}
    finally:
        catalog.close()
