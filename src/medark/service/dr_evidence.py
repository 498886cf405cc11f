"""What the DR actions in the catalog prove, for compliance, the reports and /metrics: the
switch time an auditor clocks, and the newest drill or switch a system can show.

The switch time of a switch-over, failover or failback is the business interruption the
steps recorded: from the first disruptive step (the primary site's services stopped, or
the clients held) to the end of the last step that brings the application back at the
DR site (clients redirected, services started, health checks passed). The reinstatement
of the old primary afterwards and a failback's catch-up before the switch serve no client
and do not count. Only `switch_seconds` (the time writes were held) is not that figure:
it leaves out the services' start and health, which Sichuan 1.4.2's "switch-over of the
main systems" includes. A drill's `switch_seconds` is its time to healthy. A record
without those steps falls back on `switch_seconds`, then on nothing.

Read-only: nothing here writes to the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from medark.catalog.dr_records import DrActionRecord
from medark.catalog.models import SUCCEEDED
from medark.catalog.store import Catalog

DR_WINDOW = timedelta(days=90)
"""How recent a drill or switch must be to prove a system can switch (app_switch,
switch_time): one quarter, the period of the quarterly report that must cover DR
(Sichuan 1.6.2); a monthly drill schedule leaves two misses of slack."""
SWITCH_KINDS = ("switchover", "failover", "failback")
EVIDENCE_KINDS = ("drill", *SWITCH_KINDS)
HISTORY_LIMIT = 1000
"""DR actions read per system: a quarter of daily drills is far fewer."""

_DISRUPTIVE = ("hold clients",)
_DISRUPTIVE_PREFIX = "stop services at "
_SERVING = ("redirect clients", "health checks")
_SERVING_PREFIX = "start services at "


def switch_time(record: DrActionRecord) -> float | None:
    """Seconds the business was switching (see the module's docstring); None unknown."""
    if record.kind == "drill":
        return record.switch_seconds
    begins = [s.started for s in record.steps
              if s.name in _DISRUPTIVE or s.name.startswith(_DISRUPTIVE_PREFIX)]
    ends = [s.started + timedelta(seconds=s.seconds) for s in record.steps
            if s.name in _SERVING or s.name.startswith(_SERVING_PREFIX)]
    if begins and ends and max(ends) >= min(begins):
        return (max(ends) - min(begins)).total_seconds()
    return record.switch_seconds


@dataclass(frozen=True)
class DrEvidence:
    """The DR actions of one system that compliance cites, as of a moment."""

    latest: DrActionRecord | None
    """The newest succeeded drill or switch that ended by then (any age)."""
    failed_drill: DrActionRecord | None
    """A drill that failed after `latest` (the newest such), or None."""


def dr_evidence(catalog: Catalog, system: str, now: datetime,
                institution: str | None = None) -> DrEvidence:
    """As of `now`: actions that ended later are not counted (of `institution`'s
    systems only, when given)."""
    ended = [r for r in catalog.dr_history(system, HISTORY_LIMIT, institution)
             if r.kind in EVIDENCE_KINDS and r.finished_at is not None
             and r.finished_at <= now]
    ended.sort(key=lambda r: (r.finished_at or r.started_at, r.id), reverse=True)
    latest = next((r for r in ended if r.status == SUCCEEDED), None)
    failed = next((r for r in ended if r.kind == "drill" and r.status != SUCCEEDED), None)
    if failed is not None and latest is not None and (
            (failed.finished_at or failed.started_at) < (latest.finished_at
                                                          or latest.started_at)):
        failed = None
    return DrEvidence(latest, failed)
