"""The recoverable windows of the agent's database plans, for the server's restore wizard
(docs/server.md, "Point-in-time restore").

A window is a span of whole seconds any of which `medark pg restore --time` / `medark
mysql restore --time` can reach: it starts where a base backup ended (its `stop_time`)
and ends at the newest archived WAL / binlog, or where a gap in the archive stops the
replay. Windows of successive base backups over one unbroken archive are one window
(the restore picks the newest base backup before the time anyway). They are the facts
`medark pg status` / `mysql status` print, computed in process from the plan's
repository: only snapshots tagged `system=SYSTEM` count, so a shared repository never
lends one system another's cluster.

A source is named by its type (`postgres`, `mariadb`); a system with several sources of
one type names each cluster `postgres:SYSTEM_ID` / `mariadb:SERVER_ID`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from medark.config.plans import MedarkConfig
from medark.engine import mysql_restore
from medark.engine.mysql_binlog import BinlogArchive
from medark.engine.pg_wal import WalArchive
from medark.engine.pg_window import WalMap, pg_base_backups, stop_time
from medark.repo.repository import Repository
from medark.service.session import open_configured
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots
from medark.sources.postgres.wal import (
    DEFAULT_SEGMENT_SIZE,
    parse_lsn,
    segment_name,
    segment_of,
)
from medark.util import clock

LOG_SOURCES = {"postgres": "wal", "mariadb": "binlog"}
"""Source type -> the kind of log its windows are made of."""
SNAPSHOT_KIND = {"postgres": "postgres", "mariadb": "mysql"}
CLUSTER_KEY = {"postgres": "system_id", "mariadb": "archive_id"}
MAX_WINDOWS = 100
"""Per plan: the newest ones (a gap every day for months would be a long list)."""


@dataclass(frozen=True)
class Window:
    kind: str
    source: str
    cluster: str
    """The cluster's system id (postgres) or the server's archive id (mariadb): what the
    restore passes as --system-id / --server."""
    start: datetime
    end: datetime
    base: str
    """The full id of the base backup the window starts from."""
    gap_after: bool

    def report(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "cluster": self.cluster,
                "start": clock.format_time(self.start), "end": clock.format_time(self.end),
                "base": self.base, "gap_after": self.gap_after}

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def window_plans(config: MedarkConfig) -> list[str]:
    """The plans whose system has a postgres or mariadb source with continuous capture
    (`stream = true`)."""
    return sorted(name for name, plan in config.plans.items()
                  if any(s.type in LOG_SOURCES and s.stream
                         for s in config.systems[plan.system].sources))


def plan_windows(config: MedarkConfig, plan: str,
                 opener: Callable[[MedarkConfig, str], Repository] = open_configured
                 ) -> list[Window] | None:
    """The plan's windows, oldest first; None when its repository holds no base backup
    of the system yet (nothing known, which is not "no window")."""
    spec = config.plans[plan]
    types = sorted({s.type for s in config.systems[spec.system].sources
                    if s.type in LOG_SOURCES and s.stream})
    repo = opener(config, spec.repository)
    try:
        snaps = [s for s in all_snapshots(repo) if f"system={spec.system}" in s.tags]
        found: list[Window] = []
        known = False
        for source_type in types:
            clusters = _clusters(snaps, source_type)
            known = known or bool(clusters)
            for cluster in clusters:
                name = source_type if len(clusters) == 1 else f"{source_type}:{cluster}"
                found += (_pg_windows(repo, snaps, cluster, name) if source_type == "postgres"
                          else _mysql_windows(repo, snaps, cluster, name))
    finally:
        repo.close()
    if not known:
        return None
    return sorted(found, key=lambda w: (w.start, w.source))[-MAX_WINDOWS:]


def compute(config: MedarkConfig,
            opener: Callable[[MedarkConfig, str], Repository] = open_configured
            ) -> dict[str, list[dict[str, Any]]]:
    """{plan: its windows' reports} for every window plan that has a base backup."""
    report: dict[str, list[dict[str, Any]]] = {}
    for plan in window_plans(config):
        found = plan_windows(config, plan, opener)
        if found is not None:
            report[plan] = [w.report() for w in found]
    return report


def _clusters(snaps: list[Snapshot], source_type: str) -> list[str]:
    kind, key = SNAPSHOT_KIND[source_type], CLUSTER_KEY[source_type]
    return sorted({str(s.source.get(key)) for s in snaps
                   if s.source.get("kind") == kind and s.source.get(key)})


def _pg_windows(repo: Repository, snaps: list[Snapshot], cluster: str, name: str
                ) -> list[Window]:
    backups = pg_base_backups(snaps, cluster)
    size = int(backups[-1].source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
    archive = WalArchive(repo, cluster)
    wal = WalMap.build(archive.inventory(), size)

    def archived_at(segno: int) -> datetime | None:  # as service/pg.py plan_restore
        for tli in range(wal.newest_timeline, 0, -1):
            record = archive.find(segment_name(tli, segno, size))
            if record is not None:
                return clock.parse_time(record.archived)
        return None

    newest = wal.newest_segno()
    newest_time = archived_at(newest) if newest is not None else None
    spans: list[tuple[datetime, datetime | None, str, bool]] = []
    for backup in backups:
        chain = wal.chain_from(parse_lsn(str(backup.source["start_lsn"])))
        if chain.last < segment_of(parse_lsn(str(backup.source["stop_lsn"])), size):
            continue  # its own WAL is incomplete: never consistent
        end = archived_at(chain.last) if chain.gap_at is not None else newest_time
        spans.append((stop_time(backup), end, backup.id, chain.gap_at is not None))
    return _merged("wal", name, cluster, spans)


def _mysql_windows(repo: Repository, snaps: list[Snapshot], cluster: str, name: str
                   ) -> list[Window]:
    backups = mysql_restore.mysql_backups(snaps, cluster)
    archive = BinlogArchive(repo, cluster)
    inv = archive.inventory()
    newest = mysql_restore.newest_archived(archive, inv)
    newest_time = clock.parse_time(newest.archived) if newest else None
    spans: list[tuple[datetime, datetime | None, str, bool]] = []
    for backup in backups:
        first = backup.source.get("binlog_file")
        if not first:
            continue  # binary logging was off: no position to roll forward from
        chain = mysql_restore.chain_from(archive, inv, str(first))
        if not chain.records:
            continue
        last = chain.records[-1]
        end = (datetime.fromtimestamp(last.last_event_time or 0, UTC)
               if chain.gap_at is not None else newest_time)
        spans.append((mysql_restore.stop_time(backup), end, backup.id,
                      chain.gap_at is not None))
    return _merged("binlog", name, cluster, spans)


def _merged(kind: str, name: str, cluster: str,
            spans: list[tuple[datetime, datetime | None, str, bool]]) -> list[Window]:
    """Whole seconds only (a start rounded up, an end down); spans that end at the same
    moment are one window from the oldest base backup among them."""
    windows: dict[datetime, Window] = {}
    for started, ended, base, gap in sorted(spans, key=lambda s: s[0]):
        if ended is None:
            continue
        start = _whole(started, math.ceil)
        end = _whole(ended, math.floor)
        if start > end:
            continue
        held = windows.get(end)
        if held is None or start < held.start:
            windows[end] = Window(kind, name, cluster, start, end, base, gap)
    return sorted(windows.values(), key=lambda w: w.start)


def _whole(moment: datetime, rounding: Callable[[float], int]) -> datetime:
    return datetime.fromtimestamp(rounding(moment.timestamp()), UTC)


Report = dict[str, list[dict[str, Any]]]
EVERY = 60.0
"""Seconds between two computations (a job of a window plan ending starts one sooner)."""


class WindowWatch:
    """Computes the windows on a thread of its own (a slow repository never holds up a
    heartbeat) every `every` seconds and when poked; the heartbeat takes the report only
    when it differs from the last one the server took. A failure is one `windows_error`
    event and no report."""

    def __init__(self, config: MedarkConfig, on_event: Callable[[str, dict[str, object]],
                                                                  None],
                 every: float = EVERY,
                 compute_report: Callable[[MedarkConfig], Report] = compute) -> None:
        self.config = config
        self.plans = set(window_plans(config))
        self.every = every
        self._compute = compute_report
        self._on_event = on_event
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._latest: Report | None = None
        self._sent: Report | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.plans:
            self._thread = threading.Thread(target=self._loop, name="uplink-windows",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def poke(self, plan: str) -> None:
        """A job of `plan` ended: compute again now if it is a window plan."""
        if plan in self.plans:
            self._wake.set()

    def pending(self) -> Report | None:
        """The report for this heartbeat: the newest, when the server has not taken it."""
        with self._lock:
            return None if self._latest is None or self._latest == self._sent \
                else self._latest

    def taken(self, report: Report) -> None:
        """The server answered the heartbeat that carried `report`."""
        with self._lock:
            self._sent = report

    def refresh(self) -> None:
        """One computation; the newest report kept, or one line said."""
        try:
            report = self._compute(self.config)
        except Exception as exc:  # whatever it is, the heartbeat goes on
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._on_event("windows_error", {"error": text[:300]})
            return
        with self._lock:
            self._latest = report

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self.refresh()
            self._wake.wait(self.every)
