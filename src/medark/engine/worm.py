"""Immutable retention seen from the commands: each snapshot's lock state, legal holds,
and removing snapshots without ever failing on a locked one.

Legal holds are recorded on every backend as sealed marker objects
`holds/<sha256>` = {"snapshot", "held", "time", "hostname", "username", "reason"}; the
newest marker of a snapshot decides (a release is a new marker with held = false, so
holds work on append-only storage and leave an audit trail). `forget` never removes a
held snapshot, so `prune` keeps its data. On S3 with Object Lock the hold is also an
S3 legal hold on the snapshot file, everything it needs (snapshot/retention.py) and the
marker itself: no credential without s3:PutObjectLegalHold can delete them.

A marker that cannot be read or verified fails closed. Its name is the hash of its
sealed bytes, so nothing tells which snapshot it holds, or whether it holds or
releases: it may hold any snapshot. While one exists, `forget` removes no snapshot
(each is kept with a line naming the marker), `prune` deletes nothing, and on S3
`release` lifts no legal hold (the released snapshot shares at least the config and
keys with every other). `check` reports it as an error.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from medark.errors import (
    LockUnavailable,
    MedarkError,
    ObjectLocked,
    ObjectNotFound,
    RepositoryCorrupt,
)
from medark.repo.repository import Repository
from medark.repo.retention import hold_capability
from medark.snapshot.model import Snapshot
from medark.snapshot.retention import needed_objects
from medark.snapshot.store import SNAPSHOTS_PREFIX
from medark.storage.objectlock import ObjectLockBackend, Retention, Tampered
from medark.util import clock, jsondoc

HOLDS_PREFIX = "holds/"
INSPECT_HOLDS = ("`medark check` names damaged hold markers, `medark snapshot status` "
                 "the holds that can be read")
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class HoldRecord:
    snapshot: str
    held: bool
    time: datetime
    hostname: str = ""
    username: str = ""
    reason: str = ""
    name: str = ""

    def to_json(self) -> bytes:
        return json.dumps({"snapshot": self.snapshot, "held": self.held,
                           "time": clock.format_time(self.time), "hostname": self.hostname,
                           "username": self.username, "reason": self.reason},
                          sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, name: str) -> HoldRecord:
        """Strict: a record that does not name a snapshot id and say held or not is
        damaged, not a marker that holds nothing. RepositoryCorrupt, naming the marker,
        for anything but fields of the writer's types (survey_holds keeps it as damaged,
        which keeps the snapshots it may hold)."""
        try:
            doc = jsondoc.load_object(raw)
            snapshot = jsondoc.text(doc, "snapshot", None)
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise ValueError("snapshot is not a snapshot id")
            return cls(snapshot, jsondoc.flag(doc, "held"), jsondoc.timestamp(doc, "time"),
                       jsondoc.text(doc, "hostname"), jsondoc.text(doc, "username"),
                       jsondoc.text(doc, "reason"), name)
        except KeyError as exc:
            raise RepositoryCorrupt(f"{name}: field {exc} is missing") from None
        except jsondoc.MALFORMED:
            raise RepositoryCorrupt(f"{name}: not a valid hold record") from None


@dataclass(frozen=True)
class DamagedHold:
    """A hold marker that is there but cannot be read or verified."""

    name: str
    problem: str

    def describe(self) -> str:
        return f"hold marker {self.name} cannot be read or verified ({self.problem})"


class HoldSource(Protocol):
    """What reading hold markers needs (docs/architecture.md, convention 4)."""

    def load_unpacked(self, name: str) -> bytes: ...

    def list_names(self, prefix: str) -> Iterator[str]: ...


@dataclass(frozen=True)
class HoldSurvey:
    records: list[HoldRecord]
    """The readable markers, oldest first."""
    damaged: list[DamagedHold]

    @property
    def active(self) -> dict[str, HoldRecord]:
        """Snapshot id -> the marker that holds it, for snapshots whose newest readable
        marker holds."""
        latest: dict[str, HoldRecord] = {}
        for record in self.records:
            latest[record.snapshot] = record
        return {sid: r for sid, r in latest.items() if r.held}

    def blocking(self, consequence: str) -> str:
        """One line: the first damaged marker, what it blocks, how to inspect it."""
        first = self.damaged[0]
        more = len(self.damaged) - 1
        others = f" (and {more} more damaged marker{'' if more == 1 else 's'})" if more else ""
        return f"{first.describe()}{others}: {consequence}; {INSPECT_HOLDS}"


def survey_holds(repo: HoldSource) -> HoldSurvey:
    """Every hold marker: the readable ones and the damaged ones."""
    records: list[HoldRecord] = []
    damaged: list[DamagedHold] = []
    for name in repo.list_names(HOLDS_PREFIX):
        try:
            records.append(HoldRecord.from_json(repo.load_unpacked(name), name))
        except ObjectNotFound:
            continue  # gone since the listing: it protects nothing now
        except MedarkError as exc:
            problem = str(exc).removeprefix(f"{name}: ") or type(exc).__name__
            damaged.append(DamagedHold(name, problem))
    records.sort(key=lambda r: (r.time, r.name))
    damaged.sort(key=lambda d: d.name)
    return HoldSurvey(records, damaged)


def active_holds(repo: Repository) -> dict[str, HoldRecord]:
    """Snapshot id -> the marker that holds it, for snapshots whose newest marker holds."""
    return survey_holds(repo).active


def refuse_if_damaged(survey: HoldSurvey, consequence: str) -> None:
    """Fail closed: RepositoryCorrupt naming the first damaged marker, if there is one."""
    if survey.damaged:
        raise RepositoryCorrupt(survey.blocking(consequence))


# ---- lock state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LockState:
    snapshot: str
    mode: str | None = None
    until: datetime | None = None
    legal_hold: bool = False
    """The S3 legal hold flag on the snapshot file."""
    held: HoldRecord | None = None
    """The hold marker, on any backend."""
    supported: bool = True
    """False when the storage cannot lock objects (only hold markers apply)."""

    def locked(self, now: datetime) -> bool:
        return (self.held is not None or self.legal_hold
                or (self.until is not None and self.until > now))

    def describe(self, now: datetime) -> str:
        parts = []
        if self.held is not None:
            parts.append(f"under legal hold since {clock.format_time(self.held.time)}")
        elif self.legal_hold:
            parts.append("under legal hold (S3)")
        if self.until is not None and self.until > now:
            parts.append(f"locked ({self.mode}) until {clock.format_time(self.until)}")
        elif self.until is not None:
            parts.append(f"lock expired {clock.format_time(self.until)}")
        if not parts:
            return "not locked" if self.supported else "not locked (storage cannot lock)"
        return ", ".join(parts)

    def public(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.snapshot, "short_id": self.snapshot[:8], "locked": self.locked(now),
            "mode": self.mode,
            "until": clock.format_time(self.until) if self.until else None,
            "legal_hold": self.legal_hold or self.held is not None,
            "held_since": clock.format_time(self.held.time) if self.held else None,
            "hold_reason": self.held.reason if self.held else None,
        }


def lock_state(repo: Repository, snapshot_id: str,
               holds: dict[str, HoldRecord]) -> LockState:
    capability = hold_capability(repo.backend)
    held = holds.get(snapshot_id)
    if capability is None:
        return LockState(snapshot_id, held=held, supported=False)
    try:
        found: Retention = capability.retention(SNAPSHOTS_PREFIX + snapshot_id)
    except ObjectNotFound:
        return LockState(snapshot_id, held=held)
    return LockState(snapshot_id, found.mode, found.until, found.legal_hold, held)


def lock_states(repo: Repository, snapshot_ids: list[str]) -> list[LockState]:
    holds = active_holds(repo)
    return [lock_state(repo, sid, holds) for sid in snapshot_ids]


def tampered_objects(repo: Repository) -> list[Tampered]:
    """Objects whose locked original was hidden by a delete marker or overwritten, as
    far as the listings of this process saw (check lists everything)."""
    capability = hold_capability(repo.backend)
    return capability.tampered() if capability is not None else []


# ---- removing snapshots ---------------------------------------------------------------------


@dataclass(frozen=True)
class Kept:
    snapshot: Snapshot
    reason: str
    until: datetime | None
    marker: str | None = None
    """The damaged hold marker that may hold it (None: a readable hold or a lock)."""

    def line(self) -> str:
        if self.marker is not None:
            return f"snapshot {self.snapshot.short_id} kept: {self.reason}"
        return f"snapshot {self.snapshot.short_id} is {self.reason}: kept"

    def public(self) -> dict[str, Any]:
        return {"id": self.snapshot.id, "short_id": self.snapshot.short_id,
                "reason": self.reason,
                "until": clock.format_time(self.until) if self.until else None,
                "damaged_marker": self.marker}


def remove_snapshots(
    repo: Repository, snapshots: list[Snapshot], dry_run: bool,
    note: Callable[[str], None], survey: HoldSurvey | None = None,
) -> tuple[list[Snapshot], list[Kept]]:
    """Remove (or with dry_run: only judge) snapshot files; snapshots under legal hold or
    retention are skipped with one line each, and every one while a hold marker is
    damaged (it may hold any of them). Returns (removed, kept)."""
    if not snapshots:
        return [], []
    survey = survey if survey is not None else survey_holds(repo)
    holds = survey.active
    now = clock.now()
    removed: list[Snapshot] = []
    kept: list[Kept] = []
    for snap in snapshots:
        state = lock_state(repo, snap.id, holds)
        if state.locked(now):
            why = Kept(snap, state.describe(now), state.until)
        elif survey.damaged:
            why = Kept(snap, survey.blocking("it may hold this snapshot"), None,
                       survey.damaged[0].name)
        elif dry_run:
            removed.append(snap)
            continue
        else:
            try:
                repo.backend.remove(SNAPSHOTS_PREFIX + snap.id)
                removed.append(snap)
                continue
            except ObjectLocked as exc:
                until = exc.until if isinstance(exc.until, datetime) else None
                reason = (f"locked until {clock.format_time(until)}" if until
                          else exc.reason or "under legal hold")
                why = Kept(snap, reason, until)
        kept.append(why)
        note(why.line())
    return removed, kept


# ---- legal holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldResult:
    snapshot: Snapshot
    marker: str
    objects: int
    """Objects whose S3 legal hold was switched (0 where the storage has none)."""
    storage_holds: bool


def _marker(repo: Repository, snap: Snapshot, held: bool, reason: str) -> str:
    record = HoldRecord(snap.id, held, clock.now(), socket.gethostname(),
                        getpass.getuser(), reason)
    return repo.save_unpacked(HOLDS_PREFIX, record.to_json())


def hold(repo: Repository, snap: Snapshot, reason: str = "",
         require_storage: bool = False) -> HoldResult:
    capability = hold_capability(repo.backend)
    if capability is None and require_storage:
        raise LockUnavailable(f"{repo.backend.properties().location} has no object lock: "
                              "only the hold marker could be recorded")
    names: set[str] = set()
    if capability is not None:
        names, _walked = needed_objects(repo, snap)
        names.add(SNAPSHOTS_PREFIX + snap.id)
    marker = _marker(repo, snap, True, reason)
    count = 0
    if capability is not None:
        names.add(marker)
        count = _set_legal_holds(capability, names, True)
    return HoldResult(snap, marker, count, capability is not None)


def _set_legal_holds(capability: ObjectLockBackend, names: set[str], on: bool) -> int:
    """Switch the S3 legal hold of these objects; how many there were (gone ones skipped)."""
    count = 0
    for name in sorted(names):
        try:
            capability.set_legal_hold(name, on)
            count += 1
        except ObjectNotFound:
            continue
    return count


def release(repo: Repository, snap: Snapshot, find: Callable[[str], Snapshot]) -> HoldResult:
    """Record the release, then switch the S3 legal hold off on what no other held
    snapshot needs (`find` loads another snapshot by id)."""
    capability = hold_capability(repo.backend)
    survey = survey_holds(repo)
    if capability is not None:  # a damaged marker may hold a snapshot sharing objects
        refuse_if_damaged(survey, f"it may hold a snapshot that shares objects with "
                                  f"{snap.short_id}, so release lifts no S3 legal hold "
                                  "and records nothing")
    holds = survey.active
    marker = _marker(repo, snap, False, "")
    count = 0
    if capability is not None:
        names, _walked = needed_objects(repo, snap)
        names.add(SNAPSHOTS_PREFIX + snap.id)
        names.update(r.name for r in survey.records if r.snapshot == snap.id and r.held)
        for other_id in holds:
            if other_id == snap.id:
                continue
            try:
                other = find(other_id)
            except ObjectNotFound:
                continue
            other_names, _ = needed_objects(repo, other)
            names -= other_names
        count = _set_legal_holds(capability, names, False)
    return HoldResult(snap, marker, count, capability is not None)


# ---- what check reports -------------------------------------------------------------------


@dataclass
class LockReport:
    """Each snapshot's lock state and the objects an attacker hid or overwrote."""

    states: list[LockState]
    tampered: list[Tampered]
    policy: str | None
    now: datetime

    def public(self) -> dict[str, Any]:
        return {
            "lock_policy": self.policy,
            "snapshot_locks": [s.public(self.now) for s in self.states],
            "tampered_objects": [{"object": t.name, "deleted": t.deleted,
                                  "overwritten": t.overwritten} for t in self.tampered],
        }

    def print(self, text: Callable[[str], None], warn: Callable[[str], None]) -> None:
        if self.policy is None and not any(s.locked(self.now) for s in self.states) \
                and not self.tampered:
            return
        text(f"snapshot locks (lock period: {self.policy or 'none'}):")
        for state in self.states:
            text(f"  {state.snapshot[:8]}  {state.describe(self.now)}")
        for t in self.tampered:
            warn(f"warning: {t.name}: the locked original is {t.describe()}; medark reads "
                 "the original (someone with write access to the bucket did this)")


def lock_report(repo: Repository) -> LockReport:
    ids = sorted(n.removeprefix(SNAPSHOTS_PREFIX) for n in repo.list_names(SNAPSHOTS_PREFIX))
    policy = repo.retention.policy.describe() if repo.retention is not None else None
    return LockReport(lock_states(repo, ids), tampered_objects(repo), policy, clock.now())
