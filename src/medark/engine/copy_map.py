"""What `copy` already carried from one repository to another: source blob id →
destination blob id.

Blob ids are keyed per repository, so the same chunk has different ids in the source
and the destination, and the only way to learn the destination id is to read the chunk.
This map (SQLite, in the destination's cache directory) remembers the answer, so a
second copy, or the next snapshot of the same tree, reads nothing it has copied before.

The map is a hint, never the truth: a data blob is trusted only while the destination's
index has it. A tree is trusted as "copied with everything below it" only while no index
file of the destination has disappeared since the tree was recorded, because a prune of
the destination may have dropped blobs below a tree it kept.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (src BLOB PRIMARY KEY, dst BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trees (src BLOB PRIMARY KEY, dst BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dst_index (name TEXT PRIMARY KEY) WITHOUT ROWID;
"""
_BATCH = 500


class CopyMap:
    """Thread-safe (one connection behind a lock: lookups are batched, so it is cheap)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(":memory:" if path is None else str(path),
                                   check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def revalidate(self, dst_index_names: set[str]) -> bool:
        """Forget every tree when an index file the map knew of is gone (the destination
        was pruned); then remember the current set. True when trees were forgotten."""
        with self._lock:
            known = {row[0] for row in self._db.execute("SELECT name FROM dst_index")}
            pruned = bool(known - dst_index_names)
            self._db.execute("BEGIN IMMEDIATE")
            if pruned:
                self._db.execute("DELETE FROM trees")
                self._db.execute("DELETE FROM dst_index")
            self._db.executemany("INSERT OR IGNORE INTO dst_index VALUES (?)",
                                 ((n,) for n in dst_index_names - known))
            self._db.execute("COMMIT")
        return pruned

    def blobs(self, src_ids: Iterable[bytes]) -> dict[bytes, bytes]:
        return self._get("blobs", list(src_ids))

    def tree(self, src_id: bytes) -> bytes | None:
        return self._get("trees", [src_id]).get(src_id)

    def add_blobs(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        self._put("blobs", pairs)

    def add_tree(self, src_id: bytes, dst_id: bytes) -> None:
        self._put("trees", [(src_id, dst_id)])

    def _get(self, table: str, ids: list[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(ids), _BATCH):
                batch = ids[start:start + _BATCH]
                marks = ",".join("?" * len(batch))
                found.update(self._db.execute(
                    f"SELECT src, dst FROM {table} WHERE src IN ({marks})", batch))
        return found

    def _put(self, table: str, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", pairs)
            self._db.execute("COMMIT")
