"""`medark daemon`: runs every plan's backups on their schedules and records each job.

- **Slots.** Each plan's schedule yields slots (cron or interval, with the plan's fixed
  jitter). A slot runs once: the catalog refuses a second job for the same plan, slot and
  attempt, so two daemons or a restarted one never double a run.
- **Missed runs.** On start, a plan whose last recorded slot is followed by a slot that
  already passed gets one catch-up run at once (not one per missed slot), as anacron and
  systemd's Persistent= timers do.
- **Overlap.** A slot that comes while the plan's previous job is still running is
  skipped and said so; the running job will produce the newer point anyway.
- **Limits.** At most `max_jobs` jobs write to one repository at once; the others wait.
- **Retries.** A failed job is retried `retries` times with exponential backoff
  (`retry_base`, doubled each time), each attempt a job of its own in the catalog.
- **Crash safety.** Jobs are recorded `running` before they start; on start the daemon
  marks its host's running jobs whose process is gone as failed.
- **Shutdown.** SIGTERM stops scheduling, gives running jobs `grace` seconds to finish,
  then sends them SIGTERM (a backup stops cleanly) and records them failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from medark.catalog.models import SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.scheduler.children import Children
from medark.scheduler.runner import Outcome, run_backup
from medark.util import clock

Event = Callable[[str, dict[str, object]], None]


@dataclass(frozen=True)
class DaemonOptions:
    poll: float = 1.0
    """Seconds between looks at the schedules."""
    retry_base: float = 30.0
    grace: float = 60.0


class Daemon:
    def __init__(self, config: MedarkConfig, catalog: Catalog,
                 options: DaemonOptions = DaemonOptions(),
                 on_event: Event | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self.options = options
        self.stopping = threading.Event()
        self.children = Children()
        self._on_event = on_event or (lambda _kind, _details: None)
        self._repo_slots = {name: threading.BoundedSemaphore(repo.max_jobs)
                            for name, repo in config.repositories.items()}
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._next: dict[str, datetime | None] = {}

    # ---- the loop ------------------------------------------------------------------

    def run(self) -> None:
        reaped = self.catalog.reap_orphans()
        if reaped:
            self._on_event("reaped", {"jobs": reaped})
        now = clock.now()
        for name in sorted(self.config.plans):
            self._plan_start(name, now)
        while not self.stopping.wait(self.options.poll):
            now = clock.now()
            for name, slot in list(self._next.items()):
                if slot is not None and slot <= now:
                    self._dispatch(name, slot)
                    self._next[name] = self._after(name, max(slot, now), slot)
        self._shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def _plan_start(self, name: str, now: datetime) -> None:
        last = self.catalog.last_slot(name, "backup")
        if last is not None:
            missed = self._after(name, last, last)
            if missed is not None and missed <= now:
                self._on_event("catch_up", {"plan": name, "slot": _fmt(missed)})
                self._dispatch(name, missed)
                self._next[name] = self._after(name, now, missed)
                return
        self._next[name] = self._after(name, now, None)

    def _after(self, name: str, after: datetime, last_start: datetime | None
               ) -> datetime | None:
        schedule = self.config.plans[name].parsed_schedule()
        return schedule.next_after(after, self.config.zone, name, last_start)

    # ---- jobs ----------------------------------------------------------------------

    def _dispatch(self, name: str, slot: datetime) -> None:
        with self._lock:
            if name in self._busy:
                self._on_event("skipped", {"plan": name, "slot": _fmt(slot),
                                           "reason": "the previous run is still going"})
                return
            self._busy.add(name)
        thread = threading.Thread(target=self._job, args=(name, slot),
                                  name=f"job-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _job(self, name: str, slot: datetime) -> None:
        repo = self.config.plans[name].repository
        try:
            with self._repo_slots[repo]:
                self._attempts(name, slot)
        finally:
            with self._lock:
                self._busy.discard(name)

    def _attempts(self, name: str, slot: datetime) -> None:
        retries = self.config.plans[name].retries
        for attempt in range(1, retries + 2):
            if self.stopping.is_set():
                return  # not started: the slot stays open for the catch-up after restart
            self._on_event("started", {"plan": name, "slot": _fmt(slot), "attempt": attempt})
            outcome = run_backup(self.config, name, self.catalog, slot, attempt,
                                 launcher=self.children.launch)
            self._on_event("finished", {"plan": name, **_summary(outcome),
                                        "attempt": attempt})
            if outcome.status in (SUCCEEDED, "skipped") or attempt > retries:
                return
            if self.stopping.wait(self.options.retry_base * 2 ** (attempt - 1)):
                return

    def _shutdown(self) -> None:
        self.children.close()
        deadline = clock.monotonic() + self.options.grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - clock.monotonic()))
        if any(t.is_alive() for t in self._threads):
            signalled = self.children.terminate()
            self._on_event("terminating", {"jobs": signalled})
            for thread in self._threads:
                thread.join()


def _summary(outcome: Outcome) -> dict[str, object]:
    public = outcome.public()
    return {k: public[k] for k in ("job", "status", "seconds", "bytes_added", "snapshot_ids",
                                   "error")}


def _fmt(when: datetime) -> str:
    return clock.format_time(when)
