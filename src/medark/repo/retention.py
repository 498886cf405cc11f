"""Immutable retention (WORM) for a repository: the lock policy fixed at init, retention
on every object written, and extension of older objects that a new snapshot needs.

The policy lives in the sealed config (`extra.object_lock`), so it is fixed at init like
the cipher. With a policy, every object written gets retain-until = now + days + margin
(lock files excepted: they must stay deletable). A new snapshot also needs objects
written long ago (packs deduplicated against, the index files naming them, the config
and the key files); before the snapshot is written, every such object whose *known*
retain-until falls before snapshot time + days is extended to now + days + margin.

Known expiries are kept in a small SQLite sidecar next to the index cache
(`<cache>/<repository id>/retention.sqlite`), so a backup costs no HeadObject or
PutObjectRetention for objects already locked long enough; an object this client has
never seen costs one HeadObject, then its expiry is known. The margin (10 % of the lock
period, at least 1 day, at most 30) makes extension happen in batches: after one
extension an object is not touched again for `margin` days. It is also why an object
may stay locked up to `margin` days longer than the lock period.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from medark.errors import LockUnavailable, ObjectNotFound, UsageError
from medark.repo.config import RepoConfig
from medark.storage.base import Backend
from medark.storage.objectlock import MODES, ObjectLockBackend, Retention, object_lock
from medark.util import clock

CONFIG_KEY = "object_lock"
UNLOCKED_PREFIXES = ("locks/",)
"""Objects written without retention: they are deleted in normal operation."""
EXTEND_WORKERS = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (name TEXT PRIMARY KEY, until INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trees (id BLOB PRIMARY KEY, until INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class LockPolicy:
    days: int
    mode: str
    margin_days: int

    @classmethod
    def new(cls, days: int, mode: str = "compliance") -> LockPolicy:
        if days < 1:
            raise UsageError(f"--lock-days {days}: give a number of days of at least 1")
        if days > 36_500:
            raise UsageError(f"--lock-days {days}: at most 36500 days (100 years)")
        if mode not in MODES:
            raise UsageError(f"--lock-mode {mode!r}: use compliance or governance")
        return cls(days, mode, min(30, max(1, -(-days // 10))))

    def to_doc(self) -> dict[str, object]:
        return {"days": self.days, "mode": self.mode, "margin_days": self.margin_days}

    @classmethod
    def from_config(cls, config: RepoConfig) -> LockPolicy | None:
        doc = config.extra.get(CONFIG_KEY)
        if not isinstance(doc, dict):
            return None
        return cls(int(doc["days"]), str(doc["mode"]), int(doc.get("margin_days", 1)))

    def describe(self) -> str:
        return f"{self.days} days ({self.mode} mode)"


def _ts(value: datetime) -> int:
    return int(value.timestamp())


class RetentionKeeper:
    """One repository's lock policy and what this client knows of object expiries.
    Thread-safe: the retention rule is called from the pack upload threads."""

    def __init__(self, policy: LockPolicy, capability: ObjectLockBackend | None,
                 path: Path | None) -> None:
        self.policy = policy
        self.capability = capability
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(":memory:" if path is None else str(path),
                                   check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=60000")
        self._db.executescript(_SCHEMA)
        if capability is not None:
            capability.set_retention_rule(self.rule)

    @classmethod
    def attach(cls, backend: Backend, config: RepoConfig,
               path: Path | None) -> RetentionKeeper | None:
        """The keeper of a repository with a lock policy (None without one). A storage
        that cannot lock objects still opens (reading a mirror of a locked bucket must
        work), but anything that must lock an object fails with LockUnavailable."""
        policy = LockPolicy.from_config(config)
        if policy is None:
            return None
        capability = object_lock(backend)
        if capability is not None and not capability.object_lock_enabled():
            capability = None
        return cls(policy, capability, path)

    def close(self) -> None:
        if self.capability is not None:
            self.capability.set_retention_rule(None)
        with self._lock:
            self._db.close()

    # ---- times -------------------------------------------------------------------------

    def target_from(self, now: datetime) -> datetime:
        return now + timedelta(days=self.policy.days + self.policy.margin_days)

    def horizon(self, at: datetime) -> datetime:
        """What a snapshot taken at `at` needs: its objects locked until at least this."""
        return at + timedelta(days=self.policy.days)

    def require(self) -> ObjectLockBackend:
        if self.capability is None:
            raise LockUnavailable(
                f"this repository has a lock period of {self.policy.describe()}, but its "
                "storage cannot lock objects (no S3 Object Lock); nothing was locked")
        return self.capability

    # ---- new objects -----------------------------------------------------------------

    def rule(self, name: str) -> tuple[str, datetime] | None:
        if name.startswith(UNLOCKED_PREFIXES):
            return None
        target = self.target_from(clock.now())  # per object: `copy --follow` runs for days
        self._record([name], target)
        return self.policy.mode, target

    # ---- known expiries --------------------------------------------------------------

    def _record(self, names: Iterable[str], until: datetime) -> None:
        stamp = _ts(until)
        with self._lock:
            self._db.executemany(
                "INSERT INTO objects VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                "SET until = max(until, excluded.until)", ((n, stamp) for n in names))

    def known(self, name: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT until FROM objects WHERE name = ?",
                                   (name,)).fetchone()
        return None if row is None else int(row[0])

    def forget(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM objects WHERE name = ?", (name,))

    def retention(self, name: str) -> Retention:
        """Asks the storage (one HeadObject) and remembers the expiry."""
        found = self.require().retention(name)
        if found.until is not None:
            self._record([name], found.until)
        return found

    def locked_until(self, name: str, now: datetime) -> datetime | None:
        """When `name`'s retention ends if that is after `now` (None: not locked now),
        from the sidecar when it knows a later expiry, else from the storage."""
        known = self.known(name)
        if known is not None and known > _ts(now):
            return datetime.fromtimestamp(known, now.tzinfo)
        if self.capability is None:
            return None
        try:
            found = self.retention(name)
        except ObjectNotFound:
            return None
        return found.until if found.until is not None and found.until > now else None

    # ---- extension -------------------------------------------------------------------

    def ensure(self, names: Iterable[str], horizon: datetime) -> int:
        """Extend every object whose retention ends before `horizon` to now + days +
        margin; returns how many were extended (HeadObject only for unknown ones)."""
        capability = self.require()
        # Objects that would need extending within half a margin are extended now too,
        # so extension comes in batches (see the module docstring).
        wanted = _ts(horizon + timedelta(days=self.policy.margin_days / 2))
        target = self.target_from(clock.now())
        todo = [n for n in dict.fromkeys(names) if (self.known(n) or 0) < wanted]
        if not todo:
            return 0

        def one(name: str) -> bool:
            try:
                current = capability.retention(name)
            except ObjectNotFound:
                return False  # removed meanwhile: nothing to protect
            if current.until is not None and _ts(current.until) >= wanted:
                self._record([name], current.until)
                return False
            capability.set_retention(name, target, self.policy.mode)
            self._record([name], target)
            return True

        return _each(one, todo)

    def legal_hold(self, names: Iterable[str], on: bool) -> int:
        capability = self.require()
        todo = list(dict.fromkeys(names))

        def one(name: str) -> int:
            try:
                capability.set_legal_hold(name, on)
            except ObjectNotFound:
                return 0
            return 1

        return _each(one, todo)

    # ---- trees whose whole content is known to be locked long enough ------------------

    def tree_covered(self, tree_id: bytes, horizon: datetime) -> bool:
        with self._lock:
            row = self._db.execute("SELECT until FROM trees WHERE id = ?",
                                   (tree_id,)).fetchone()
        return row is not None and int(row[0]) >= _ts(horizon)

    def record_trees(self, tree_ids: Iterable[bytes], until: datetime) -> None:
        stamp = _ts(until)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO trees VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
                "SET until = max(until, excluded.until)", ((t, stamp) for t in tree_ids))
            self._db.execute("COMMIT")

    def known_minimum(self, names: Iterable[str]) -> int | None:
        """The earliest known expiry among these names (None if any is unknown)."""
        lowest: int | None = None
        for name in names:
            value = self.known(name)
            if value is None:
                return None
            lowest = value if lowest is None else min(lowest, value)
        return lowest


def hold_capability(backend: Backend) -> ObjectLockBackend | None:
    """The storage's legal-hold capability, if it has one and it is enabled."""
    capability = object_lock(backend)
    if capability is not None and capability.object_lock_enabled():
        return capability
    return None


def create_lockable(backend: Backend) -> None:
    """A lock period needs storage that locks objects: create the bucket with Object
    Lock, or refuse (exit 13) when the storage cannot lock or the bucket was made without."""
    location = backend.properties().location
    capability = object_lock(backend)
    if capability is None:
        raise LockUnavailable(
            f"{location} cannot lock objects: a lock period needs an S3 bucket with Object "
            "Lock (local and NFS repositories: use `medark snapshot hold` instead)")
    if not backend.exists():
        capability.create_locked()
    if not capability.object_lock_enabled():
        raise LockUnavailable(
            f"the bucket of {location} has no Object Lock: create it with Object Lock "
            "enabled, or give a bucket that does not exist yet and medark init creates it")


def _each(one: Callable[[str], int], names: list[str]) -> int:
    """`one` over the names in EXTEND_WORKERS threads (each a round trip to the store);
    concurrent.futures is imported here, not at every command's start."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=EXTEND_WORKERS) as pool:
        return sum(pool.map(one, names))
