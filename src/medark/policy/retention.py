"""Retention: which snapshots a `--keep-*` policy keeps, which it removes, and why.

Pure (docs/architecture.md, conventions 7 and 8): no I/O, no clock. `apply_policy`
follows restic's ApplyPolicy rule for rule, so operators moving from restic get the same
decisions:

* snapshots are examined newest first; a snapshot is kept if ANY rule keeps it, and it
  counts against every counted rule it satisfies;
* a counted rule (--keep-last/hourly/daily/weekly/monthly/yearly N) keeps the newest
  snapshot of each new bucket (hour, day, ISO week, month, year) until N buckets are kept;
  N = -1 means unlimited; when a rule still has counts left at the oldest snapshot, that
  snapshot is kept too (the longest history the counts allow);
* --keep-within D keeps everything newer than (newest snapshot - D); the --keep-within-
  hourly/... variants keep one snapshot per bucket inside that window;
* --keep-tag keeps every snapshot carrying all tags of one of the tag lists (not counted);
* an empty policy keeps everything ("policy is empty");
* beyond restic: a snapshot flagged as suspicious (possible ransomware) and the newest
  unflagged snapshot older than it are always kept ("flagged as suspicious", "last clean
  before suspicious ID"; policy/anomaly.py), until the flagged one is forgotten by id;
  and for snapshots tagged `records=outpatient|inpatient`, the newest of each year for
  15 / 30 years (policy/records.py), even when forgotten by id.

Differences from restic, on purpose: buckets are computed in UTC (restic uses the time
zone each snapshot was recorded in), so the outcome does not depend on where the command
runs; durations use util.sizes.parse_duration (1y = 365 days, 1m = 30 days) instead of
calendar arithmetic. "Newest" ignores snapshots dated after `now` (clock skew on another
host), as restic does with the wall clock; `now` is passed in, never read here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from medark.errors import UsageError
from medark.policy.anomaly import retention_holds
from medark.policy.netconfig import netconfig_holds
from medark.policy.records import record_holds
from medark.snapshot.model import Snapshot
from medark.util.sizes import parse_duration

UNLIMITED = -1

Bucketer = Callable[[datetime, int], tuple[int, ...]]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _always(_t: datetime, nr: int) -> tuple[int, ...]:
    return (nr,)


def _hour(t: datetime, _nr: int) -> tuple[int, ...]:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime, _nr: int) -> tuple[int, ...]:
    return (t.year, t.month, t.day)


def _week(t: datetime, _nr: int) -> tuple[int, ...]:
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _month(t: datetime, _nr: int) -> tuple[int, ...]:
    return (t.year, t.month)


def _year(t: datetime, _nr: int) -> tuple[int, ...]:
    return (t.year,)


# (policy field, bucketer, reason); the order is restic's and fixes the order of reasons.
_COUNTED: tuple[tuple[str, Bucketer, str], ...] = (
    ("last", _always, "last snapshot"),
    ("hourly", _hour, "hourly snapshot"),
    ("daily", _day, "daily snapshot"),
    ("weekly", _week, "weekly snapshot"),
    ("monthly", _month, "monthly snapshot"),
    ("yearly", _year, "yearly snapshot"),
)
_WITHIN: tuple[tuple[str, Bucketer, str], ...] = (
    ("within_hourly", _hour, "hourly within"),
    ("within_daily", _day, "daily within"),
    ("within_weekly", _week, "weekly within"),
    ("within_monthly", _month, "monthly within"),
    ("within_yearly", _year, "yearly within"),
)


@dataclass(frozen=True)
class Span:
    """A --keep-within* duration, keeping the text the user gave for the reasons."""

    delta: timedelta
    label: str

    @classmethod
    def parse(cls, text: str) -> Span:
        return cls(parse_duration(text), text)

    def __bool__(self) -> bool:
        return self.delta > timedelta(0)


def parse_taglist(text: str) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'): a snapshot matches when it has all of them."""
    tags = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tags:
        raise UsageError(f"empty tag list {text!r}")
    return tags


@dataclass(frozen=True)
class RetentionPolicy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Span | None = None
    within_hourly: Span | None = None
    within_daily: Span | None = None
    within_weekly: Span | None = None
    within_monthly: Span | None = None
    within_yearly: Span | None = None
    keep_tags: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        for name, _bucketer, _reason in _COUNTED:
            if getattr(self, name) < UNLIMITED:
                raise UsageError(
                    f"--keep-{name}: negative values other than -1 (unlimited) are not allowed"
                )

    def empty(self) -> bool:
        counted = any(getattr(self, name) for name, _b, _r in _COUNTED)
        spans = any(getattr(self, name) for name in ("within", *(n for n, _b, _r in _WITHIN)))
        return not (counted or spans or self.keep_tags)

    def describe(self) -> str:
        """One line for the operator, e.g. 'keep 7 daily, all monthly snapshots'."""
        parts = []
        for name, _bucketer, _reason in _COUNTED:
            count = getattr(self, name)
            label = "latest" if name == "last" else name
            if count == UNLIMITED:
                parts.append(f"all {label}")
            elif count > 0:
                parts.append(f"{count} {label}")
        text = f"{', '.join(parts)} snapshots" if parts else ""
        windows = []
        for name, _bucketer, _reason in _WITHIN:
            span = getattr(self, name)
            if span:
                windows.append(f"{name.removeprefix('within_')} snapshots within {span.label}")
        if windows:
            text = ", ".join(p for p in (text, *windows) if p)
        if self.keep_tags:
            tags = " or ".join(_tag_label(t) for t in self.keep_tags)
            text = " and ".join(p for p in (text, f"all snapshots with tags {tags}") if p)
        if self.within:
            within = f"all snapshots within {self.within.label} of the newest"
            text = " and ".join(p for p in (text, within) if p)
        return "keep " + (text or "everything (empty policy)")


def _tag_label(tags: Sequence[str]) -> str:
    return "[" + ", ".join(tags) + "]"


@dataclass(frozen=True)
class Decision:
    """One snapshot's fate and why. `counters`: what each counted rule had left after it
    (restic's KeepReason.counters; zeros omitted)."""

    snapshot: Snapshot
    reasons: tuple[str, ...]
    counters: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot.public(), "matches": list(self.reasons),
                "counters": dict(self.counters)}


@dataclass(frozen=True)
class RetentionResult:
    """Both lists newest first. Removed snapshots carry why no rule kept them."""

    keep: list[Decision]
    remove: list[Decision]

    @property
    def kept_snapshots(self) -> list[Snapshot]:
        return [d.snapshot for d in self.keep]

    @property
    def removed_snapshots(self) -> list[Snapshot]:
        return [d.snapshot for d in self.remove]


def _newest_first(snapshots: Iterable[Snapshot]) -> list[Snapshot]:
    by_id = sorted(snapshots, key=lambda s: s.id)
    return sorted(by_id, key=lambda s: _utc(s.time), reverse=True)


def _window_start(newest: datetime | None, span: Span) -> datetime | None:
    """Snapshots strictly after this are inside the window; None means all of them."""
    if newest is None:
        return None
    try:
        return newest - span.delta
    except OverflowError:
        return None


def _inside(t: datetime, start: datetime | None) -> bool:
    return start is None or t > start


def apply_policy(
    snapshots: Sequence[Snapshot], policy: RetentionPolicy, now: datetime
) -> RetentionResult:
    """Split `snapshots` (one group) into kept and removed, each with its reasons."""
    ordered = _newest_first(snapshots)
    if policy.empty():
        return RetentionResult([Decision(s, ("policy is empty",)) for s in ordered], [])
    if not ordered:
        return RetentionResult([], [])

    now_utc = _utc(now)
    past = [_utc(s.time) for s in ordered if _utc(s.time) < now_utc]
    newest = max(past) if past else None

    counts = {name: getattr(policy, name) for name, _b, _r in _COUNTED}
    last_bucket: dict[str, tuple[int, ...] | None] = {name: None for name, _b, _r in _COUNTED}
    for name, _b, _r in _WITHIN:
        last_bucket[name] = None
    within_start = _window_start(newest, policy.within) if policy.within else None

    keep: list[Decision] = []
    remove: list[Decision] = []
    oldest = len(ordered) - 1
    for nr, snap in enumerate(ordered):
        t = _utc(snap.time)
        reasons: list[str] = []
        why_not: list[str] = []

        for tags in policy.keep_tags:
            if set(tags) <= set(snap.tags):
                reasons.append(f"has tags {_tag_label(tags)}")
        if policy.keep_tags and not reasons:
            why_not.append("has none of the kept tags")

        if policy.within:
            if _inside(t, within_start):
                reasons.append(f"within {policy.within.label}")
            else:
                why_not.append(f"older than {policy.within.label} before the newest snapshot")

        for name, bucketer, reason in _COUNTED:
            count = counts[name]
            if count == 0:
                if getattr(policy, name) != 0:
                    why_not.append(f"{name}: all {getattr(policy, name)} kept already")
                continue
            bucket = bucketer(t, nr)
            if bucket != last_bucket[name] or nr == oldest:
                last_bucket[name] = bucket
                if count > 0:
                    counts[name] = count - 1
                reasons.append(reason)
            else:
                why_not.append(f"{name}: a newer snapshot of the same {_unit(name)} is kept")

        for name, bucketer, reason in _WITHIN:
            span: Span | None = getattr(policy, name)
            if not span:
                continue
            if not _inside(t, _window_start(newest, span)):
                why_not.append(f"{reason.split()[0]}: older than {span.label}")
                continue
            bucket = bucketer(t, nr)
            if bucket != last_bucket[name]:
                last_bucket[name] = bucket
                reasons.append(f"{reason} {span.label}")
            else:
                why_not.append(f"{reason.split()[0]}: a newer snapshot of the same "
                               f"{_unit(name)} is kept")

        if reasons:
            counters = {name: c for name, c in counts.items() if c != 0}
            keep.append(Decision(snap, tuple(reasons), counters))
        else:
            remove.append(Decision(snap, tuple(why_not)))
    return _apply_holds(keep, remove, now)


def _apply_holds(keep: list[Decision], remove: list[Decision], now: datetime
                 ) -> RetentionResult:
    """Whatever the policy says, snapshots flagged as suspicious and the newest unflagged
    snapshot older than each stay (policy/anomaly.py): the evidence and the last
    known-good state; and so do the yearly points of medical records (policy/records.py)
    and each network device's newest configuration versions (policy/netconfig.py)."""
    everything = [d.snapshot for d in (*keep, *remove)]
    protected = {**netconfig_holds(everything), **record_holds(everything, now),
                 **retention_holds(everything)}
    saved = [Decision(d.snapshot, (protected[d.snapshot.id],)) for d in remove
             if d.snapshot.id in protected]
    if not saved:
        return RetentionResult(keep, remove)
    ids = {d.snapshot.id for d in saved}
    order = {s.id: i for i, s in enumerate(_newest_first(d.snapshot for d in (*keep, *saved)))}
    kept = sorted([*keep, *saved], key=lambda d: order[d.snapshot.id])
    return RetentionResult(kept, [d for d in remove if d.snapshot.id not in ids])


def _unit(name: str) -> str:
    base = name.removeprefix("within_")
    return {"hourly": "hour", "daily": "day", "weekly": "ISO week", "monthly": "month",
            "yearly": "year"}.get(base, base)


# ---- grouping (restic's --group-by) --------------------------------------------------

GROUP_FIELDS = ("host", "paths", "tags")


def parse_group_by(text: str) -> frozenset[str]:
    """'host,paths' (restic's default), any subset of host/paths/tags, or '' for one group."""
    aliases = {"host": "host", "hosts": "host", "path": "paths", "paths": "paths",
               "tag": "tags", "tags": "tags"}
    chosen = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part not in aliases:
            raise UsageError(f"--group-by: unknown field {part!r}; use host, paths and/or tags")
        chosen.add(aliases[part])
    return frozenset(chosen)


@dataclass(frozen=True)
class GroupKey:
    """What the snapshots of one group share; None for a field not grouped by."""

    host: str | None
    paths: tuple[str, ...] | None
    tags: tuple[str, ...] | None

    def sort_key(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        return (self.host or "", self.paths or (), self.tags or ())

    def describe(self) -> str:
        parts = []
        if self.host is not None:
            parts.append(f"host [{self.host}]")
        if self.paths is not None:
            parts.append(f"paths [{', '.join(self.paths)}]")
        if self.tags is not None:
            parts.append(f"tags [{', '.join(self.tags)}]")
        return ", ".join(parts)


def group_snapshots(
    snapshots: Iterable[Snapshot], group_by: frozenset[str]
) -> list[tuple[GroupKey, list[Snapshot]]]:
    """Snapshots split by the chosen fields (paths and tags compared as sorted sets)."""
    groups: dict[GroupKey, list[Snapshot]] = {}
    for snap in snapshots:
        key = GroupKey(
            host=snap.hostname if "host" in group_by else None,
            paths=tuple(sorted(snap.paths)) if "paths" in group_by else None,
            tags=tuple(sorted(snap.tags)) if "tags" in group_by else None,
        )
        groups.setdefault(key, []).append(snap)
    return sorted(groups.items(), key=lambda item: item[0].sort_key())
