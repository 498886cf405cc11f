"""`prune`: delete the data no snapshot uses any more, in an order that survives a crash.

Runs under the repository's exclusive lock, so no backup adds packs or snapshots meanwhile.
Phases (each a function here, so tests can stop between any two):

Before anything, prune refuses (RepositoryCorrupt) while a legal-hold marker cannot be
read or verified (engine/worm.py): it may hold a snapshot, and fail closed means
deleting nothing until someone looks.

0. plan (engine/prune_plan.py): read every index file, list data/, walk every snapshot's
   trees to collect the used blob ids, and decide each pack's fate: keep (fully used, or
   partly used while the repository's unused share stays within --max-unused), repack
   (partly used: every partly used tree pack, and data packs with the most unused bytes
   first until the unused share is at most --max-unused), remove (no used blob), missing
   (indexed but absent: dropped from the index; prune refuses to run when a used blob has
   no copy in a pack that exists). Pack files in data/ that no index names (left by a
   killed backup) are removed too: the exclusive lock guarantees no backup is uploading.
   Nothing is written in this phase; --dry-run stops here.
1. repack: copy the used blobs of repacked packs into new packs. Each blob is verified
   (decrypted, decompressed, re-hashed) and its sealed bytes are copied as they are, with
   their existing ids; only the pack header is sealed anew. New packs are not yet in any
   index: a crash now leaves unreferenced packs, which the next prune removes.
2. write index: new index files covering ALL remaining packs (kept + new). Only the LAST
   new file lists the old index files as superseded, so a reader that honours superseded
   lists (check does) can only drop the old files once every new file exists. A crash
   here leaves old and new index files side by side; both describe packs that exist, so
   readers that load them all (Repository.sync_index) see a consistent repository; the
   next prune treats every index file as live and rewrites them.
3. delete the old index files, then resync the local index cache (it notices that index
   files disappeared and rebuilds). A crash now leaves old packs that no index names:
   unreferenced, harmless, removed by the next prune.
4. delete the removed, repacked and unreferenced packs.

Apart from the phases (not with --dry-run): the spool files of packs that a killed
backup or copy was filling (`.spool/.pack-*.tmp` in a local repository) are removed,
since under the exclusive lock no writer is filling one.

A crash at any point therefore leaves a repository in which every snapshot's blobs are in
an indexed pack that exists, which is what `check` verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path

from medark.engine.prune_locks import index_packs, keep_locked
from medark.engine.prune_plan import (
    DEFAULT_MAX_UNUSED,
    Action,
    PrunePlan,
    PruneStats,
    plan_prune,
)
from medark.engine.worm import refuse_if_damaged, survey_holds
from medark.errors import AlreadyExists, IntegrityError, ObjectLocked, RepositoryCorrupt
from medark.repo import index_file
from medark.repo.adopt import remove_spool_leftovers
from medark.repo.crypto import content_name
from medark.repo.pack import BlobType, PackBuilder, PackedBlob, pack_name
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.util.progress import NullProgress, Progress

MAX_BLOBS_PER_INDEX_FILE = 200_000
"""Keeps one new index file's plaintext (and the memory to build it) near 10 MB."""

NewPack = tuple[bytes, list[PackedBlob]]


@dataclass(frozen=True)
class PruneOptions:
    max_unused: float = DEFAULT_MAX_UNUSED
    """Percentage of the repository that may stay unused (100 = unlimited)."""
    dry_run: bool = False


def prune(
    repo: Repository,
    options: PruneOptions,
    work_dir: Path | None = None,
    progress: Progress | None = None,
    snapshots: list[Snapshot] | None = None,
) -> PruneStats:
    """Plan, then (unless a dry run or nothing to do) run phases 1-4 in order."""
    progress = progress or NullProgress()
    # Fail closed: a hold marker that cannot be read may hold a snapshot whose file is
    # gone (removed by hand, or by a Medark that skipped damaged markers): keep its data.
    refuse_if_damaged(survey_holds(repo), "prune deletes nothing while a legal hold "
                                          "cannot be read, as it may hold any snapshot")
    plan = plan_prune(repo, options.max_unused, work_dir, progress, snapshots)
    try:
        plan.stats.dry_run = options.dry_run
        locked = keep_locked(repo, plan)  # retention: nothing locked is deleted
        plan.stats.locked = locked
        if options.dry_run:
            return plan.stats
        # the exclusive lock: no writer is filling a pack, so every spool file is left over
        plan.stats.spool_files_removed, plan.stats.spool_bytes_removed = \
            remove_spool_leftovers(repo)
        if not plan.has_work:
            return plan.stats
        new_packs = repack(repo, plan, progress)
        write_index(repo, plan, new_packs)
        delete_old_index(repo, plan)
        delete_packs(repo, plan, progress)
        return plan.stats
    finally:
        plan.close()


# ---- phase 1 ---------------------------------------------------------------------------


def repack(repo: Repository, plan: PrunePlan, progress: Progress | None = None) -> list[NewPack]:
    """Copy the still-used blobs of repacked packs into new packs (not yet indexed)."""
    progress = progress or NullProgress()
    repacked = plan.with_action(Action.REPACK)
    progress.set_total(len(repacked), sum(p.size for p in repacked))
    builders = {t: PackBuilder() for t in BlobType}
    written: list[NewPack] = []
    plan.stats.packs_written = plan.stats.bytes_written = 0  # estimates until now
    copied_blobs = copied_bytes = 0
    for pack in repacked:
        wanted = plan.blobs_to_copy(pack.id)
        if wanted:
            data = repo.backend.load(pack_name(pack.id.hex()))
            for entry in wanted:
                sealed = _verified(repo, pack.id, data, entry)
                builder = builders[entry.type]
                builder.add(entry.type, entry.id, sealed, entry.raw_length)
                copied_blobs += 1
                copied_bytes += entry.length
                if len(builder) >= repo.config.pack_size:
                    written.append(_upload(repo, builder, plan.stats))
                    builders[entry.type] = PackBuilder()
            plan.mark_copied([e.id for e in wanted])
        progress.advance(files=1, nbytes=pack.size)
    for builder in builders.values():
        if builder.entries:
            written.append(_upload(repo, builder, plan.stats))
    stats = plan.stats
    stats.blobs_repacked, stats.bytes_repacked = copied_blobs, copied_bytes
    gone = [p for p in plan.packs if p.action in (Action.REMOVE, Action.REPACK)]
    stats.blobs_removed = sum(p.blobs for p in gone) - copied_blobs  # duplicates included
    stats.bytes_removed = sum(p.bytes for p in gone) - copied_bytes
    return written


def _verified(repo: Repository, pack_id: bytes, data: bytes, entry: PackedBlob) -> bytes:
    sealed = data[entry.offset : entry.offset + entry.length]
    try:
        if len(sealed) != entry.length:
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is shorter than its index says")
        repo.decode_blob(entry, sealed, pack_id)
    except IntegrityError as exc:
        raise RepositoryCorrupt(
            f"{exc}; this blob is still in use, so prune stopped before deleting anything; "
            "run `medark check --read-data`"
        ) from None
    return sealed


def _upload(repo: Repository, builder: PackBuilder, stats: PruneStats) -> NewPack:
    data = builder.finish(repo.crypto)
    pack_id = content_name(data)
    with suppress(AlreadyExists):  # the same bytes are already stored
        repo.backend.save(pack_name(pack_id), data)
    stats.packs_written += 1
    stats.bytes_written += len(data)
    return bytes.fromhex(pack_id), builder.entries


# ---- phase 2 ---------------------------------------------------------------------------


def write_index(repo: Repository, plan: PrunePlan, new_packs: list[NewPack]) -> list[str]:
    """Index files for every pack that stays; the last one names all old files superseded
    (written last, so that list is only ever seen once the whole new index exists)."""
    superseded = [bytes.fromhex(n.removeprefix(index_file.INDEX_PREFIX)) for n in plan.old_index]
    names: list[str] = []
    pending: list[NewPack] | None = None
    for batch in _batches(chain(plan.kept_packs(), new_packs)):
        if pending is not None:
            names.append(repo.save_unpacked(index_file.INDEX_PREFIX,
                                            index_file.encode(pending, [])))
        pending = batch
    if pending is not None:
        names.append(repo.save_unpacked(index_file.INDEX_PREFIX,
                                        index_file.encode(pending, superseded)))
    plan.stats.index_files_written = len(names)
    return names


def _batches(packs: Iterator[NewPack]) -> Iterator[list[NewPack]]:
    batch: list[NewPack] = []
    blobs = 0
    for pack in packs:
        batch.append(pack)
        blobs += len(pack[1])
        if len(batch) >= index_file.MAX_PACKS_PER_FILE or blobs >= MAX_BLOBS_PER_INDEX_FILE:
            yield batch
            batch, blobs = [], 0
    if batch:
        yield batch


# ---- phases 3 and 4 -------------------------------------------------------------------


def delete_old_index(repo: Repository, plan: PrunePlan) -> None:
    """Remove the superseded index files, then rebuild the local index cache."""
    removed = 0
    for name in plan.old_index:
        try:
            repo.backend.remove(name)
            removed += 1
        except ObjectLocked as exc:  # locked by another client: it stays live, and so
            plan.frozen |= index_packs(repo, name)  # must every pack it names
            plan.stats.locked.append((name, _until(exc)))
    plan.stats.index_files_removed = removed
    repo.sync_index()


def delete_packs(repo: Repository, plan: PrunePlan, progress: Progress | None = None) -> None:
    """Remove packs nothing needs any more: unused, repacked, and unreferenced ones."""
    progress = progress or NullProgress()
    doomed = [(p.id, p.size) for p in plan.packs if p.action in (Action.REMOVE, Action.REPACK)]
    doomed.extend(plan.unreferenced.items())
    for pack_id, size in doomed:
        if pack_id in plan.frozen:  # named by an index file that could not be deleted
            plan.stats.packs_deleted -= 1
            plan.stats.bytes_deleted -= size
    doomed = [(pack_id, size) for pack_id, size in doomed if pack_id not in plan.frozen]
    progress.set_total(len(doomed), sum(size for _id, size in doomed))
    for pack_id, size in doomed:
        try:
            repo.backend.remove(pack_name(pack_id.hex()))
        except ObjectLocked as exc:  # skipped and reported; a later prune retries
            plan.stats.locked.append((pack_name(pack_id.hex()), _until(exc)))
            plan.stats.packs_deleted -= 1
            plan.stats.bytes_deleted -= size
        progress.advance(files=1, nbytes=size)


def _until(exc: ObjectLocked) -> datetime | None:
    return exc.until if isinstance(exc.until, datetime) else None
