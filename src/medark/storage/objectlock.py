"""Optional backend capability: immutable retention (WORM) and legal holds.

A backend that can lock objects (S3 with Object Lock) offers these methods besides the
Backend Protocol; every other backend simply lacks them, and `object_lock(backend)`
answers None ("not supported"). The storage layer knows nothing of what an object means:
the caller says which names get which retention (a `RetentionRule`).

Semantics every implementation must keep:
- an object under retention or legal hold cannot be deleted or overwritten through this
  backend (remove raises ObjectLocked) nor through the store's own API;
- reads see the *original* version of a name (the one Medark wrote, which is the oldest:
  Medark never overwrites), even when a later delete marker hides it or a later
  overwrite covers it; `tampered()` names such objects after a listing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

MODES = ("compliance", "governance")

RetentionRule = Callable[[str], "tuple[str, datetime] | None"]
"""For the name of an object about to be written: (mode, retain-until), or None to write
it without retention (lock files, which must stay deletable)."""


@dataclass(frozen=True)
class Retention:
    mode: str | None
    """'compliance', 'governance', or None when the object has no retention."""
    until: datetime | None
    legal_hold: bool = False

    def locked_at(self, when: datetime) -> bool:
        return self.legal_hold or (self.until is not None and self.until > when)


@dataclass(frozen=True)
class Tampered:
    """An object whose original (locked) version is hidden or covered by later writes."""

    name: str
    deleted: bool
    """The latest version is a delete marker (a plain S3 DELETE)."""
    overwritten: int
    """How many later versions were written over the original."""

    def describe(self) -> str:
        parts = []
        if self.deleted:
            parts.append("hidden by a delete marker")
        if self.overwritten:
            parts.append(f"overwritten {self.overwritten} time(s)")
        return " and ".join(parts)


@runtime_checkable
class ObjectLockBackend(Protocol):
    def object_lock_enabled(self) -> bool:
        """Whether this location can lock objects (the bucket has Object Lock)."""
        ...

    def create_locked(self) -> None:
        """Create the location with object locking enabled (a new bucket)."""
        ...

    def set_retention_rule(self, rule: RetentionRule | None) -> None:
        """Every object saved from now on gets the retention the rule gives it."""
        ...

    def set_retention(self, name: str, until: datetime, mode: str) -> None:
        """Extend (never shorten) the retention of an existing object."""
        ...

    def retention(self, name: str) -> Retention:
        """The object's retention and legal hold; ObjectNotFound if absent."""
        ...

    def set_legal_hold(self, name: str, on: bool) -> None:
        ...

    def tampered(self) -> list[Tampered]:
        """Objects seen by the listings so far whose original is hidden or overwritten."""
        ...


def object_lock(backend: object) -> ObjectLockBackend | None:
    """The lock capability of a backend, looking through wrappers (retry, logging) that
    keep the wrapped backend in `.inner`; None when the storage cannot lock objects."""
    seen = 0
    current: object | None = backend
    while current is not None and seen < 16:
        if isinstance(current, ObjectLockBackend):
            return current
        current = getattr(current, "inner", None)
        seen += 1
    return None
