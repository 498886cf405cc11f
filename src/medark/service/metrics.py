"""Prometheus metrics of the protection plans, read from the catalog at every scrape (so
they are never stale and a restarted daemon loses nothing).

`medark_plan_rpo_seconds` is the achieved RPO from the job history: the age of the newest
successful backup's recovery point (its start). It is what a plan's alerting rule should
compare with `medark_plan_rpo_target_seconds`; `medark_plan_rto_seconds` (the newest
successful restore test) with `medark_plan_rto_target_seconds`.

Repository sizes come from `medark --no-lock stats` children, which read every index:
they are refreshed in the background (after a job wrote to the repository, and every
REFRESH_SECONDS), never during a scrape, and never hold up a prune.

DR (`[dr.SYSTEM]`): the standby lag is read by a background thread as well (DrLag, every
LAG_SECONDS, each node's connection given LAG_CONNECT_TIMEOUT), so a dead node delays
the next reading, never a scrape; a lag that is unknown (a node down, nothing streaming)
has no sample, never a 0. The last drill and switches come from the catalog at every
scrape, with the switch time an auditor clocks (service/dr_evidence.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from medark.catalog.models import RUNNING, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.dr import DrConf, Node
from medark.config.plans import MedarkConfig
from medark.service.dr.status import dr_status
from medark.service.dr_evidence import EVIDENCE_KINDS, HISTORY_LIMIT, switch_time
from medark.service.repository_stats import RepositoryStats, repository_stats
from medark.util import clock

REFRESH_SECONDS = 600.0
POLL_SECONDS = 5.0


class RepositorySizes:
    """The newest `medark stats` of each repository, read by a background thread: again
    after a job wrote to it (backup, forget, copy, prune), and at least every `every`
    seconds (continuous streams and copies never finish)."""

    def __init__(self, config: MedarkConfig, catalog: Catalog, every: float = REFRESH_SECONDS,
                 poll: float = POLL_SECONDS) -> None:
        self.config = config
        self.catalog = catalog
        self.every = every
        self.poll = poll
        self.latest: dict[str, tuple[float, RepositoryStats]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="repository-sizes",
                                        daemon=True)

    def start(self) -> RepositorySizes:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> dict[str, tuple[float, RepositoryStats]]:
        with self._lock:
            return dict(self.latest)

    def _run(self) -> None:
        read_at: dict[str, datetime] = {}
        while not self._stop.is_set():
            now = clock.now()
            written = self._last_writes(min(read_at.values(), default=now), now)
            for name in sorted(self.config.repositories):
                last = read_at.get(name)
                due = (last is None or (now - last).total_seconds() >= self.every
                       or written.get(name, last) > last)
                if not due:
                    continue
                read_at[name] = clock.now()
                stats = repository_stats(self.config, name, reader=True)
                if stats.error is None:
                    with self._lock:
                        self.latest[name] = (read_at[name].timestamp(), stats)
                if self._stop.is_set():
                    return
            self._stop.wait(self.poll)

    def _last_writes(self, since: datetime, now: datetime) -> dict[str, datetime]:
        """Repository -> when the last job that wrote to it finished, for jobs that
        finished in (since, now]."""
        written: dict[str, datetime] = {}
        for job in self.catalog.jobs_between(since - timedelta(days=1), now):
            if job.finished_at is None or job.finished_at <= since:
                continue
            if job.kind == "prune" and job.plan.startswith("repository:"):
                name = job.plan.removeprefix("repository:")
            elif job.kind.startswith(("copy:", "follow:", "forget:")):
                name = job.kind.split(":", 1)[1]
            elif job.kind in ("backup", "forget") and job.plan in self.config.plans:
                name = self.config.plans[job.plan].repository
            else:
                continue
            written[name] = max(job.finished_at, written.get(name, job.finished_at))
        return written


LAG_SECONDS = 15.0
"""How often the DR standby lag is read (a Prometheus scrape interval)."""
LAG_CONNECT_TIMEOUT = 3
"""Seconds a lag reading waits for a node's connection (libpq connect_timeout, which
the DSN's own setting overrides): a node whose packets are dropped costs this much."""


@dataclass(frozen=True)
class LagReading:
    at: float
    """When it was read (UNIX time)."""
    bytes: int | None
    seconds: float | None
    """None: unknown (no sample is exported)."""


class DrLag:
    """The standby lag of every `[dr]` system as `medark dr status` reads it (roles as
    found, so a switched pair still reads right), refreshed by a background thread every
    `every` seconds; health checks and the pooler are left out, they are not lag."""

    def __init__(self, config: MedarkConfig, every: float = LAG_SECONDS,
                 connect_timeout: int = LAG_CONNECT_TIMEOUT) -> None:
        self.config = config
        self.every = every
        self.connect_timeout = connect_timeout
        self.latest: dict[str, LagReading] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dr-lag", daemon=True)

    def start(self) -> DrLag:
        if self.config.dr:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> dict[str, LagReading]:
        with self._lock:
            return dict(self.latest)

    def read(self) -> None:
        """One reading of every [dr] system (the thread's work, callable alone)."""
        for name, conf in sorted(self.config.dr.items()):
            try:
                probe = self.config.model_copy(update={"dr": {name: self._probe(conf)}})
                found = dr_status(probe, name)[0]
                reading = LagReading(clock.now().timestamp(), found.lag_bytes,
                                     found.lag_seconds)
            except Exception:  # a reading must never end the thread
                reading = LagReading(clock.now().timestamp(), None, None)
            with self._lock:
                self.latest[name] = reading
            if self._stop.is_set():
                return

    def _probe(self, conf: DrConf) -> DrConf:
        """`conf` without health checks and pooler, and for PostgreSQL with a short connect
        timeout in both DSNs (another kind's client keeps its own: the reading may take
        longer, a scrape still never waits for it)."""
        quiet = conf.model_copy(update={"health": [], "client_switch": None})
        if conf.primary.kind != "postgres":
            return quiet
        from psycopg import conninfo

        def node(found: Node) -> Node:
            if "connect_timeout" in conninfo.conninfo_to_dict(found.dsn):
                return found
            return found.model_copy(update={"dsn": conninfo.make_conninfo(
                found.dsn, connect_timeout=str(self.connect_timeout))})

        return quiet.model_copy(update={"primary": node(conf.primary),
                                        "standby": node(conf.standby)})

    def _run(self) -> None:
        while not self._stop.is_set():
            self.read()
            self._stop.wait(self.every)


class PlanCollector(Collector):
    def __init__(self, config: MedarkConfig, catalog: Catalog,
                 sizes: RepositorySizes | None = None, lag: DrLag | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self.sizes = sizes
        self.lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = clock.now()
        rpo = GaugeMetricFamily("medark_plan_rpo_seconds",
                                "Age of the plan's newest successful backup (achieved RPO)",
                                labels=["plan", "system"])
        target = GaugeMetricFamily("medark_plan_rpo_target_seconds",
                                   "The plan's RPO target", labels=["plan", "system"])
        rto = GaugeMetricFamily("medark_plan_rto_target_seconds", "The plan's RTO target",
                                labels=["plan", "system"])
        achieved_rto = GaugeMetricFamily(
            "medark_plan_rto_seconds", "Achieved RTO: start to verified of the plan's newest "
            "successful restore test", labels=["plan", "system"])
        success = GaugeMetricFamily("medark_job_last_success_timestamp_seconds",
                                    "When the newest successful job of a kind ended",
                                    labels=["plan", "kind"])
        duration = GaugeMetricFamily("medark_job_last_duration_seconds",
                                     "How long the newest finished job of a kind took",
                                     labels=["plan", "kind", "status"])
        added = GaugeMetricFamily("medark_job_last_bytes_added",
                                  "Bytes the newest successful job of a kind stored",
                                  labels=["plan", "kind"])
        for name, plan in sorted(self.config.plans.items()):
            target.add_metric([name, plan.system], plan.rpo.total_seconds())
            rto.add_metric([name, plan.system], plan.rto.total_seconds())
            tested = self.catalog.latest(name, "restore_test", SUCCEEDED)
            seconds = (tested.details or {}).get("rto_seconds") if tested else None
            if isinstance(seconds, int | float):
                achieved_rto.add_metric([name, plan.system], float(seconds))
            kinds = ["backup", *(f"copy:{c.to}" for c in plan.copies)]
            for kind in kinds:
                done = self.catalog.latest(name, kind, SUCCEEDED)
                if done is not None and done.finished_at is not None:
                    success.add_metric([name, kind], done.finished_at.timestamp())
                    added.add_metric([name, kind], float(done.bytes_added or 0))
                    if kind == "backup" and done.started_at is not None:
                        age = (now - done.started_at).total_seconds()
                        rpo.add_metric([name, plan.system], age)
                last = self.catalog.latest(name, kind)
                if last is not None and last.started_at and last.finished_at:
                    duration.add_metric([name, kind, last.status],
                                        (last.finished_at - last.started_at).total_seconds())
        jobs = CounterMetricFamily("medark_jobs", "Jobs recorded, by outcome",
                                   labels=["plan", "kind", "status"])
        running = GaugeMetricFamily("medark_jobs_running", "Jobs running now",
                                    labels=["plan", "kind"])
        for plan_name, kind, status, count in self.catalog.counts():
            jobs.add_metric([plan_name, kind, status], count)
            if status == RUNNING:
                running.add_metric([plan_name, kind], count)
        yield from (rpo, target, rto, achieved_rto, success, duration, added, jobs, running)
        yield from self._repository_metrics()
        yield from self._dr_metrics()

    def _dr_metrics(self) -> Iterator[GaugeMetricFamily]:
        lag_bytes = GaugeMetricFamily("medark_dr_standby_lag_bytes", "WAL the standby has "
                                      "not replayed of what the primary flushed",
                                      labels=["system"])
        lag_seconds = GaugeMetricFamily("medark_dr_standby_lag_seconds", "How far the "
                                        "standby's replay is behind, in time",
                                        labels=["system"])
        lag_read = GaugeMetricFamily("medark_dr_standby_lag_timestamp_seconds",
                                     "When the standby lag was read", labels=["system"])
        switch = GaugeMetricFamily("medark_dr_last_switch_seconds", "Switch time of the "
                                   "newest succeeded DR action of a kind (a drill: its time "
                                   "to healthy)", labels=["system", "kind"])
        switched = GaugeMetricFamily("medark_dr_last_switch_timestamp_seconds", "When the "
                                     "newest succeeded DR action of a kind ended",
                                     labels=["system", "kind"])
        drilled = GaugeMetricFamily("medark_dr_last_drill_success", "1 when the newest "
                                    "finished drill succeeded, else 0", labels=["system"])
        for name, reading in sorted((self.lag.snapshot() if self.lag else {}).items()):
            if reading.bytes is not None:
                lag_bytes.add_metric([name], float(reading.bytes))
            if reading.seconds is not None:
                lag_seconds.add_metric([name], reading.seconds)
            if reading.bytes is not None or reading.seconds is not None:
                lag_read.add_metric([name], reading.at)
        for name in sorted(self.config.dr):
            history = [r for r in self.catalog.dr_history(name, HISTORY_LIMIT)
                       if r.finished_at is not None]
            for kind in EVIDENCE_KINDS:
                done = next((r for r in history if r.kind == kind and r.status == SUCCEEDED),
                            None)
                if done is None or done.finished_at is None:
                    continue
                switched.add_metric([name, kind], done.finished_at.timestamp())
                seconds = switch_time(done)
                if seconds is not None:
                    switch.add_metric([name, kind], seconds)
            drill = next((r for r in history if r.kind == "drill"), None)
            if drill is not None:
                drilled.add_metric([name], 1.0 if drill.status == SUCCEEDED else 0.0)
        yield from (lag_bytes, lag_seconds, lag_read, switch, switched, drilled)

    def _repository_metrics(self) -> Iterator[GaugeMetricFamily]:
        raw = GaugeMetricFamily("medark_repository_raw_bytes", "Size of the data the "
                                "repository's snapshots hold, before dedup and compression",
                                labels=["repository", "site"])
        stored = GaugeMetricFamily("medark_repository_stored_bytes",
                                   "Bytes the repository takes on its storage",
                                   labels=["repository", "site"])
        ratio = GaugeMetricFamily("medark_repository_dedup_ratio", "raw / stored",
                                  labels=["repository", "site"])
        measured = GaugeMetricFamily("medark_repository_stats_timestamp_seconds",
                                     "When these sizes were read", labels=["repository", "site"])
        for name, (at, stats) in sorted((self.sizes.snapshot() if self.sizes else {}).items()):
            labels = [name, stats.site]
            raw.add_metric(labels, float(stats.raw_size or 0))
            stored.add_metric(labels, float(stats.stored_size or 0))
            ratio.add_metric(labels, float(stats.dedup_ratio or 0))
            measured.add_metric(labels, at)
        yield from (raw, stored, ratio, measured)


def plan_registry(config: MedarkConfig, catalog: Catalog,
                  sizes: RepositorySizes | None = None,
                  lag: DrLag | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PlanCollector(config, catalog, sizes, lag))
    return registry
