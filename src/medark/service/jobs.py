"""Jobs for the CLI and the daemon: running a plan or its restore test now, and the
metrics server (which catalog: service/catalog_access)."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer as MetricsServer

from prometheus_client import start_http_server

from medark.catalog.models import SUCCEEDED
from medark.catalog.store import Catalog
from medark.config.plans import RESTORE_TEST, MedarkConfig
from medark.errors import UsageError
from medark.scheduler.restore_test import run_restore_test
from medark.scheduler.runner import Launcher, Outcome, launch, run_backup, run_copy, run_forget
from medark.service.metrics import DrLag, RepositorySizes, plan_registry


def serve_metrics(listen: str, config: MedarkConfig, catalog: Catalog) -> MetricsServer:
    """Prometheus's /metrics on HOST:PORT, in a thread of its own."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--metrics-listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:9478")
    try:
        registry = plan_registry(config, catalog, RepositorySizes(config, catalog).start(),
                                 DrLag(config).start())
        server, _thread = start_http_server(int(port), host.strip("[]"), registry)
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {listen}: {exc.strerror}") from None
    return server


def verify_plan_now(config: MedarkConfig, plan: str, catalog: Catalog,
                    source: str | None = None, launcher: Launcher = launch) -> Outcome:
    """A restore test of `plan` now, from its repository or from `source`, one of its copy
    targets (recorded as `restore_test:SOURCE`, the offsite RTO)."""
    _known(config, plan)
    own = config.plans[plan].repository
    if source is None or source == own:
        return run_restore_test(config, plan, catalog, launcher=launcher)
    targets = [c.to for c in config.plans[plan].copies]
    if source not in targets:
        raise UsageError(f"--from {source}: not a copy target of plan {plan} (its copies: "
                         f"{', '.join(targets) or 'none'})")
    return run_restore_test(config, plan, catalog, launcher=launcher,
                            kind=f"{RESTORE_TEST}:{source}")


def _known(config: MedarkConfig, plan: str) -> None:
    if plan not in config.plans:
        raise UsageError(f"no plan named {plan} (defined: {', '.join(sorted(config.plans))})")


def run_plan_now(config: MedarkConfig, plan: str, catalog: Catalog,
                 launcher: Launcher = launch) -> list[tuple[str, Outcome]]:
    """(job kind, outcome) of the plan's backup, then — when it succeeded — one copy to
    each of its copy targets (continuous ones included: the point is offsite now), each
    copy that succeeded followed by the target's retention, and last the plan's own
    retention (forget), so that nothing is thinned locally before it went offsite."""
    _known(config, plan)
    backup = run_backup(config, plan, catalog, launcher=launcher)
    if backup.status != SUCCEEDED:
        return [("backup", backup)]
    done = [("backup", backup)]
    for copy in config.plans[plan].copies:
        copied = run_copy(config, plan, copy.to, catalog, launcher=launcher)
        done.append((f"copy:{copy.to}", copied))
        if copied.status == SUCCEEDED:
            done.append((f"forget:{copy.to}",
                         run_forget(config, plan, catalog, launcher, target=copy.to)))
    return [*done, ("forget", run_forget(config, plan, catalog, launcher))]
