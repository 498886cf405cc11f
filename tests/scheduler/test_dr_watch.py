"""The daemon's DR supervision when its `dr supervise` child goes wrong, with real
children (scheduler/children.py), a real Alerter and a real SQLite catalog: a child that
hangs is stopped at its timeout, and one that crashes without a document is one
`dr_watch_failed` event; in both cases the open alerts stay as they were (nothing was
learnt). A pass's document then resolves what cleared. The happy paths against a real
primary/standby pair are in tests/e2e/test_daemon_dr_cli.py."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.scheduler.alerts import Alerter
from medark.scheduler.children import TIMED_OUT, Children
from medark.scheduler.dr_watch import DrWatch
from medark.scheduler.runner import Step

CONFIG = MedarkConfig.model_validate({
    "sites": {"main": {"location": "CN-SC"}},
    "repositories": {"local": {"site": "main", "url": "/nonexistent"}},
    "systems": {"his": {"owner": "IT", "sources": [{"type": "files", "paths": ["/srv"]}]}},
    "plans": {"his": {"system": "his", "repository": "local", "schedule": "0 1 * * *",
                      "rpo": "1d", "rto": "1h", "retention": {"daily": 7}}}})
CLEAR = {"systems": [{"system": "his", "supported": True, "healthy": True, "problems": [],
                      "nodes": [], "synchronous": None}]}


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    opened = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield opened
    opened.close()


def _watch(catalog: Catalog, code: str, events: list[tuple[str, dict[str, object]]],
           timeout: float = 30.0) -> DrWatch:
    def on_event(kind: str, details: dict[str, object]) -> None:
        events.append((kind, details))

    children = Children()
    step = Step("dr supervise", [sys.executable, "-c", code], {})
    return DrWatch(Alerter(CONFIG, catalog, on_event),
                   lambda s: children.launch(s, continuous=True, timeout=timeout),
                   step, 30.0, threading.Event(), on_event)


def _open(catalog: Catalog) -> list[str]:
    return sorted(a.key for a in catalog.alerts(open_only=True))


def test_a_hung_or_crashed_pass_is_an_event_and_changes_no_alert(catalog: Catalog) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    lagging = {"systems": [{"system": "his", "supported": True, "healthy": False,
                            "problems": [{"code": "lag_over_limit", "exit_code": 27,
                                          "message": "his: lag 9 bytes over max_lag_bytes 1"}],
                            "nodes": [], "synchronous": None}]}
    assert _watch(catalog, f"print({json.dumps(json.dumps(lagging))}); exit(27)",
                  events).check()
    assert _open(catalog) == ["dr_lag:his"]

    hung = _watch(catalog, "import time; time.sleep(60)", events, timeout=0.5)
    assert not hung.check()
    crashed = _watch(catalog, "import sys; sys.exit('medark: no DR system in sight')", events)
    assert not crashed.check()
    failures = [details for kind, details in events if kind == "dr_watch_failed"]
    assert failures[0]["exit_code"] == TIMED_OUT
    assert failures[0]["error"] == "dr supervise timed out after 0.5 s"
    assert failures[1] == {"exit_code": 1, "error": "no DR system in sight"}
    assert _open(catalog) == ["dr_lag:his"]  # nothing learnt: the alert stays open

    assert _watch(catalog, f"print({json.dumps(json.dumps(CLEAR))})", events).check()
    assert _open(catalog) == []
    assert [k for k, _ in events if k.startswith("alert_")] == ["alert_firing",
                                                                 "alert_resolved"]
