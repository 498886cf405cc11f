"""Prometheus metrics of the protection plans, read from the catalog at every scrape (so
they are never stale and a restarted daemon loses nothing).

`medark_plan_rpo_seconds` is the achieved RPO from the job history: the age of the newest
successful backup's recovery point (its start). It is what a plan's alerting rule should
compare with `medark_plan_rpo_target_seconds`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from medark.catalog.models import RUNNING, SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.util import clock


class PlanCollector(Collector):
    def __init__(self, config: MedarkConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = clock.now()
        rpo = GaugeMetricFamily("medark_plan_rpo_seconds",
                                "Age of the plan's newest successful backup (achieved RPO)",
                                labels=["plan", "system"])
        target = GaugeMetricFamily("medark_plan_rpo_target_seconds",
                                   "The plan's RPO target", labels=["plan", "system"])
        rto = GaugeMetricFamily("medark_plan_rto_target_seconds", "The plan's RTO target",
                                labels=["plan", "system"])
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
        yield from (rpo, target, rto, success, duration, added, jobs, running)


def plan_registry(config: MedarkConfig, catalog: Catalog) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PlanCollector(config, catalog))
    return registry
