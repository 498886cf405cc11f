"""Packs a killed writer stored but never indexed, indexed by the next writer instead.

Index files are written at intervals while packs land (docs/repository-format.md,
"Checkpoints"), so a backup or copy killed with SIGKILL, or a host that lost power,
leaves the packs stored since the last checkpoint under their final names with no index
file naming them. The rerun would send their blobs again: up to a second of uploads on
a fast link, and the pack whose rate-limit booking had not ended on a paced one.

A killed command's trace is its lock, left behind and stale. The next command that takes
a shared lock and sees one lists data/ once, reads the header of each pack the index does
not name (its tail only; sealed with the master key, so a foreign or damaged pack does
not authenticate and is left alone for prune and check), and writes one index file for
the rest. This is sound because a pack under its final name is complete: a local one was
fsynced before it was linked into place, and an S3 PutObject is atomic; the index still
names only packs that are fully written. A concurrent writer's pack that landed a moment
ago may be indexed twice, which readers accept (a blob listed twice may be read from
either pack) and prune folds back into one entry.

The same writer leaves the spool files of the packs it was filling (`.spool/` in a local
repository); prune, under the exclusive lock, removes them (remove_spool_leftovers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from medark.errors import IntegrityError, MedarkError, ObjectNotFound
from medark.repo.pack import (
    DATA_PREFIX,
    SPOOL_PREFIX,
    SPOOL_SUFFIX,
    PackedBlob,
    load_header,
    pack_id_from_name,
    pack_name,
)
from medark.storage.local import SPOOL_DIR

if TYPE_CHECKING:
    from medark.repo.locks import HeldLock
    from medark.repo.repository import Repository

HEADER_GUESS = 64 * 1024
"""Tail bytes read first: the header of a 16 MiB pack of 1 MiB chunks is ~700 bytes,
one of small files' chunks a few tens of KiB."""


def unindexed_packs(repo: Repository) -> list[tuple[bytes, int]]:
    """(pack id, size) of every pack file in storage that the local index does not know."""
    known = repo.cache.pack_ids()
    found = []
    for info in repo.backend.list(DATA_PREFIX):
        name = pack_id_from_name(info.name)
        try:
            pack_id = bytes.fromhex(name)
        except ValueError:
            continue  # not a pack of ours
        if len(pack_id) == 32 and info.name == pack_name(name) and pack_id not in known:
            found.append((pack_id, info.size))
    return found


def read_header(repo: Repository, pack_id: bytes, size: int) -> list[PackedBlob] | None:
    """The pack's entries from its tail; None when it does not authenticate or does not
    describe the pack exactly (then it is no pack of this repository's writers)."""
    try:
        return load_header(repo.backend, repo.crypto, pack_id, size, HEADER_GUESS)[0]
    except (IntegrityError, ObjectNotFound):
        return None


def adopt_unindexed(repo: Repository) -> int:
    """Index every complete pack of this repository that no index file names; how many."""
    adopted = []
    for pack_id, size in unindexed_packs(repo):
        entries = read_header(repo, pack_id, size)
        if entries:
            adopted.append((pack_id, entries))
    if adopted:
        repo.index_packs(adopted)
    return len(adopted)


WRITTEN_UNDER_EXCLUSIVE_LOCK = ("data", "index", "snapshots")
"""Where no one writes while prune holds the exclusive lock (locks and keys are written
by commands that do not wait for it)."""


def remove_spool_leftovers(repo: Repository) -> tuple[int, int]:
    """Remove what a killed writer leaves in a local repository: (files, bytes). The
    spool files of the packs it was filling, and the temp files of objects it was
    writing (`.<name>.tmp-*` beside data, index and snapshot files). Only under the
    exclusive lock (no writer is filling or writing one), and only when the spool is on
    the repository's own storage (the system temp dir is shared with other programs; a
    remote repository's writers spool under their cache, repo/spool.py)."""
    spool = repo.backend.spool_dir()
    if spool is None:
        return 0, 0
    leftovers = list(Path(spool).glob(f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}"))
    if Path(spool).name == SPOOL_DIR:  # a local repository: the spool is in its root
        root = Path(spool).parent
        for directory in WRITTEN_UNDER_EXCLUSIVE_LOCK:
            leftovers += (root / directory).rglob(".*.tmp-*")
    files = size = 0
    for path in leftovers:
        with contextlib.suppress(FileNotFoundError):
            found = path.stat().st_size
            path.unlink()
            files, size = files + 1, size + found
    return files, size


def lock_adopting(repo: Repository, exclusive: bool, command: str,
                  warn: Callable[[str], None]) -> HeldLock:
    """Take a lock. A shared one that finds stale locks (killed commands) first indexes
    the complete packs they left unindexed, so a rerun does not send them again; once
    per stale lock and client."""
    held = repo.locks.acquire(exclusive, command, warn)
    if exclusive or not held.stale:
        return held
    names = {lock.name for lock in held.stale}
    if repo.cache.adopted(names) != names:
        try:
            count = adopt_unindexed(repo)
        except MedarkError as exc:  # only a saving lost: the command goes on
            warn(f"warning: could not index the packs of an interrupted command "
                 f"({str(exc).splitlines()[0]}); a rerun may send them again")
            return held
        if count:
            warn(f"indexed {count} pack(s) an interrupted command stored; "
                 "they are not sent again")
        repo.cache.mark_adopted(names)
    return held
