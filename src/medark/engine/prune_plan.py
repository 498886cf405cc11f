"""Prune's planning phase: what is used, where it lies, and what to do with every pack.

Nothing here writes to the repository. The working set lives in a temporary SQLite
database (in the cache directory when there is one), so memory does not grow with the
number of blobs: every index entry (duplicates included, unlike the index cache), the set
of blob ids reachable from the snapshots, and the pack files found in storage.
"""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from medark.engine.mysql_binlog import binlog_record_blobs
from medark.engine.pg_wal import wal_record_blobs
from medark.errors import ObjectNotFound, RepositoryCorrupt, UsageError
from medark.repo import index_file
from medark.repo.pack import DATA_PREFIX, BlobType, PackedBlob, pack_id_from_name, pack_name
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot, decode_tree
from medark.snapshot.store import all_snapshots
from medark.util import clock
from medark.util.progress import NullProgress, Progress

DEFAULT_MAX_UNUSED = 5.0

_SCHEMA = """
CREATE TABLE packs (pack BLOB PRIMARY KEY, action TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE blobs (
    pack BLOB NOT NULL, offset INTEGER NOT NULL, id BLOB NOT NULL, type INTEGER NOT NULL,
    length INTEGER NOT NULL, raw INTEGER NOT NULL, PRIMARY KEY (pack, offset)
) WITHOUT ROWID;
CREATE TABLE stored (pack BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE used (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE copied (id BLOB PRIMARY KEY) WITHOUT ROWID;
"""


class Action(StrEnum):
    KEEP = "keep"
    REPACK = "repack"
    REMOVE = "remove"
    MISSING = "missing"
    """Listed in the index but absent from storage; dropped from the new index."""


def parse_max_unused(text: str) -> float:
    """'5%' or 'unlimited' -> a percentage of the repository that may stay unused."""
    value = text.strip()
    if value == "unlimited":
        return 100.0
    if not value.endswith("%"):
        raise UsageError(f"--max-unused {text!r}: give a percentage such as 5% or 'unlimited'")
    try:
        percent = float(value[:-1])
    except ValueError:
        raise UsageError(f"--max-unused {text!r} is not a number") from None
    if not 0 <= percent <= 100:
        raise UsageError(f"--max-unused {text!r} must be between 0% and 100%")
    return percent


@dataclass
class PackInfo:
    id: bytes
    size: int
    """Size of the pack file in storage (0 when missing)."""
    blobs: int
    used_blobs: int
    bytes: int
    used_bytes: int
    tree: bool
    action: Action = Action.KEEP

    @property
    def unused_bytes(self) -> int:
        return self.bytes - self.used_bytes

    @property
    def unused_blobs(self) -> int:
        return self.blobs - self.used_blobs


@dataclass
class PruneStats:
    """Counts for the report; 'bytes' are sizes in the repository (sealed, compressed)."""

    dry_run: bool = False
    snapshots: int = 0
    blobs_used: int = 0
    bytes_used: int = 0
    """Stored bytes of the used blobs, every copy of a duplicate included."""
    blobs_unused: int = 0
    bytes_unused: int = 0
    blobs_duplicate: int = 0
    """Extra copies of used blobs (two backups that stored the same chunk at once)."""
    packs_kept: int = 0
    blobs_kept: int = 0
    bytes_kept: int = 0
    packs_repacked: int = 0
    blobs_repacked: int = 0
    bytes_repacked: int = 0
    packs_removed: int = 0
    """Packs without a used blob."""
    blobs_removed: int = 0
    bytes_removed: int = 0
    """Unused blobs dropped, from removed and from repacked packs."""
    packs_unreferenced: int = 0
    bytes_unreferenced: int = 0
    packs_missing: int = 0
    packs_deleted: int = 0
    bytes_deleted: int = 0
    """Pack files deleted: removed, repacked and unreferenced ones (file sizes)."""
    packs_written: int = 0
    bytes_written: int = 0
    bytes_unused_after: int = 0
    index_files_removed: int = 0
    index_files_written: int = 0
    spool_files_removed: int = 0
    spool_bytes_removed: int = 0
    """Spool files of packs a killed writer was filling (local repositories)."""
    locked: list[tuple[str, datetime | None]] = field(default_factory=list)
    """Objects kept because they are under retention or legal hold: (name, until)."""

    @property
    def bytes_freed(self) -> int:
        return self.bytes_deleted - self.bytes_written

    def public(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "snapshots": self.snapshots,
            "used": {"blobs": self.blobs_used, "bytes": self.bytes_used},
            "unused": {"blobs": self.blobs_unused, "bytes": self.bytes_unused},
            "duplicate_blobs": self.blobs_duplicate,
            "kept": {"packs": self.packs_kept, "blobs": self.blobs_kept,
                     "bytes": self.bytes_kept},
            "repacked": {"packs": self.packs_repacked, "blobs": self.blobs_repacked,
                         "bytes": self.bytes_repacked},
            "removed": {"packs": self.packs_removed, "blobs": self.blobs_removed,
                        "bytes": self.bytes_removed},
            "unreferenced": {"packs": self.packs_unreferenced, "bytes": self.bytes_unreferenced},
            "missing_packs": self.packs_missing,
            "deleted": {"packs": self.packs_deleted, "bytes": self.bytes_deleted},
            "written": {"packs": self.packs_written, "bytes": self.bytes_written},
            "index_files": {"removed": self.index_files_removed,
                            "written": self.index_files_written},
            "spool_leftovers": {"files": self.spool_files_removed,
                                "bytes": self.spool_bytes_removed},
            "unused_bytes_after": self.bytes_unused_after,
            "bytes_freed": self.bytes_freed,
            "locked": [{"object": name, "until": clock.format_time(until) if until else None}
                       for name, until in self.locked],
        }


@dataclass
class PrunePlan:
    """The decision for every pack, made before anything changes. Close it when done."""

    db: sqlite3.Connection
    packs: list[PackInfo]
    unreferenced: dict[bytes, int]
    """Pack files in storage that no index names: id -> size."""
    old_index: list[str]
    index_leftovers: int
    """Index files still present although a newer one names them superseded, plus packs
    listed by more than one index file: what an interrupted prune leaves. They force a
    rewrite of the index even when nothing else changes."""
    stats: PruneStats
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    frozen: set[bytes] = field(default_factory=set)
    """Packs listed in an old index file that is locked (and so stays): they stay too,
    and the new index need not list them again (engine/prune_locks.py)."""

    def with_action(self, action: Action) -> list[PackInfo]:
        return [p for p in self.packs if p.action is action]

    @property
    def has_work(self) -> bool:
        changes = any(p.action is not Action.KEEP for p in self.packs)
        return changes or bool(self.unreferenced) or self.index_leftovers > 0

    def blobs_of(self, pack_id: bytes) -> list[PackedBlob]:
        rows = self.db.execute(
            "SELECT type, id, offset, length, raw FROM blobs WHERE pack = ? ORDER BY offset",
            (pack_id,),
        )
        return [PackedBlob(BlobType(t), i, o, n, r) for t, i, o, n, r in rows]

    def blobs_to_copy(self, pack_id: bytes) -> list[PackedBlob]:
        """Used blobs of a repacked pack that no kept pack holds and no earlier repack
        copied (a duplicate needs only one surviving copy)."""
        rows = self.db.execute(
            """SELECT b.type, b.id, b.offset, b.length, b.raw FROM blobs b
               JOIN used u ON u.id = b.id
               WHERE b.pack = ?
                 AND NOT EXISTS (SELECT 1 FROM copied c WHERE c.id = b.id)
                 AND NOT EXISTS (SELECT 1 FROM blobs o JOIN packs p ON p.pack = o.pack
                                 WHERE o.id = b.id AND p.action = 'keep')
               ORDER BY b.offset""",
            (pack_id,),
        )
        return [PackedBlob(BlobType(t), i, o, n, r) for t, i, o, n, r in rows]

    def mark_copied(self, blob_ids: list[bytes]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO copied VALUES (?)", ((i,) for i in blob_ids))

    def kept_packs(self) -> Iterator[tuple[bytes, list[PackedBlob]]]:
        for pack in self.with_action(Action.KEEP):
            if pack.id not in self.frozen:
                yield pack.id, self.blobs_of(pack.id)

    def close(self) -> None:
        self.db.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def plan_prune(
    repo: Repository,
    max_unused: float = DEFAULT_MAX_UNUSED,
    work_dir: Path | None = None,
    progress: Progress | None = None,
    snapshots: list[Snapshot] | None = None,
) -> PrunePlan:
    """Read the index, find every used blob and decide each pack's fate (changes nothing)."""
    progress = progress or NullProgress()
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = tempfile.TemporaryDirectory(prefix="medark-prune-", dir=work_dir)
    db = sqlite3.connect(str(Path(tmp.name) / "prune.sqlite"), isolation_level=None)
    plan: PrunePlan | None = None
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(_SCHEMA)
        old_index, index_leftovers = _load_index(repo, db)
        _list_storage(repo, db)
        db.execute("CREATE INDEX blobs_by_id ON blobs (id)")
        snaps = all_snapshots(repo) if snapshots is None else snapshots
        _mark_used(repo, db, snaps, progress)
        _mark_wal_used(repo, db)
        _check_complete(db)
        packs = _pack_infos(db)
        unreferenced = dict(
            db.execute("SELECT pack, size FROM stored WHERE pack NOT IN (SELECT pack FROM packs)")
        )
        plan = PrunePlan(db, packs, unreferenced, old_index, index_leftovers,
                         PruneStats(snapshots=len(snaps)), tmp)
        _decide(plan, max_unused)
        _count(plan, repo.config.pack_size)
        return plan
    finally:
        if plan is None:
            db.close()
            tmp.cleanup()


def _load_index(repo: Repository, db: sqlite3.Connection) -> tuple[list[str], int]:
    """Every index entry into the working database; returns the index file names and the
    number of leftovers of an interrupted prune (see PrunePlan.index_leftovers)."""
    names = sorted(repo.index_names())
    superseded: set[str] = set()
    listed_twice = 0
    db.execute("BEGIN")
    for name in names:
        try:
            plain = repo.read_index_file(name)
        except ObjectNotFound:
            continue
        except RepositoryCorrupt as exc:
            raise RepositoryCorrupt(
                f"index file {name} cannot be read ({exc}); prune changed nothing, "
                "run `medark check`") from None
        superseded.update(index_file.INDEX_PREFIX + s.hex()
                          for s in index_file.superseded_ids(plain))
        for pack_id, blobs in index_file.iter_packs(plain):
            cur = db.execute("INSERT OR IGNORE INTO packs (pack) VALUES (?)", (pack_id,))
            if cur.rowcount == 0:
                listed_twice += 1  # an interrupted prune: the first listing wins
                continue
            db.executemany(
                "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?, ?)",
                ((pack_id, b.offset, b.id, int(b.type), b.length, b.raw_length) for b in blobs),
            )
    db.execute("COMMIT")
    return names, len(superseded & set(names)) + listed_twice


def _list_storage(repo: Repository, db: sqlite3.Connection) -> None:
    rows = []
    for info in repo.backend.list(DATA_PREFIX):
        name = pack_id_from_name(info.name)
        try:
            pack_id = bytes.fromhex(name)
        except ValueError:
            continue  # not a pack: never ours to delete
        if len(pack_id) == 32 and info.name == f"{DATA_PREFIX}{name[:2]}/{name}":
            rows.append((pack_id, info.size))
    db.executemany("INSERT OR IGNORE INTO stored VALUES (?, ?)", rows)


def _mark_used(
    repo: Repository, db: sqlite3.Connection, snaps: list[Snapshot], progress: Progress
) -> None:
    """Every blob reachable from a snapshot; a tree already seen is not walked again."""
    progress.set_total(len(snaps), None)
    db.execute("BEGIN")
    for snap in snaps:
        stack = snap.roots()
        while stack:
            tree_id = stack.pop()
            if db.execute("INSERT OR IGNORE INTO used VALUES (?)", (tree_id,)).rowcount == 0:
                continue
            try:
                nodes = decode_tree(_load_blob(repo, db, tree_id))
            except (RepositoryCorrupt, ObjectNotFound) as exc:
                db.execute("ROLLBACK")
                raise RepositoryCorrupt(
                    f"snapshot {snap.short_id}: tree {tree_id.hex()[:16]} cannot be loaded "
                    f"({exc}); prune changed nothing, run `medark check`"
                ) from None
            content = [(blob,) for node in nodes for blob in node.content]
            if content:
                db.executemany("INSERT OR IGNORE INTO used VALUES (?)", content)
            stack.extend(n.subtree for n in nodes if n.subtree is not None)
        progress.advance(files=1)
    db.execute("COMMIT")


def _mark_wal_used(repo: Repository, db: sqlite3.Connection) -> None:
    """Blobs of archived WAL and binlog files are used for as long as their records exist
    (`forget` decides which to expire; prune only follows the records)."""
    db.execute("BEGIN")
    try:
        for _name, blobs in itertools.chain(wal_record_blobs(repo), binlog_record_blobs(repo)):
            db.executemany("INSERT OR IGNORE INTO used VALUES (?)", ((b,) for b in blobs))
    except RepositoryCorrupt as exc:
        db.execute("ROLLBACK")
        raise RepositoryCorrupt(f"{exc}; prune changed nothing, run `medark check`") from None
    db.execute("COMMIT")


def _load_blob(repo: Repository, db: sqlite3.Connection, blob_id: bytes) -> bytes:
    """A blob from a pack that exists, whichever index file lists it (the index cache
    keeps one location per blob, which may be a pack that has gone missing)."""
    rows = db.execute(
        """SELECT b.pack, b.type, b.offset, b.length, b.raw FROM blobs b
           JOIN stored s ON s.pack = b.pack WHERE b.id = ? LIMIT 1""",
        (blob_id,),
    ).fetchall()
    if not rows:
        raise ObjectNotFound(f"blob {blob_id.hex()[:16]} is in no pack of the repository")
    pack_id, blob_type, offset, length, raw = rows[0]
    entry = PackedBlob(BlobType(blob_type), blob_id, offset, length, raw)
    sealed = repo.backend.load(pack_name(pack_id.hex()), offset, length)
    return repo.decode_blob(entry, sealed, pack_id)


def _check_complete(db: sqlite3.Connection) -> None:
    """Refuse to prune when a used blob has no copy in a pack that exists."""
    row = db.execute(
        """SELECT count(*), min(u.id) FROM used u WHERE NOT EXISTS (
               SELECT 1 FROM blobs b JOIN stored s ON s.pack = b.pack WHERE b.id = u.id)"""
    ).fetchone()
    if row[0]:
        raise RepositoryCorrupt(
            f"{row[0]} blob(s) still in use (e.g. {row[1].hex()[:16]}) are in no pack of the "
            "repository; prune changed nothing, run `medark check`"
        )


def _pack_infos(db: sqlite3.Connection) -> list[PackInfo]:
    rows = db.execute(
        """SELECT p.pack, s.size, count(b.id), count(u.id), coalesce(sum(b.length), 0),
                  coalesce(sum(CASE WHEN u.id IS NULL THEN 0 ELSE b.length END), 0),
                  coalesce(min(b.type), 0)
           FROM packs p LEFT JOIN blobs b ON b.pack = p.pack
                LEFT JOIN used u ON u.id = b.id
                LEFT JOIN stored s ON s.pack = p.pack
           GROUP BY p.pack ORDER BY p.pack"""
    )
    packs = []
    for pack_id, size, blobs, used_blobs, nbytes, used_bytes, min_type in rows:
        info = PackInfo(pack_id, size or 0, blobs, used_blobs, nbytes, used_bytes,
                        tree=min_type == BlobType.TREE)
        if size is None:
            info.action = Action.MISSING
        packs.append(info)
    return packs


def _decide(plan: PrunePlan, max_unused: float) -> None:
    """restic's rule: drop unused packs; repack partly used tree packs always and partly
    used data packs (most unused first) until the unused share is at most `max_unused`%."""
    present = [p for p in plan.packs if p.action is not Action.MISSING]
    used_total = sum(p.used_bytes for p in present)
    unused_left = sum(p.unused_bytes for p in present)
    limit = float("inf") if max_unused >= 100 else max_unused / (100 - max_unused) * used_total
    candidates = []
    for pack in present:
        if pack.used_blobs == 0:
            pack.action = Action.REMOVE
            unused_left -= pack.unused_bytes
        elif pack.used_blobs < pack.blobs:
            candidates.append(pack)
    candidates.sort(key=lambda p: (p.unused_bytes / p.bytes if p.bytes else 0.0, p.id),
                    reverse=True)
    for pack in candidates:
        if pack.tree or unused_left > limit:
            pack.action = Action.REPACK
            unused_left -= pack.unused_bytes
        else:
            pack.action = Action.KEEP
    plan.db.executemany("UPDATE packs SET action = ? WHERE pack = ?",
                        ((p.action.value, p.id) for p in plan.packs))


def _count(plan: PrunePlan, pack_size: int) -> None:
    s = plan.stats
    db = plan.db
    present = [p for p in plan.packs if p.action is not Action.MISSING]
    # Every used blob has a copy in a present pack (_check_complete), so the extra rows
    # are duplicate copies.
    s.blobs_used = int(db.execute("SELECT count(*) FROM used").fetchone()[0])
    s.bytes_used = sum(p.used_bytes for p in present)
    s.blobs_duplicate = sum(p.used_blobs for p in present) - s.blobs_used
    s.blobs_unused = sum(p.unused_blobs for p in present)
    s.bytes_unused = sum(p.unused_bytes for p in present)
    for pack in present:
        if pack.action is Action.KEEP:
            s.packs_kept += 1
            s.blobs_kept += pack.blobs
            s.bytes_kept += pack.size
            s.bytes_unused_after += pack.unused_bytes
        else:
            if pack.action is Action.REMOVE:
                s.packs_removed += 1
            else:
                s.packs_repacked += 1
            s.blobs_removed += pack.unused_blobs
            s.bytes_removed += pack.unused_bytes
            s.packs_deleted += 1
            s.bytes_deleted += pack.size
    s.packs_missing = len(plan.packs) - len(present)
    s.packs_unreferenced = len(plan.unreferenced)
    s.bytes_unreferenced = sum(plan.unreferenced.values())
    s.packs_deleted += s.packs_unreferenced
    s.bytes_deleted += s.bytes_unreferenced
    # Estimates, replaced by the real numbers when the repack runs.
    for pack in plan.with_action(Action.REPACK):
        s.blobs_repacked += pack.used_blobs
        s.bytes_repacked += pack.used_bytes
    s.bytes_written = s.bytes_repacked
    if s.packs_repacked:
        s.packs_written = max(1, -(-s.bytes_repacked // pack_size))
