"""Medical-record retention that no `forget` can undercut
(docs/compliance.md#medical-record-retention).

A backup of a system that holds medical records carries the tag `records=outpatient` or
`records=inpatient` (the daemon and `medark run` add it from the configuration). Whatever
policy `forget` applies, and even when a snapshot is named by id, the newest such
snapshot of each calendar year (per host and paths) stays for 15 years (outpatient and
emergency records) or 30 years (inpatient records) after it was taken: one restorable
point per year across the whole period the law requires. Pure: `now` is passed in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from medark.config.records import RECORD_MINIMUM
from medark.snapshot.model import Snapshot

RECORD_TAG = "records"


def record_class(snapshot: Snapshot) -> str | None:
    for tag in snapshot.tags:
        name, _, value = tag.partition("=")
        if name == RECORD_TAG and value in RECORD_MINIMUM:
            return value
    return None


def record_holds(snapshots: Iterable[Snapshot], now: datetime) -> dict[str, str]:
    """Snapshot id -> why it must be kept."""
    newest: dict[tuple[str, tuple[str, ...], str, int], Snapshot] = {}
    for snap in snapshots:
        kind = record_class(snap)
        if kind is None:
            continue
        taken = snap.time.astimezone(UTC) if snap.time.tzinfo else snap.time.replace(tzinfo=UTC)
        if now - taken > RECORD_MINIMUM[kind]:
            continue
        key = (snap.hostname, tuple(sorted(snap.paths)), kind, taken.year)
        held = newest.get(key)
        if held is None or (snap.time, snap.id) > (held.time, held.id):
            newest[key] = snap
    years = {kind: minimum.days // 365 for kind, minimum in RECORD_MINIMUM.items()}
    return {snap.id: f"{kind} medical records: newest of {year}, kept {years[kind]} years"
            for (_host, _paths, kind, year), snap in newest.items()}
