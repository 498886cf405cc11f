"""Prune on a repository with immutable retention: locked objects stay, and say so.

Between planning and the first write, `keep_locked` asks which objects prune would
delete are still under retention (the retention sidecar first, else one HeadObject):
- a locked pack that would be removed or repacked is kept as it is (repacking it would
  only store its blobs twice until it expires);
- a locked old index file cannot be deleted, so it stays live: every pack it lists is
  kept (an index file must never name a pack that is gone), those packs are left out of
  the new index (the old file still lists them), and the file is not marked superseded;
- a locked unreferenced pack is left for a later prune.
Prune then runs its normal phases on what remains. Deletions that still meet a lock
(another client set it, or a legal hold without retention sidecar) are caught in
engine/prune.py, never fail the run, and are reported the same way.
"""

from __future__ import annotations

from datetime import datetime

from medark.engine.prune_plan import Action, PrunePlan, PruneStats, _count
from medark.errors import ObjectNotFound, RepositoryCorrupt
from medark.repo import index_file
from medark.repo.pack import pack_name
from medark.repo.repository import Repository
from medark.util import clock


def _until(repo: Repository, name: str, now: datetime) -> tuple[bool, datetime | None]:
    keeper = repo.retention
    if keeper is None:
        return False, None
    until = keeper.locked_until(name, now)
    return until is not None, until


def index_packs(repo: Repository, name: str) -> set[bytes]:
    try:
        plain = repo.read_index_file(name)
    except (ObjectNotFound, RepositoryCorrupt):
        return set()
    return {pack_id for pack_id, _blobs in index_file.iter_packs(plain)}


def keep_locked(repo: Repository, plan: PrunePlan) -> list[tuple[str, datetime | None]]:
    """Adjust the plan so that nothing locked is deleted; returns what is kept and why."""
    if repo.retention is None or repo.retention.capability is None:
        return []
    now = clock.now()
    kept: list[tuple[str, datetime | None]] = []
    locked_index = []
    for name in plan.old_index:
        locked, until = _until(repo, name, now)
        if locked:
            locked_index.append(name)
            kept.append((name, until))
    for name in locked_index:
        plan.frozen |= index_packs(repo, name)
    changed = bool(locked_index)
    for pack in plan.packs:
        if pack.action not in (Action.REMOVE, Action.REPACK):
            continue
        if pack.id in plan.frozen:
            pack.action = Action.KEEP
            changed = True
            continue
        locked, until = _until(repo, pack_name(pack.id.hex()), now)
        if locked:
            pack.action = Action.KEEP
            kept.append((pack_name(pack.id.hex()), until))
            changed = True
    for pack_id in list(plan.unreferenced):
        locked, until = _until(repo, pack_name(pack_id.hex()), now)
        if locked:
            del plan.unreferenced[pack_id]
            kept.append((pack_name(pack_id.hex()), until))
            changed = True
    if not changed:
        return kept
    plan.old_index = [n for n in plan.old_index if n not in set(locked_index)]
    if not plan.old_index and not any(p.action is not Action.KEEP for p in plan.packs):
        plan.index_leftovers = 0  # nothing can change: do not write another index copy
    plan.db.executemany("UPDATE packs SET action = ? WHERE pack = ?",
                        ((p.action.value, p.id) for p in plan.packs))
    snapshots, dry_run = plan.stats.snapshots, plan.stats.dry_run
    plan.stats = PruneStats(snapshots=snapshots, dry_run=dry_run)
    _count(plan, repo.config.pack_size)
    return kept
