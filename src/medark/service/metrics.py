"""Prometheus metrics of the protection plans, read from the catalog at every scrape (so
they are never stale and a restarted daemon loses nothing).

`medark_plan_rpo_seconds` is the achieved RPO from the job history: the age of the newest
successful backup's recovery point (its start). It is what a plan's alerting rule should
compare with `medark_plan_rpo_target_seconds`; `medark_plan_rto_seconds` (the newest
successful restore test) with `medark_plan_rto_target_seconds`.

Repository sizes come from `medark --no-lock stats` children, which read every index:
they are refreshed in the background (after a job wrote to the repository, and every
REFRESH_SECONDS), never during a scrape, and never hold up a prune."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from medark.catalog.models import RUNNING, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
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


class PlanCollector(Collector):
    def __init__(self, config: MedarkConfig, catalog: Catalog,
                 sizes: RepositorySizes | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self.sizes = sizes

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
                  sizes: RepositorySizes | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PlanCollector(config, catalog, sizes))
    return registry
