"""`tag`: change the tags of snapshots, as restic does it.

A snapshot object is written once and named by its content, so a snapshot with other
tags is a new snapshot: written first (with `original` naming the first id, so `copy`
still knows it), then the old one removed. A snapshot that may not be removed (legal
hold, an Object Lock period) keeps its tags, and the command says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from medark.engine.worm import active_holds, lock_state, remove_snapshots
from medark.errors import UsageError
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.snapshot.store import SNAPSHOTS_PREFIX, save_snapshot
from medark.util import clock


@dataclass(frozen=True)
class TagChange:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    set_to: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.set_to is not None and (self.add or self.remove):
            raise UsageError("--set cannot be combined with --add or --remove")
        if self.set_to is None and not self.add and not self.remove:
            raise UsageError("nothing to do: give --add, --remove or --set")

    def apply(self, tags: list[str]) -> list[str]:
        if self.set_to is not None:
            return list(dict.fromkeys(self.set_to))
        kept = [t for t in tags if t not in self.remove]
        return list(dict.fromkeys([*kept, *self.add]))


@dataclass
class Retagged:
    changed: list[tuple[Snapshot, Snapshot]] = field(default_factory=list)
    """(old, new) pairs."""
    unchanged: int = 0
    kept: list[tuple[Snapshot, str]] = field(default_factory=list)
    """Snapshots that needed new tags but may not be replaced, and why."""


def retag(repo: Repository, snapshots: list[Snapshot], change: TagChange,
          note: Callable[[str], None]) -> Retagged:
    """The caller holds the exclusive lock."""
    result = Retagged()
    holds = active_holds(repo)
    now = clock.now()
    for snap in snapshots:
        tags = change.apply(snap.tags)
        if tags == snap.tags:
            result.unchanged += 1
            continue
        state = lock_state(repo, snap.id, holds)
        if state.locked(now):
            why = state.describe(now)
            note(f"snapshot {snap.short_id} is {why}: its tags cannot change")
            result.kept.append((snap, why))
            continue
        new = replace(snap, tags=tags, original=snap.original or snap.id, id="")
        save_snapshot(repo, new)
        removed, kept = remove_snapshots(repo, [snap], False, note)
        if not removed:  # locked after all: the old one stays, so drop the new one
            repo.backend.remove(SNAPSHOTS_PREFIX + new.id)
            result.kept.extend((k.snapshot, k.reason) for k in kept)
            continue
        result.changed.append((snap, new))
    return result
