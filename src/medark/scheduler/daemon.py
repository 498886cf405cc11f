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
- **Copies.** A plan's copy with a cron or interval schedule is a job of its own
  (`copy:TARGET`) with the same slots, limits and retries. A `continuous` copy is a
  supervised `medark copy --follow` (`follow:TARGET`): when it stops it is restarted
  after a backoff that doubles up to `max_backoff` and resets once it ran a minute.
- **Retention.** After each successful backup the plan's retention is applied to its own
  snapshots (`forget`, a job of its own; skipped, not failed, while another job holds
  the repository); medical-record snapshots keep a point a year for 15 / 30 years
  whatever the policy (policy/records.py). Each copy target applies its own retention
  (the copy's `retention`, else the plan's) to the plan's snapshots there
  (`forget:TARGET`): after each successful scheduled copy, or for a continuous copy after
  each successful backup. A repository with a `prune` schedule (a copy target too) is
  pruned on it (job `prune` of `repository:NAME`; skipped while another job holds it).
- **Streams.** A postgres or mariadb source with `stream = true` gets a supervised
  `pg wal-stream` (its slot created) or `mysql binlog-stream` (`stream:postgres`,
  `stream:mariadb`), restarted like a continuous copy; at start the streams get a few
  seconds to connect before the first backups, whose WAL they must carry.
- **Restore tests.** A plan's `restore_test` schedule runs `medark verify`'s test as a
  job (`restore_test`, not retried: a failure is the finding) and alerts when it fails;
  its `offsite_restore_test` restores from a copy (`restore_test:TARGET`).
  An interval schedule's first test comes one interval after start, not at once (a new
  site's backups have not run yet).
- **DR.** With [dr] systems, a `medark dr supervise` pass every `dr_every` seconds
  (synchronous systems kept synchronous or degraded) raises and resolves `dr_lag`,
  `dr_standby` and `dr_sync` alerts per system; a system's `drill` schedule runs
  `medark dr drill` as job `drill` of `dr:SYSTEM` (not retried, `dr_drill_failed`
  alert; an interval's first drill one interval after start). scheduler/dr_watch.py.
- **Audit anchors.** With `[audit] anchor_repository`, the audit trail's head is
  anchored there every `anchor_every` (the first at start), as job `anchor` of `audit`;
  a failure raises `audit_anchor_failed:REPOSITORY`. scheduler/audit_anchoring.py.
- **Network devices.** With `[netconfig]`, `medark netconfig fetch` runs on its
  `schedule` as job `fetch` of `netconfig` (not retried), in a slot of its repository;
  it raises the devices' alerts itself. After each slot the versions are copied to every
  `copies` target (job `copy:TARGET`, then `forget:TARGET` keeping each device's versions
  as the main repository does). scheduler/netconfig_job.py.
- **Shutdown.** SIGTERM stops scheduling and the continuous copies at once (they stop
  cleanly), gives running jobs `grace` seconds to finish, then sends them SIGTERM (a
  backup stops cleanly) and records them failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from medark.catalog.models import SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import RESTORE_TEST, MedarkConfig
from medark.config.schedule import Schedule
from medark.scheduler.alerts import Alerter
from medark.scheduler.audit_anchoring import (
    ANCHOR_KIND,
    ANCHOR_PLAN,
    anchor_schedule,
    run_anchor,
)
from medark.scheduler.children import Children
from medark.scheduler.dbaudit_step import dbaudit_children
from medark.scheduler.dr_watch import (
    DR_CHECK_EVERY,
    DRILL,
    PLAN_PREFIX,
    SUPERVISE_TIMEOUT,
    DrWatch,
    dr_plan,
    drill_step,
    run_drill,
    supervise_step,
)
from medark.scheduler.netconfig_job import (
    NETCONFIG_KIND,
    NETCONFIG_PLAN,
    netconfig_copies,
    netconfig_schedule,
    run_netconfig,
    run_netconfig_copy,
)
from medark.scheduler.restore_test import run_restore_test
from medark.scheduler.runner import (
    Outcome,
    Step,
    copy_step,
    run_backup,
    run_copy,
    run_forget,
    run_job,
    run_prune,
    stream_step,
)
from medark.util import clock

Event = Callable[[str, dict[str, object]], None]


@dataclass(frozen=True)
class DaemonOptions:
    poll: float = 1.0
    """Seconds between looks at the schedules."""
    retry_base: float = 30.0
    grace: float = 60.0
    max_backoff: float = 60.0
    """Longest wait before a continuous job that stopped is started again."""
    config_file: str | None = None
    """The configuration file the DR children read (None: their default)."""
    catalog_url: str | None = None
    """The catalog the DR children record in (None: their default)."""
    dr_every: float = DR_CHECK_EVERY
    """Seconds between two `dr supervise` passes."""


STREAM_SETTLE = 5.0
"""Seconds the WAL/binlog streams get to connect before the first backups start."""
RPO_CHECK_EVERY = 2.0
"""Seconds between evaluations of every plan's achieved RPO against its target."""
HEALTHY_RUN = 60.0
"""A continuous job that ran this long before stopping starts again without delay."""


@dataclass(frozen=True)
class Track:
    """One scheduled job of a plan: its backups, or its copies to one repository."""

    plan: str
    kind: str
    schedule: Schedule
    target: str | None = None


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
        self._busy: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._followers: list[threading.Thread] = []
        self._next: dict[Track, datetime | None] = {}
        self.tracks, self.continuous = _tracks(config)
        self.continuous += dbaudit_children(config, options.config_file,
                                            options.catalog_url)
        self.alerter = Alerter(config, catalog, self._on_event)

    # ---- the loop ------------------------------------------------------------------

    def run(self) -> None:
        reaped = self.catalog.reap_orphans()
        if reaped:
            self._on_event("reaped", {"jobs": reaped})
        for plan, kind, step in self.continuous:
            follower = threading.Thread(target=self._follow, args=(plan, kind, step),
                                        name=f"{kind}-{plan}", daemon=True)
            self._followers.append(follower)
            follower.start()
        if any(kind.startswith("stream") for _p, kind, _s in self.continuous):
            # a base backup needs its WAL: let the streams connect first (a stream that
            # starts after the backup's segment switch never sees that segment)
            self.stopping.wait(STREAM_SETTLE)
        now = clock.now()
        if self.config.dr:
            self._watch_dr()
        for track in self.tracks:
            self._track_start(track, now)
        next_rpo_check = clock.monotonic()
        while not self.stopping.wait(self.options.poll):
            now = clock.now()
            if clock.monotonic() >= next_rpo_check:
                self.alerter.tick(now)  # RPOs, and alerts still to deliver
                next_rpo_check = clock.monotonic() + max(self.options.poll, RPO_CHECK_EVERY)
            for track, slot in list(self._next.items()):
                if slot is not None and slot <= now:
                    self._dispatch(track, slot)
                    self._next[track] = self._after(track, max(slot, now), slot)
        self._shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def _watch_dr(self) -> None:
        """The supervision loop (dr_watch.py), on a thread joined at shutdown; its child
        counts as continuous: stopped at once by SIGTERM."""
        step = supervise_step(self.options.config_file, self.options.catalog_url)
        watch = DrWatch(self.alerter, lambda s: self.children.launch(
            s, continuous=True, timeout=SUPERVISE_TIMEOUT), step,
            max(self.options.poll, self.options.dr_every), self.stopping, self._on_event)
        thread = threading.Thread(target=watch.run, name="dr-watch", daemon=True)
        self._followers.append(thread)
        thread.start()

    def _track_start(self, track: Track, now: datetime) -> None:
        last = self.catalog.last_slot(track.plan, track.kind)
        if last is not None:
            missed = self._after(track, last, last)
            if missed is not None and missed <= now:
                self._on_event("catch_up", {"plan": track.plan, "kind": track.kind,
                                            "slot": _fmt(missed)})
                self._dispatch(track, missed)
                self._next[track] = self._after(track, now, missed)
                return
        # A restore test needs a point to restore: its first interval starts with the daemon
        # (backups run at once; a fresh site's first test would find nothing). A drill's
        # too: restarting the daemon is no reason to drill.
        first_start = now if _once(track) else None
        self._next[track] = self._after(track, now, first_start)

    def _after(self, track: Track, after: datetime, last_start: datetime | None
               ) -> datetime | None:
        seed = track.plan if track.kind == "backup" else f"{track.plan}/{track.kind}"
        return track.schedule.next_after(after, self.config.zone, seed, last_start)

    # ---- jobs ----------------------------------------------------------------------

    def _dispatch(self, track: Track, slot: datetime) -> None:
        key = (track.plan, track.kind)
        with self._lock:
            if key in self._busy:
                self._on_event("skipped", {"plan": track.plan, "kind": track.kind,
                                           "slot": _fmt(slot),
                                           "reason": "the previous run is still going"})
                return
            self._busy.add(key)
        thread = threading.Thread(target=self._job, args=(track, slot),
                                  name=f"job-{track.plan}-{track.kind}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _job(self, track: Track, slot: datetime) -> None:
        if (track.plan, track.kind) == (ANCHOR_PLAN, ANCHOR_KIND):  # a shared lock: no slot
            try:
                with self.children.job() as admitted:
                    if admitted and not self.stopping.is_set():
                        self._anchor(track, slot)
            finally:
                with self._lock:
                    self._busy.discard((track.plan, track.kind))
            return
        if (track.plan, track.kind) == (NETCONFIG_PLAN, NETCONFIG_KIND):
            try:
                self._fetch_devices(track, slot)
            finally:
                with self._lock:
                    self._busy.discard((track.plan, track.kind))
            return
        if track.kind == DRILL:  # no repository: no repository slot
            try:
                self._attempts(track, slot)
            finally:
                with self._lock:
                    self._busy.discard((track.plan, track.kind))
            return
        repo = track.target or self.config.plans[track.plan].repository
        if track.kind == "prune":
            with self._repo_slots[repo], self.children.job() as admitted:
                if admitted and not self.stopping.is_set():
                    self._on_event("started", {"plan": track.plan, "kind": "prune"})
                    outcome = run_prune(self.config, repo, self.catalog, slot,
                                        self.children.launch)
                    self._on_event("finished", {"plan": track.plan, "kind": "prune",
                                                **_summary(outcome)})
                    self.alerter.job_finished(track.plan, "prune", outcome)
            with self._lock:
                self._busy.discard((track.plan, track.kind))
            return
        try:
            with self._repo_slots[repo]:
                self._attempts(track, slot)
        finally:
            with self._lock:
                self._busy.discard((track.plan, track.kind))

    def _attempts(self, track: Track, slot: datetime) -> None:
        # a restore test or a drill is not retried: its failure is the finding
        retries = 0 if _once(track) else self.config.plans[track.plan].retries
        for attempt in range(1, retries + 2):
            with self.children.job() as admitted:
                if not admitted or self.stopping.is_set():
                    return  # not started: the slot stays open for the catch-up after restart
                outcome = self._attempt(track, slot, attempt)
            if outcome.status in (SUCCEEDED, "skipped") or attempt > retries:
                return
            if self.stopping.wait(self.options.retry_base * 2 ** (attempt - 1)):
                return

    def _attempt(self, track: Track, slot: datetime, attempt: int) -> Outcome:
        details = {"plan": track.plan, "kind": track.kind}
        self._on_event("started", {**details, "slot": _fmt(slot), "attempt": attempt})
        if track.kind == DRILL:
            system = track.plan.removeprefix(PLAN_PREFIX)
            step = drill_step(system, self.options.config_file, self.options.catalog_url)
            outcome = run_drill(self.catalog, system, step, slot, self.children.launch)
            self._on_event("finished", {**details, **_summary(outcome), "attempt": attempt})
            self.alerter.drill_finished(system, outcome)
            return outcome
        if track.kind.startswith(RESTORE_TEST):
            outcome = run_restore_test(self.config, track.plan, self.catalog, slot,
                                       launcher=self.children.launch, kind=track.kind)
        elif track.target is None:
            outcome = run_backup(self.config, track.plan, self.catalog, slot, attempt,
                                 launcher=self.children.launch)
        else:
            outcome = run_copy(self.config, track.plan, track.target, self.catalog,
                               slot, attempt, launcher=self.children.launch)
        self._on_event("finished", {**details, **_summary(outcome), "attempt": attempt})
        self.alerter.job_finished(track.plan, track.kind, outcome)
        if outcome.status == SUCCEEDED and not self.stopping.is_set():
            # at shutdown: the next start's job
            for target in self._forget_targets(track):
                self._forget(track.plan, target)
        return outcome

    def _anchor(self, track: Track, slot: datetime) -> None:
        details = {"plan": track.plan, "kind": track.kind}
        self._on_event("started", {**details, "slot": _fmt(slot)})
        outcome = run_anchor(self.config, self.catalog, slot, self.children.launch,
                             self.options.config_file)
        self._on_event("finished", {**details, **_summary(outcome)})
        self.alerter.anchor_finished(track.target or "", outcome)

    def _fetch_devices(self, track: Track, slot: datetime) -> None:
        """`netconfig fetch` in a slot of its repository; not retried (the next slot
        is); the child raises the devices' alerts (scheduler/netconfig_job.py)."""
        with self._repo_slots[track.target or ""], self.children.job() as admitted:
            if not admitted or self.stopping.is_set():
                return
            details = {"plan": track.plan, "kind": track.kind}
            self._on_event("started", {**details, "slot": _fmt(slot)})
            outcome = run_netconfig(self.catalog, self.options.config_file, slot,
                                    self.children.launch)
            self._on_event("finished", {**details, **_summary(outcome)})
        for target in netconfig_copies(self.config):  # [netconfig] copies: every slot,
            if self.stopping.is_set():  # whatever the fetch found
                return
            self._copy_versions(target, slot)

    def _copy_versions(self, target: str, slot: datetime) -> None:
        """`copy:TARGET` (then `forget:TARGET`) of the versions, in a slot of the target;
        a failure alerts as a plan's copy (scheduler/netconfig_job.py)."""
        with self._repo_slots[target], self.children.job() as admitted:
            if not admitted or self.stopping.is_set():
                return
            self._on_event("started", {"plan": NETCONFIG_PLAN, "kind": f"copy:{target}",
                                       "slot": _fmt(slot)})
            for kind, outcome in run_netconfig_copy(self.config, self.catalog, target, slot,
                                                    self.children.launch):
                self._on_event("finished", {"plan": NETCONFIG_PLAN, "kind": kind,
                                            **_summary(outcome)})
                self.alerter.job_finished(NETCONFIG_PLAN, kind, outcome)

    def _forget_targets(self, track: Track) -> list[str | None]:
        """Where a successful job's retention runs: after a backup, the plan's repository
        (None) and its continuous copy targets; after a scheduled copy, its target."""
        if track.kind == "backup":
            follows = [c.to for c in self.config.plans[track.plan].copies
                       if Schedule.parse(c.schedule).continuous]
            return [None, *follows]
        return [track.target] if track.kind.startswith("copy:") else []

    def _forget(self, plan: str, target: str | None) -> None:
        forgot = run_forget(self.config, plan, self.catalog, self.children.launch, target)
        kind = f"forget:{target}" if target else "forget"
        self._on_event("finished", {"plan": plan, "kind": kind, **_summary(forgot)})
        self.alerter.job_finished(plan, kind, forgot)

    def _follow(self, plan: str, kind: str, step: Step) -> None:
        """Keep a continuous job (`copy --follow`, a WAL/binlog stream) running until
        shutdown, each run a job of its own."""
        backoff = 1.0
        while not self.stopping.is_set():
            began = clock.monotonic()
            self._on_event("started", {"plan": plan, "kind": kind})
            outcome = run_job(self.catalog, plan, kind, [step], None, 1,
                              self.children.launch_continuous)
            if self.stopping.is_set():
                return
            ran = clock.monotonic() - began
            backoff = 1.0 if ran >= HEALTHY_RUN else min(backoff * 2, self.options.max_backoff)
            self._on_event("restarting", {"plan": plan, "kind": kind,
                                          "after_seconds": backoff, "error": outcome.error})
            self.stopping.wait(backoff)

    def _shutdown(self) -> None:
        self.children.close()
        self.children.terminate(continuous=True)
        for follower in self._followers:
            follower.join()
        deadline = clock.monotonic() + self.options.grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - clock.monotonic()))
        if any(t.is_alive() for t in self._threads):
            signalled = self.children.terminate()
            self._on_event("terminating", {"jobs": signalled})
            for thread in self._threads:
                thread.join()
        self.alerter.close(min(self.options.grace, 30.0))  # what is queued gets one try


def _tracks(config: MedarkConfig) -> tuple[list[Track], list[tuple[str, str, Step]]]:
    """Every scheduled job (backups, scheduled copies, restore tests, prunes, drills, audit
    anchors), and the continuous ones (copies that follow, WAL/binlog streams) as (plan,
    kind, step)."""
    tracks: list[Track] = [Track(f"repository:{name}", "prune", Schedule.parse(repo.prune),
                                 name)
                           for name, repo in sorted(config.repositories.items()) if repo.prune]
    tracks += [Track(dr_plan(system), DRILL, Schedule.parse(conf.drill))
               for system, conf in sorted(config.dr.items()) if conf.drill]
    anchoring = anchor_schedule(config)
    if anchoring is not None:
        tracks.append(Track(ANCHOR_PLAN, ANCHOR_KIND, anchoring,
                            config.audit.anchor_repository))
    fetching = netconfig_schedule(config)
    if fetching is not None and config.netconfig is not None:
        tracks.append(Track(NETCONFIG_PLAN, NETCONFIG_KIND, fetching,
                            config.netconfig.repository))
    continuous: list[tuple[str, str, Step]] = []
    for name in sorted(config.plans):
        plan = config.plans[name]
        tracks.append(Track(name, "backup", plan.parsed_schedule()))
        for index, source in enumerate(config.systems[plan.system].sources):
            if source.stream:
                continuous.append((name, f"stream:{source.type}",
                                   stream_step(config, name, index)))
        for kind, _repository, test in plan.restore_tests():
            tracks.append(Track(name, kind, Schedule.parse(test.schedule)))
        for copy in plan.copies:
            schedule = Schedule.parse(copy.schedule)
            if schedule.continuous:
                continuous.append((name, f"follow:{copy.to}",
                                   copy_step(config, name, copy.to, follow=True)))
            else:
                tracks.append(Track(name, f"copy:{copy.to}", schedule, copy.to))
    return tracks, continuous


def _once(track: Track) -> bool:
    """A restore test or a drill: not retried, first interval counted from the start."""
    return track.kind.startswith(RESTORE_TEST) or track.kind == DRILL


def _summary(outcome: Outcome) -> dict[str, object]:
    public = outcome.public()
    return {k: public[k] for k in ("job", "status", "seconds", "bytes_added", "snapshot_ids",
                                   "error")}


def _fmt(when: datetime) -> str:
    return clock.format_time(when)
