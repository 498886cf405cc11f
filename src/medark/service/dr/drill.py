"""`dr drill`: a non-disruptive test of the DR side (VMware SRM's test recovery). A
writable copy of the standby comes up on a free 127.0.0.1 port, the DR site's services
start against it, the health checks run, and everything is torn down again; the time to
healthy is what compliance cites as the drill's switch time.

Production is not touched: no fencing, no pooler change, no promotion. The standby keeps
replaying and streaming (the copy is a pg_basebackup *from* it: the primary is not read
at all), and the copy replicates from nobody and archives nowhere
(sources/postgres/sandbox.py).

Only services given as start/stop commands run in a drill: they receive the sandbox's
address in MEDARK_DR_NEW_PRIMARY_HOST/PORT, and MEDARK_DR_DRILL=1. A systemd unit cannot
be pointed at the sandbox (its unit file names its database), so it is skipped with a
note; starting it would start the DR site's real service against whatever it is
configured for.

Steps: preflight, clone standby, start services, health checks, then always tear down
(the services started are stopped, the sandbox destroyed), whether a step failed or not.
A MariaDB system takes the same steps in service/dr/mariadb_drill.py (its own preflight,
copy and sql checks; `_wait` and `_destroy` are the hooks it overrides).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.dr import DrConf, Service
from medark.config.plans import MedarkConfig
from medark.errors import HealthCheckFailed, MedarkError, StandbyNotReady, UsageError
from medark.service.dr import apps
from medark.service.dr.action import ActionState, DrOutcome, run_action
from medark.service.dr.health import wait_healthy
from medark.service.dr.nodes import Member, members, one_line
from medark.service.dr.pair import checks_for, find_pair, require_streaming
from medark.service.dr.steps import WARNING, StepNote, Steps
from medark.util import clock

if TYPE_CHECKING:
    from medark.config.dr import Health
    from medark.service.dr.health import HealthResult
    from medark.sources.mysql.sandbox import MariaSandbox
    from medark.sources.postgres.sandbox import Sandbox

DRILL_DIR_ENV = "MEDARK_DR_DRILL_DIR"
"""Where the sandboxes go (each in its own `medark-sandbox-XXXX`); default
`<system temp dir>/medark-drill`. It must hold a copy of the standby's data."""
CLONE_TIMEOUT = 300.0
"""From the start of pg_basebackup until the copy takes a write."""


class DrillLeftovers(MedarkError):
    """The drill's teardown could not stop a service or remove the sandbox: something of
    the drill is still running or on disk (production is as it was)."""

    code = "drill_leftovers"


def drill_dir() -> Path:
    """The directory the sandboxes are created under. The default, in a directory anyone
    may write to, must be ours and no symlink: a sandbox is a copy of the database."""
    given = os.environ.get(DRILL_DIR_ENV)
    if given:
        return Path(given)
    path = Path(tempfile.gettempdir()) / "medark-drill"
    try:
        path.mkdir(mode=0o755, exist_ok=True)
        found = os.lstat(path)
        if stat.S_ISLNK(found.st_mode) or found.st_uid != os.geteuid():
            raise UsageError(f"{path} is not a directory of this user's: set "
                             f"{DRILL_DIR_ENV} to where the drill's copy may go")
        os.chmod(path, 0o755)  # whatever the umask: the sandbox's owner must get in
    except OSError as exc:
        raise UsageError(f"cannot use {path} for the drill's copy: "
                         f"{exc.strerror or exc}; set {DRILL_DIR_ENV}") from None
    return path


def drill(config: MedarkConfig, system: str, catalog: Catalog, *,
          requested_by: str | None = None,
          on_step: Callable[[DrStep], None] | None = None) -> DrOutcome:
    """Drill `system`: the outcome's `state.switch_seconds` is the time to healthy (from
    the start of the copy until every health check passed), its error the one the command
    exits with (HealthCheckFailed, 29, when a check never passed)."""
    from medark.service.dr.status import selected
    from medark.service.dr.switchover import supported

    conf = selected(config, system)[system]
    kind: type[Drill] = Drill
    if conf.primary.kind == "mariadb":
        from medark.service.dr.mariadb_drill import MariaDrill, RepositoryDrill

        # service/dr/mariadb_drill.py: the same steps on MariaDB
        kind = MariaDrill if conf.feed == "stream" else RepositoryDrill
    else:
        supported(system, conf, "drill", repository_feed=True)
    return run_action(catalog, system, "drill",
                      lambda steps, state: kind(system, conf, steps, state).run(),
                      requested_by=requested_by, on_step=on_step)


@dataclass
class Drill:
    system: str
    conf: DrConf
    steps: Steps
    state: ActionState
    sandbox: Sandbox | MariaSandbox | None = None
    started: list[Service] = field(default_factory=list)
    """Services whose start was attempted (a failed wave included): stopped on teardown."""
    env: dict[str, str] = field(default_factory=dict)

    def run(self) -> None:
        standby = self._preflight()
        failed = True
        try:
            began = clock.monotonic()
            self._clone(standby)
            self._start_services(standby.node.site)
            self._check(standby.node.site, began)
            failed = False
        finally:
            self._tear_down(standby, failed)

    def _preflight(self) -> Member:
        from medark.sources.postgres.replication import replication_lag

        with self.steps.step("preflight") as note:
            if self.conf.feed == "repository":  # no path to the primary is needed
                return self._standby_alone(note)
            pair = find_pair(self.system, self.conf)
            said = [require_streaming(self.system, pair)]
            try:
                lag = replication_lag(pair.primary.dsn, pair.standby.dsn)
                said.append(f"lag {lag.bytes} bytes")
            except MedarkError as exc:  # the copy is of the standby; the lag is a note
                said.append(f"lag unknown ({one_line(exc)})")
            said.append("production is not changed")
            note.detail = "; ".join(said)
        return pair.standby

    def _standby_alone(self, note: StepNote) -> Member:
        """A repository-fed standby: the DR site may have no path to the primary."""
        standby = next((m for m in members(self.conf, 5) if m.role == "standby"), None)
        if standby is None:
            raise StandbyNotReady(f"{self.system}: neither node is a standby in recovery")
        note.detail = (f"standby {standby.address} (site {standby.node.site}) replaying "
                       f"repository {self.conf.repository}; production is not changed")
        return standby

    def _clone(self, standby: Member) -> None:
        from medark.sources.postgres.sandbox import clone_standby

        with self.steps.step("clone standby") as note:
            self.sandbox = clone_standby(standby.dsn, standby.datadir, drill_dir(),
                                         standby.bin_dir, CLONE_TIMEOUT)
            note.detail = (f"copy of {standby.address} writable at 127.0.0.1:"
                           f"{self.sandbox.port} in {self.sandbox.ready_seconds:.1f} s "
                           f"({self.sandbox.base})")
        self.env = {**apps.hook_env(self.system, "NEW_PRIMARY", "127.0.0.1",
                                    self.sandbox.port), "MEDARK_DR_DRILL": "1"}

    def _start_services(self, site: str) -> None:
        services = self.conf.services.get(site, [])
        units = [s.name for s in services if s.unit is not None]
        commands = [s for s in services if s.unit is None]
        skipped = (f"skipped systemd unit{'s' if len(units) > 1 else ''} "
                   f"{', '.join(units)} (a unit cannot be pointed at the sandbox)"
                   if units else "")
        if not commands:
            self.steps.skip("start services", skipped or f"no services at site {site}")
            return
        with self.steps.step("start services") as note:
            names: list[str] = []
            for _order, group in groupby(sorted(commands, key=lambda s: s.order),
                                         key=lambda s: s.order):
                wave = list(group)
                self.started += wave
                names += apps.start_all(wave, self.env)
            note.detail = "; ".join(x for x in (
                f"started {', '.join(names)} at site {site} against the sandbox",
                skipped) if x)

    def _check(self, site: str, began: float) -> None:
        assert self.sandbox is not None
        checks = checks_for(self.conf, site)
        if not checks:
            self.state.switch_seconds = clock.monotonic() - began
            self.steps.skip("health checks", f"no health checks apply to site {site}: the "
                            "time to healthy is the time until the services started")
            return
        with self.steps.step("health checks") as note:
            results = self._wait(checks)
            healthy = clock.monotonic() - began
            failed = [r for r in results if not r.ok]
            if failed:
                raise HealthCheckFailed(
                    f"{self.system}: drill: health check {failed[0].name} did not pass "
                    f"within its timeout ({failed[0].detail}); the drill is torn down, "
                    "production is as it was")
            self.state.switch_seconds = healthy
            note.detail = (", ".join(f"{r.name} ok" for r in results)
                           + f"; healthy {healthy:.1f} s after the copy began")

    def _wait(self, checks: list[Health]) -> list[HealthResult]:
        """Every check until it passes or its timeout is up (sql ones on the sandbox)."""
        assert self.sandbox is not None
        return wait_healthy(checks, self.sandbox.dsn)

    def _destroy(self, standby: Member) -> None:
        from medark.sources.postgres.sandbox import Sandbox, destroy

        assert isinstance(self.sandbox, Sandbox)
        destroy(self.sandbox, standby.bin_dir)

    def _tear_down(self, standby: Member, failed: bool) -> None:
        """Stop what the drill started and destroy the sandbox. A problem here is noted
        and, when the drill itself went well, what the command exits with; it never
        hides the drill's own failure."""
        with self.steps.step("tear down") as note:
            done: list[str] = []
            problems: list[str] = []
            stopped: list[str] = []
            # One by one, in reverse order: a stop that fails does not keep the others up.
            for service in sorted(self.started, key=lambda s: s.order, reverse=True):
                try:
                    apps.stop_service(service, self.env)
                    stopped.append(service.name)
                except MedarkError as exc:
                    problems.append(one_line(exc))
            if stopped:
                done.append("stopped " + ", ".join(stopped))
            if self.sandbox is not None:
                try:
                    self._destroy(standby)
                    done.append(f"sandbox on port {self.sandbox.port} destroyed, "
                                f"{self.sandbox.base} removed")
                except (MedarkError, OSError) as exc:
                    problems.append(f"sandbox {self.sandbox.base}: {one_line(exc)}")
            note.detail = "; ".join(done + problems) or "nothing to tear down"
            if problems:
                note.result = WARNING
                if not failed:
                    self.state.afterwards = DrillLeftovers(
                        f"{self.system}: the drill passed, but its teardown left something "
                        f"behind: {'; '.join(problems)}")
