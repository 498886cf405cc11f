"""The scratch database of one `check` run: the repository index as its index files say
it is, the packs found in storage, and which trees were walked.

It lives on disk (SQLite in a temporary directory), so a check of a repository with
tens of millions of blobs needs no more RAM than one of a few hundred. It is built
fresh from the repository on every run: check never trusts (or changes) the local cache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from medark.repo.pack import BlobType, PackedBlob

_SCHEMA = """
CREATE TABLE index_packs (
    pack BLOB NOT NULL, index_name TEXT NOT NULL, PRIMARY KEY (pack, index_name)
) WITHOUT ROWID;
CREATE TABLE index_blobs (
    pack BLOB NOT NULL, offset INTEGER NOT NULL, index_name TEXT NOT NULL,
    id BLOB NOT NULL, type INTEGER NOT NULL, length INTEGER NOT NULL, raw INTEGER NOT NULL,
    PRIMARY KEY (pack, offset, index_name)
) WITHOUT ROWID;
CREATE INDEX index_blobs_id ON index_blobs (id);
CREATE TABLE header_blobs (
    id BLOB NOT NULL, pack BLOB NOT NULL, offset INTEGER NOT NULL, type INTEGER NOT NULL,
    length INTEGER NOT NULL, raw INTEGER NOT NULL, PRIMARY KEY (id, pack)
) WITHOUT ROWID;
CREATE TABLE disk_packs (pack BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE selected (pack BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE seen (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE clean (id BLOB PRIMARY KEY) WITHOUT ROWID;
"""

BATCH = 1024


class CheckDb:
    """Single-threaded: only the checker's main thread uses it."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-16000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ---- the index as read from the repository's index files ----------------------

    def add_index_packs(
        self, index_name: str, packs: Iterable[tuple[bytes, list[PackedBlob]]]
    ) -> int:
        """Record the packs of one index file; returns how many packs it listed."""
        count = 0
        self._db.execute("BEGIN")
        try:
            for pack_id, blobs in packs:
                count += 1
                self._db.execute(
                    "INSERT OR IGNORE INTO index_packs VALUES (?, ?)", (pack_id, index_name)
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO index_blobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ((pack_id, b.offset, index_name, b.id, int(b.type), b.length, b.raw_length)
                     for b in blobs),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return count

    def drop_index_file(self, index_name: str) -> None:
        """Forget a superseded index file (prune wrote its replacement, then crashed)."""
        self._db.execute("DELETE FROM index_packs WHERE index_name = ?", (index_name,))
        self._db.execute("DELETE FROM index_blobs WHERE index_name = ?", (index_name,))

    def index_pack_count(self) -> int:
        return int(self._db.execute("SELECT count(DISTINCT pack) FROM index_packs").fetchone()[0])

    def index_blob_count(self) -> int:
        return int(self._db.execute("SELECT count(DISTINCT id) FROM index_blobs").fetchone()[0])

    def iter_index_packs(self) -> Iterator[tuple[bytes, list[str]]]:
        """(pack id, names of the index files listing it), in pack id order."""
        after = b""
        while True:
            rows = self._db.execute(
                "SELECT DISTINCT pack FROM index_packs WHERE pack > ? ORDER BY pack LIMIT ?",
                (after, BATCH),
            ).fetchall()
            for (pack,) in rows:
                names = [r[0] for r in self._db.execute(
                    "SELECT index_name FROM index_packs WHERE pack = ?", (pack,))]
                yield pack, names
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    def blobs_in_pack(self, pack_id: bytes) -> list[PackedBlob]:
        """The pack's blobs by offset. Two index files that disagree about a pack give two
        entries at one offset, which the header comparison then reports."""
        rows = self._db.execute(
            "SELECT DISTINCT offset, id, type, length, raw FROM index_blobs WHERE pack = ? "
            "ORDER BY offset, id",
            (pack_id,),
        ).fetchall()
        return [PackedBlob(BlobType(t), i, off, length, raw) for off, i, t, length, raw in rows]

    def locate(self, blob_id: bytes) -> list[tuple[bytes, PackedBlob]]:
        """Every (pack, entry) the index gives for a blob (usually one)."""
        rows = self._db.execute(
            "SELECT DISTINCT pack, offset, type, length, raw FROM index_blobs WHERE id = ?",
            (blob_id,),
        ).fetchall()
        return [(p, PackedBlob(BlobType(t), blob_id, off, length, raw))
                for p, off, t, length, raw in rows]

    def add_header_blobs(self, pack_id: bytes, blobs: list[PackedBlob]) -> None:
        """Blobs found in the header of a pack no index lists (the index file that listed
        it may be damaged): used to walk on and to say where the data still is."""
        self._db.executemany(
            "INSERT OR IGNORE INTO header_blobs VALUES (?, ?, ?, ?, ?, ?)",
            ((b.id, pack_id, b.offset, int(b.type), b.length, b.raw_length) for b in blobs),
        )

    def locate_unindexed(self, blob_id: bytes) -> list[tuple[bytes, PackedBlob]]:
        rows = self._db.execute(
            "SELECT pack, offset, type, length, raw FROM header_blobs WHERE id = ?", (blob_id,)
        ).fetchall()
        return [(p, PackedBlob(BlobType(t), blob_id, off, length, raw))
                for p, off, t, length, raw in rows]

    def blob_types(self, blob_id: bytes) -> set[BlobType]:
        rows = self._db.execute(
            "SELECT DISTINCT type FROM index_blobs WHERE id = ?", (blob_id,)
        ).fetchall()
        return {BlobType(r[0]) for r in rows}

    # ---- packs in storage ------------------------------------------------------------

    def add_disk_pack(self, pack_id: bytes, size: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO disk_packs VALUES (?, ?)", (pack_id, size))

    def disk_size(self, pack_id: bytes) -> int | None:
        row = self._db.execute("SELECT size FROM disk_packs WHERE pack = ?", (pack_id,)).fetchone()
        return None if row is None else int(row[0])

    def iter_unreferenced(self) -> Iterator[tuple[bytes, int]]:
        """Packs in storage that no index file lists, with their sizes."""
        after = b""
        while True:
            rows = self._db.execute(
                "SELECT pack, size FROM disk_packs WHERE pack > ? AND pack NOT IN "
                "(SELECT pack FROM index_packs) ORDER BY pack LIMIT ?",
                (after, BATCH),
            ).fetchall()
            yield from ((p, int(s)) for p, s in rows)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    # ---- which packs --read-data-subset reads ----------------------------------------

    def select_random_packs(self, count: int) -> None:
        self._db.execute(
            "INSERT INTO selected SELECT pack FROM "
            "(SELECT DISTINCT pack FROM index_packs) ORDER BY random() LIMIT ?",
            (count,),
        )

    def is_selected(self, pack_id: bytes) -> bool:
        row = self._db.execute("SELECT 1 FROM selected WHERE pack = ?", (pack_id,)).fetchone()
        return row is not None

    # ---- trees -------------------------------------------------------------------------

    def mark_seen(self, tree_id: bytes) -> bool:
        """True the first time a tree is marked (walk it), False afterwards (skip it)."""
        cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (tree_id,))
        return cursor.rowcount == 1

    def mark_clean(self, tree_id: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO clean VALUES (?)", (tree_id,))

    def is_clean(self, tree_id: bytes) -> bool:
        row = self._db.execute("SELECT 1 FROM clean WHERE id = ?", (tree_id,)).fetchone()
        return row is not None
