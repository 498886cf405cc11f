"""The daemon's DR duties: supervising every [dr] pair, and the scheduled drills.

Both run `medark` children, as every job does (scheduler/runner.py): the daemon sits
below service/, and a hung database connection or a crash in the DR code then costs one
child, never the daemon.

- **Supervision.** Every `DR_CHECK_EVERY` seconds (the first at start) one
  `medark --json dr supervise` pass makes each synchronous system synchronous or degrades
  it (`on_sync_loss`), and reports every system's state as one JSON document. Its exit
  code is not a failure (it names the gravest problem found): the document is read, and
  each supported system's conditions raised or resolved through the Alerter —
  `dr_lag:SYSTEM` (a `lag_over_limit` problem), `dr_standby:SYSTEM` (`standby_not_ready`,
  or the standby's replay paused: it receives but no longer applies), `dr_sync:SYSTEM`
  (`synchronous.problem` set). A child that times out, crashes or prints no document is
  one `dr_watch_failed` event; the alerts stay as they were until the next pass.
- **Drills.** A `[dr.SYSTEM]` with `drill` set is a scheduled job `drill` of the plan
  name `dr:SYSTEM` (in `medark jobs`, with the daemon's slots and catch-up) running
  `medark --json dr drill SYSTEM`, which records the drill itself in the catalog's DR
  history. Not retried: a failed drill is the finding (`dr_drill_failed:SYSTEM`).

The children get the daemon's configuration file (--config) and its catalog in
MEDARK_CATALOG (a PostgreSQL catalog's URL may hold a password: never in argv).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medark.catalog.store import Catalog
from medark.config.environment import CATALOG
from medark.scheduler.alerts import Alerter
from medark.scheduler.runner import Launcher, Outcome, Step, medark_command, run_job

DR_CHECK_EVERY = 30.0
"""Seconds between two `dr supervise` passes (the daemon's --dr-every)."""
SUPERVISE_TIMEOUT = 120.0
"""A pass still running after this long is stopped (a node that hangs on connect)."""
DRILL = "drill"
"""The job kind of a scheduled drill."""
PLAN_PREFIX = "dr:"
"""A drill's job is recorded under the plan name `dr:SYSTEM`."""
CONDITIONS = ("dr_lag", "dr_standby", "dr_sync")
"""What a supervise pass raises or resolves, per system."""

Event = Callable[[str, dict[str, object]], None]


def dr_plan(system: str) -> str:
    return PLAN_PREFIX + system


def supervise_step(config_file: str | None, catalog_url: str | None,
                   medark: list[str] | None = None) -> Step:
    """One `dr supervise` pass over every [dr] system."""
    return _dr_step("supervise", [], config_file, catalog_url, medark)


def drill_step(system: str, config_file: str | None, catalog_url: str | None,
               medark: list[str] | None = None) -> Step:
    return _dr_step("drill", [system], config_file, catalog_url, medark)


def _dr_step(action: str, args: list[str], config_file: str | None,
             catalog_url: str | None, medark: list[str] | None) -> Step:
    argv = [*(medark or medark_command()), "--json", "dr", action, *args]
    if config_file:
        argv += ["--config", config_file]
    env = {CATALOG.name: catalog_url} if catalog_url else {}
    return Step(" ".join(["dr", action, *args]), argv, env)


def run_drill(catalog: Catalog, system: str, step: Step, scheduled_for: datetime | None,
              launcher: Launcher) -> Outcome:
    """The drill as job `drill` of `dr:SYSTEM`; its error is the command's one line."""
    return run_job(catalog, dr_plan(system), DRILL, [step], scheduled_for, 1, launcher)


@dataclass(frozen=True)
class Finding:
    """One condition of one system as a pass found it: `problem` None when clear."""

    condition: str
    system: str
    problem: str | None


def findings(document: dict[str, Any]) -> list[Finding]:
    """Every supported system's three conditions from a `dr supervise` document. A
    system marked not supported (a kind or feed `dr status` cannot read) was not looked
    at: it yields nothing, so nothing is resolved on its account either."""
    found: list[Finding] = []
    for system in document.get("systems") or []:
        if not isinstance(system, dict) or not system.get("supported", True):
            continue
        name = str(system.get("system", ""))
        if not name:
            continue
        problems = {str(p.get("code")): str(p.get("message", ""))
                    for p in system.get("problems") or [] if isinstance(p, dict)}
        found.append(Finding("dr_lag", name, problems.get("lag_over_limit")))
        found.append(Finding("dr_standby", name,
                             problems.get("standby_not_ready") or _paused(name, system)))
        sync = system.get("synchronous")
        problem = sync.get("problem") if isinstance(sync, dict) else None
        found.append(Finding("dr_sync", name, str(problem) if problem else None))
    return found


def _paused(name: str, system: dict[str, Any]) -> str | None:
    """The standby's replay paused (pg_wal_replay_pause): it still receives, so it is not
    `standby_not_ready`, but it applies nothing and its lag only grows."""
    for node in system.get("nodes") or []:
        if isinstance(node, dict) and node.get("role") == "standby" \
                and node.get("replay_paused"):
            return (f"{name}: replay is paused on the standby {node.get('address', '')} "
                    "(pg_wal_replay_resume() resumes it)")
    return None


def parse(stdout: str) -> dict[str, Any] | None:
    """The pass's one JSON document, or None when it printed none."""
    for text in (stdout, *reversed(stdout.splitlines())):
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("systems"), list):
            return doc
    return None


class DrWatch:
    """The supervision loop, on a thread of the daemon's until `stopping` is set."""

    def __init__(self, alerter: Alerter, launcher: Launcher, step: Step, every: float,
                 stopping: threading.Event, on_event: Event) -> None:
        self.alerter = alerter
        self.launcher = launcher
        self.step = step
        self.every = every
        self.stopping = stopping
        self._on_event = on_event

    def run(self) -> None:
        while not self.stopping.is_set():
            self.check()
            self.stopping.wait(self.every)

    def check(self) -> bool:
        """One pass: its findings applied to the alerts; False when it gave no document
        (said in a `dr_watch_failed` event)."""
        try:
            result = self.launcher(self.step)
        except OSError as exc:  # the medark program itself could not be started
            result = subprocess.CompletedProcess(self.step.argv, 127, "", f"{exc}\n")
        if self.stopping.is_set():
            return False  # stopped by the shutdown: nothing to learn from it
        document = parse(result.stdout)
        if document is None:
            lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
            self._on_event("dr_watch_failed", {
                "exit_code": result.returncode,
                "error": lines[-1].removeprefix("medark: ") if lines else
                f"exited {result.returncode} without a JSON document"})
            return False
        for finding in findings(document):
            self.alerter.dr_condition(finding.condition, finding.system, finding.problem)
        return True
