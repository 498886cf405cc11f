"""Point-in-time restore through the management server, end to end: a throwaway
PostgreSQL cluster whose WAL the agent's own schedule streams (`stream = true`), a real
`medark agent run` enrolled with a real `medark server` (SQLite catalog: the PostgreSQL
one adds nothing here and the cluster is the slow part). The agent reports the plan's
recoverable window, the recovery endpoint shows it; a restore to a second between two
committed rows writes a new data directory under the declared target which, started,
holds the first row and not the second; a time outside the window is refused (409
outside_window), an undeclared target by the agent, the center's operator without a
grant (403); every request audited. And the
agent's change detection: a report goes with a heartbeat only when it changed."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pg_server import can_run_servers, free_port
from pitr_world import (
    HOSP,
    World,
    job_ended,
    parse_time,
    pg,
    recovery,
    request_restore,
    world,
)
from server_site import _site, audit_records, code_of

from medark.agent.windows import WindowWatch, _merged
from medark.config.plans import MedarkConfig
from medark.engine.pg_restore import start_server, stop_server

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))
site = pytest.fixture(scope="module", params=["sqlite"], name="site")(_site)
__all__ = ["pg", "world"]  # the cluster and the agent (pitr_world.py)


def test_the_agents_window_is_shown(world: World) -> None:
    body = recovery(world.op)
    assert body["database"] is True and body["log_streamed"] is True
    assert body["windows_known"] is True
    windows = body["windows"]
    assert windows, body
    window = windows[-1]
    assert {k: window[k] for k in ("kind", "plan", "source", "agent", "gap_after")} == {
        "kind": "wal", "plan": "his", "source": "postgres", "agent": "his-host",
        "gap_after": False}
    assert window["base"] == world.backup["snapshot_id"][:8]
    assert window["base"] in [p["id"][:8] for p in body["points"]]
    start, end = parse_time(window["start"]), parse_time(window["end"])
    assert start.microsecond == 0 and end.microsecond == 0  # whole seconds
    assert start <= world.moment <= end
    # the start is rounded up to its whole second, which may be the first row's own
    assert start.timestamp() <= math.ceil(world.first_row.timestamp())
    assert parse_time(window["reported_at"]) <= datetime.now(UTC)


def test_a_restore_to_a_second_between_two_rows(world: World) -> None:
    when = world.moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    asked = request_restore(world.op, {"time": when, "plan": "his", "target": "restores"})
    assert asked.status_code == 202, asked.text
    job = asked.json()["job"]
    assert (job["kind"], job["agent"], job["system"]) == ("restore", "his-host", "his")
    done = job_ended(world.op, job["id"])
    assert done["status"] == "succeeded", done["error"]
    restored = done["details"]["restore"]
    name = f"his-postgres-{world.moment:%Y%m%dT%H%M%SZ}"
    assert {k: restored[k] for k in ("target", "time", "data_dir", "kind")} == {
        "target": "restores", "time": when, "data_dir": name, "kind": "postgres"}
    assert done["details"]["request"] == {"time": when, "source": "postgres",
                                          "target": "restores"}
    data_dir = world.restores / name
    assert (data_dir / "recovery.signal").exists()
    assert not (data_dir / "postmaster.pid").exists()  # the agent never starts it
    # the operator starts it: recovery stops at the moment, between the two rows
    port = free_port()
    start_server(str(data_dir), port, "postgres", 0, world.pg.bin_dir, 300)
    try:
        notes = world.pg.sql("SELECT note FROM orders WHERE note IN ('first', 'second')",
                             port=port)
        assert notes == "first"
        assert world.pg.sql("SELECT count(*) FROM orders", port=port) == "1001"
    finally:
        stop_server(str(data_dir), "postgres", 0, world.pg.bin_dir)
    records = [r for r in audit_records(world.site.catalog, "snapshot.restore.request")
               if r["detail"].get("job") == job["id"]]
    assert [(r["actor"], r["result"], r["target"], r["detail"]["time"],
             r["detail"]["target"], r["detail"]["agent"]) for r in records] == [
        ("pitr-op", "ok", f"{HOSP}/his time:{when}", when, "restores", "his-host")]
    # a second restore to the same second would not overwrite the first
    again = request_restore(world.op, {"time": when, "plan": "his", "source": "postgres",
                                "target": "restores"})
    assert again.status_code == 202, again.text
    failed = job_ended(world.op, again.json()["job"]["id"])
    assert failed["status"] == "failed" and "already exists" in failed["error"]


def test_outside_the_window_or_an_undeclared_target(world: World) -> None:
    before = (world.first_row - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused = request_restore(world.op, {"time": before, "plan": "his", "target": "restores"})
    assert refused.status_code == 409, refused.text
    assert code_of(refused) == "outside_window"
    assert before in refused.json()["error"]["message"]
    other = request_restore(world.op, {"time": world.moment.isoformat(), "plan": "his",
                                "source": "mariadb", "target": "restores"})
    assert other.status_code == 409 and code_of(other) == "outside_window"
    # a name the server cannot know is not a target: the agent refuses it
    asked = request_restore(world.op, {"time": world.moment.isoformat(), "plan": "his",
                                "target": "elsewhere"})
    assert asked.status_code == 202, asked.text
    done = job_ended(world.op, asked.json()["job"]["id"])
    assert done["status"] == "failed"
    assert "unknown restore target 'elsewhere'" in done["error"]
    assert [p.name for p in world.restores.iterdir()
            if p.is_dir() and not p.name.endswith(".medark-wal")] == [
        f"his-postgres-{world.moment:%Y%m%dT%H%M%SZ}"]
    for body in ({"time": before, "plan": "his", "target": "../x"},
                 {"time": before, "snapshot": "latest", "plan": "his", "target": "restores"},
                 {"time": before, "target": "restores"},
                 {"time": before, "plan": "his", "paths": ["/a"], "target": "restores"},
                 {"time": "yesterday", "plan": "his", "target": "restores"},
                 {"target": "restores"},
                 {"snapshot": "latest", "plan": "his", "target": "restores"}):
        bad = request_restore(world.op, body)  # after the caller's rights, as a target's name
        assert bad.status_code == 422, (body, bad.text)
        assert code_of(bad) == "invalid_restore"
    missing = request_restore(world.op, {"time": before, "plan": "lis", "target": "restores"})
    assert missing.status_code == 404, missing.text
    # the regional center's operator: patient data of another institution, no grant
    center = world.site.new_user("pitr-center", ["operator"], "center")
    hidden = center.call("GET", f"/api/institutions/{HOSP}/systems/his/recovery")
    assert hidden.status_code == 403 and code_of(hidden) == "grant_required"
    asked = request_restore(center, {"time": world.moment.isoformat(), "plan": "his",
                              "target": "restores"})
    assert asked.status_code == 403 and code_of(asked) == "grant_required"
    failed = [r["detail"]["reason"]
              for r in audit_records(world.site.catalog, "snapshot.restore.request")
              if r["result"] == "failed"]
    assert failed == ["outside_window"] * 2 + ["invalid_restore"] * 7 + ["not_found"]


def test_a_report_goes_only_when_it_changed() -> None:
    """The heartbeat's side of agent/windows.py: the first report, none while it stays
    the same, the next once the windows move; a failure is one event and no report."""
    config = MedarkConfig.model_validate(json.loads(json.dumps({
        "sites": {"main": {"location": "CN-SC"}},
        "repositories": {"local": {"site": "main", "url": "/nowhere",
                                   "password_file": "/nowhere.pass"}},
        "systems": {"his": {"owner": "IT", "sources": [
            {"type": "postgres", "dsn": "host=db", "stream": True}]},
            "pacs": {"owner": "x", "sources": [{"type": "files", "paths": ["/srv"]}]}},
        "plans": {name: {"system": name, "repository": "local", "schedule": "every 1h",
                         "rpo": "1h", "rto": "1h", "retention": {"last": 1}}
                  for name in ("his", "pacs")}})))
    answers: list[Any] = [{"his": [{"end": "1"}]}, {"his": [{"end": "1"}]},
                          RuntimeError("repository gone\nsecond line"),
                          {"his": [{"end": "2"}]}]
    events: list[tuple[str, dict[str, object]]] = []

    def compute(_config: MedarkConfig) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    watch = WindowWatch(config, lambda kind, data: events.append((kind, data)),
                        compute_report=compute)
    assert watch.plans == {"his"}  # a files-only plan has no window to compute
    assert watch.pending() is None
    watch.refresh()
    first = watch.pending()
    assert first == {"his": [{"end": "1"}]}
    assert watch.pending() == first  # the server has not answered yet: sent again
    watch.taken(first)
    assert watch.pending() is None
    watch.refresh()  # the same windows
    assert watch.pending() is None
    watch.refresh()  # a failure: one line, nothing to send
    assert events == [("windows_error", {"error": "repository gone"})]
    assert watch.pending() is None
    watch.refresh()
    assert watch.pending() == {"his": [{"end": "2"}]}


def test_windows_are_whole_seconds_and_one_per_unbroken_archive() -> None:
    """agent/windows.py's shaping of the spans it read: a start rounded up and an end
    down to whole seconds, the spans of base backups over one unbroken archive (the same
    end) one window from the oldest, a span ending at a gap its own, an empty one none."""
    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(1_800_000_000 + seconds, UTC)

    spans: list[tuple[datetime, datetime | None, str, bool]] = [
        (at(0.25), at(50.75), "a" * 64, True),      # ends at a gap
        (at(60.5), at(500.9), "b" * 64, False),     # after the gap, to the newest
        (at(120.0), at(500.9), "c" * 64, False),    # a newer base backup, same archive
        (at(700.4), at(700.6), "d" * 64, False),    # no whole second inside
        (at(800.0), None, "e" * 64, False),         # nothing archived after it
    ]
    found = _merged("wal", "postgres", "7", spans)
    assert [(w.start, w.end, w.base[0], w.gap_after) for w in found] == [
        (at(1), at(50), "a", True), (at(61), at(500), "b", False)]
    assert found[1].covers(at(61)) and found[1].covers(at(500))
    assert not found[1].covers(at(500.5)) and not found[0].covers(at(55))
    assert found[0].report()["start"] == at(1).strftime("%Y-%m-%dT%H:%M:%SZ")
