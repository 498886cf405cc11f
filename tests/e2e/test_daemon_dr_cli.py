"""`medark daemon` with a `[dr.his]` system, through the real commands against a real
primary/standby pair (tests/pg_pair.py):

- supervision: with the standby's replay paused and the primary writing past a
  max_lag_bytes of 1, the daemon's `dr supervise` passes raise `dr_lag:his` and
  `dr_standby:his` (replay paused); resuming the replay resolves both;
- scheduled drills: `drill = "every 2s"` runs `dr drill his` as job `drill` of `dr:his`;
  a drill whose health check never passes raises `dr_drill_failed:his`; after a restart
  with a passing check, the missed slot is caught up, the drill succeeds and resolves
  the alert, and `dr history` lists the drills.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MEDARK, Cli
from pg_pair import PgPair, pg_pair
from pg_server import can_run_servers, make_base, wait_for
from test_dr_status_cli import caught_up, config_text

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


@pytest.fixture(scope="module")
def pair() -> Iterator[PgPair]:
    with pg_pair() as built:
        built.primary.sql("CREATE TABLE visits (id int)")
        yield built


@pytest.fixture
def drill_dir(cli: Cli) -> Iterator[Path]:
    """The drills' sandboxes (MEDARK_DR_DRILL_DIR), reachable by the postgres user."""
    path = make_base()
    cli.env["MEDARK_DR_DRILL_DIR"] = str(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _config(tmp_path: Path, pair: PgPair, *, max_lag_bytes: int = 16 * 1024 * 1024,
            drill: str | None = None, expect: str = "1") -> Path:
    text = config_text(pair, max_lag_bytes)
    if drill is not None:
        text = text.replace('max_lag = "1h"\n', f'max_lag = "1h"\ndrill = "{drill}"\n')
    text = text.replace('expect = "1"\n', f'expect = "{expect}"\ntimeout = "1s"\n')
    path = tmp_path / "medark.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _catalog(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


def _daemon(cli: Cli, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config), "--catalog",
                             _catalog(config.parent), "--poll", "0.1", "--dr-every", "0.5",
                             "--grace", "60"],
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _stop(daemon: subprocess.Popen[str]) -> list[dict[str, Any]]:
    try:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=90)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _alerts(cli: Cli, config: Path) -> dict[str, dict[str, Any]]:
    """The newest alert of each key."""
    found = cli("alerts", "--json", "--catalog", _catalog(config.parent), password=None).json()
    newest: dict[str, dict[str, Any]] = {}
    for alert in found:  # newest first
        newest.setdefault(alert["key"], alert)
    return newest


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _open(cli: Cli, config: Path, *keys: str) -> bool:
    alerts = _alerts(cli, config)
    return all(k in alerts and alerts[k]["resolved_at"] is None for k in keys)


def _resolved(cli: Cli, config: Path, *keys: str) -> bool:
    alerts = _alerts(cli, config)
    return all(k in alerts and alerts[k]["resolved_at"] is not None for k in keys)


def test_lag_and_a_paused_replay_raise_alerts_that_resolve(cli: Cli, tmp_path: Path,
                                                           pair: PgPair) -> None:
    config = _config(tmp_path, pair, max_lag_bytes=1)
    p, s = pair.primary, pair.standby
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    s.sql("SELECT pg_wal_replay_pause()")
    daemon = _daemon(cli, config)
    try:
        wait_for(lambda: s.sql("SELECT pg_is_wal_replay_paused()") == "t",
                 what="replay to pause")
        p.sql("INSERT INTO visits SELECT g FROM generate_series(1, 2000) g")
        _until(lambda: _open(cli, config, "dr_lag:his", "dr_standby:his"), 60,
               "dr_lag:his and dr_standby:his to open")
        alerts = _alerts(cli, config)
        assert alerts["dr_lag:his"]["plan"] == "his"
        assert "over max_lag_bytes 1" in alerts["dr_lag:his"]["details"]["error"]
        assert "replay is paused" in alerts["dr_standby:his"]["details"]["error"]
        assert "dr_sync:his" not in alerts  # synchronous = false: nothing to keep
    finally:
        s.sql("SELECT pg_wal_replay_resume()")
    try:
        _until(lambda: _resolved(cli, config, "dr_lag:his", "dr_standby:his"), 60,
               "dr_lag:his and dr_standby:his to resolve")
    finally:
        events = _stop(daemon)
    assert events[0]["event"] == "ready" and events[-1]["event"] == "stopped"
    fired = [e["key"] for e in events if e["event"] == "alert_firing"]
    assert sorted(fired) == ["dr_lag:his", "dr_standby:his"]  # each once, not every pass
    assert "dr_watch_failed" not in [e["event"] for e in events]
    jobs = cli("jobs", "--json", "--catalog", _catalog(tmp_path), password=None).json()
    assert jobs == []  # no drill scheduled, the plan's backup not due


def test_a_scheduled_drill_is_a_job_and_its_failure_an_alert(cli: Cli, tmp_path: Path,
                                                             pair: PgPair,
                                                             drill_dir: Path) -> None:
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    config = _config(tmp_path, pair, drill="every 2s", expect="2")
    daemon = _daemon(cli, config)
    try:
        _until(lambda: _open(cli, config, "dr_drill_failed:his"), 90,
               "a failing drill's alert")
    finally:
        events = _stop(daemon)
    failed = _alerts(cli, config)["dr_drill_failed:his"]
    assert failed["plan"] == "his"
    assert "health check his-answers" in failed["details"]["error"]
    drills = [e for e in events if e.get("kind") == "drill" and e["event"] == "finished"]
    assert drills and drills[0]["status"] == "failed" and drills[0]["plan"] == "dr:his"

    time.sleep(2.5)  # a slot passes while the daemon is down: the restart catches it up
    _config(tmp_path, pair, drill="every 2s")
    daemon = _daemon(cli, config)
    try:
        _until(lambda: _resolved(cli, config, "dr_drill_failed:his"), 90,
               "a passing drill to resolve the alert")
    finally:
        events = _stop(daemon)
    assert "catch_up" in [e["event"] for e in events if e.get("kind") == "drill"]
    jobs = cli("jobs", "--json", "--catalog", _catalog(tmp_path), password=None).json()
    assert {(j["plan"], j["kind"]) for j in jobs} == {("dr:his", "drill")}
    assert [j["attempt"] for j in jobs] == [1] * len(jobs)  # a drill is not retried
    assert {"failed", "succeeded"} <= {j["status"] for j in jobs}
    history = cli("dr", "history", "his", "--json", "--config", config, "--catalog",
                  _catalog(tmp_path), password=None).json()
    kinds = {(a["kind"], a["status"]) for a in history}
    assert {("drill", "failed"), ("drill", "succeeded")} <= kinds
    assert list(drill_dir.iterdir()) == []  # every sandbox torn down


def test_a_lost_synchronous_standby_is_an_alert_until_it_is_back(cli: Cli, tmp_path: Path,
                                                                 pair: PgPair) -> None:
    """Last in the module: the standby is stopped and started again."""
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    config = _config(tmp_path, pair)
    config.write_text(config.read_text().replace('max_lag = "1h"\n',
                                                 'max_lag = "1h"\nsynchronous = true\n'),
                      encoding="utf-8")
    p, s = pair.primary, pair.standby
    daemon = _daemon(cli, config)
    try:
        _until(lambda: p.sql("SHOW synchronous_standby_names") != "", 60,
               "the daemon's pass to make the primary wait for the standby")
        s.stop()
        _until(lambda: _open(cli, config, "dr_sync:his", "dr_standby:his"), 60,
               "dr_sync:his and dr_standby:his to open")
        sync = _alerts(cli, config)["dr_sync:his"]
        assert "degraded to asynchronous" in sync["details"]["error"]
        assert p.sql("SHOW synchronous_standby_names") == ""  # degraded: commits go on
        p.sql("INSERT INTO visits VALUES (1)")
        s.start()
        _until(lambda: _resolved(cli, config, "dr_sync:his", "dr_standby:his"), 60,
               "dr_sync:his and dr_standby:his to resolve")
        assert p.sql("SHOW synchronous_standby_names") != ""  # named again
    finally:
        events = _stop(daemon)
    fired = sorted(e["key"] for e in events if e["event"] == "alert_firing")
    assert fired == ["dr_standby:his", "dr_sync:his"]
