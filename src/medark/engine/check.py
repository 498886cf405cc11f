"""`check`: verify that a repository is whole, and name what is damaged and what it affects.

Phases (restic's order and wording): config and keys -> load indexes -> check all packs
(existence, size, header vs index; unindexed packs are noted, not errors) -> check
snapshots, trees and blobs -> read all data (optional: SHA-256 of each pack, every blob
decrypted and re-hashed) -> map each damaged or missing blob to the snapshots and file
paths that use it. Then the hold markers and locks: a hold marker that cannot be read
or verified is an error (a protection that failed: forget, prune and S3 release refuse
while it exists), an unreadable lock a note (it blocks prune until removed).

Check only reads. Its working state is a scratch SQLite database (check_db), so memory
does not grow with the repository. Snapshot names are listed before the index files
are read: with the write order packs -> index -> snapshot, every snapshot listed then
has its blobs in an index file that already exists, even while a backup runs beside us.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from medark.engine.check_db import CheckDb
from medark.engine.check_model import (
    ALL_DATA,
    CheckOptions,
    CheckResult,
    CheckStats,
    Damage,
    DataSubset,
    Problem,
    parse_subset,
)
from medark.engine.check_packs import (
    PackRepo,
    PackVerdict,
    bounded_map,
    check_header,
    expected_size,
    header_of,
    read_pack,
)
from medark.engine.worm import survey_holds
from medark.errors import MedarkError, ObjectNotFound
from medark.repo import index_file
from medark.repo.config import CONFIG_NAME, RepoConfig
from medark.repo.keys import KEYS_PREFIX, verify_key_file
from medark.repo.locks import REMOVE_HINT, survey_locks
from medark.repo.pack import DATA_PREFIX, BlobType, PackedBlob, pack_id_from_name, pack_name
from medark.snapshot.model import Node, Snapshot, decode_tree
from medark.snapshot.store import SNAPSHOTS_PREFIX
from medark.util.progress import Progress

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TailJob = tuple[bytes, int, list[PackedBlob]]

__all__ = [
    "ALL_DATA", "CheckListener", "CheckOptions", "CheckRepo", "CheckResult", "CheckStats",
    "Checker", "Damage", "DataSubset", "Problem", "parse_subset",
]


class CheckRepo(PackRepo, Protocol):
    """What check needs from the repository (docs/architecture.md, convention 4)."""

    def load_unpacked(self, name: str) -> bytes: ...

    def read_index_file(self, name: str) -> bytes: ...

    def list_names(self, prefix: str) -> Iterator[str]: ...


class CheckListener(Protocol):
    """How the checker reports as it goes: a progress per phase, each problem at once."""

    def phase(self, title: str) -> Progress: ...

    def problem(self, problem: Problem) -> None: ...


# ---- the checker -------------------------------------------------------------------------


class Checker:
    """One run of check over an open repository (which it never modifies)."""

    def __init__(
        self,
        repo: CheckRepo,
        options: CheckOptions,
        listener: CheckListener,
        workdir: Path | None = None,
    ) -> None:
        self.repo = repo
        self.options = options
        self.listener = listener
        self.workdir = workdir
        self.result = CheckResult()
        self.workers = options.workers or max(2, os.cpu_count() or 2)
        self._bad: dict[bytes, set[str | None]] = {}
        """Damaged or missing blob -> the packs it was damaged in (None: not indexed)."""
        self._broken: set[bytes] = set()
        self._snapshots: list[tuple[str, bytes]] = []
        self._db: CheckDb | None = None

    @property
    def db(self) -> CheckDb:
        assert self._db is not None, "the check database is open only during run()"
        return self._db

    def run(self) -> CheckResult:
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(prefix="medark-check-", dir=self.workdir) as tmp:
            self._db = CheckDb(Path(tmp) / "check.sqlite")
            try:
                snapshot_names = sorted(self.repo.list_names(SNAPSHOTS_PREFIX))
                self._check_config_and_keys()
                self._load_indexes()
                self._check_packs()
                self._check_snapshots(snapshot_names)
                self._check_holds_and_locks()
                if self.options.read_data is not None:
                    self._read_data(self.options.read_data)
                if self._bad:
                    self._map_damage()
            finally:
                self._db.close()
                self._db = None
        self.result.broken_packs = sorted(p.hex() for p in self._broken)
        return self.result

    # ---- reporting -----------------------------------------------------------------

    def _error(self, kind: str, obj: str, message: str) -> None:
        problem = Problem(kind, obj, message)
        self.result.errors.append(problem)
        self.listener.problem(problem)

    def _note(self, kind: str, obj: str, message: str) -> None:
        problem = Problem(kind, obj, message, error=False)
        self.result.notes.append(problem)
        self.listener.problem(problem)

    def _mark_bad(self, blob_id: bytes, pack_id: bytes | None) -> None:
        self._bad.setdefault(blob_id, set()).add(None if pack_id is None else pack_id.hex())

    # ---- config and keys -------------------------------------------------------------

    def _check_config_and_keys(self) -> None:
        progress = self.listener.phase("check config and keys")
        try:
            RepoConfig.from_json(self.repo.crypto.open(self.repo.backend.load(CONFIG_NAME)))
        except MedarkError as exc:
            self._error("config", CONFIG_NAME, f"config is damaged: {exc}")
        for info in self.repo.backend.list(KEYS_PREFIX):
            try:
                verify_key_file(info.name, self.repo.backend.load(info.name))
            except ObjectNotFound:
                continue  # removed while we listed (key remove)
            except MedarkError as exc:
                self._error("key", info.name, str(exc))
            progress.advance(files=1)

    # ---- hold markers and locks -----------------------------------------------------

    def _check_holds_and_locks(self) -> None:
        """Fail-closed protections: name every marker and lock nothing can read."""
        for bad in survey_holds(self.repo).damaged:
            self._error("hold", bad.name, f"{bad.describe()}: it may hold any snapshot, so "
                        "forget and prune delete nothing and release lifts no S3 legal "
                        "hold while it exists (docs/operations.md, Legal holds)")
        for lock in survey_locks(self.repo.backend, self.repo.crypto.open)[1]:
            self._note("lock", lock.name, f"warning: {lock.describe()}: commands that need "
                       f"the exclusive lock (prune, forget) refuse to run; {REMOVE_HINT}")

    # ---- indexes ---------------------------------------------------------------------

    def _load_indexes(self) -> None:
        names = sorted(self.repo.list_names(index_file.INDEX_PREFIX))
        progress = self.listener.phase("load indexes")
        progress.set_total(len(names), None)
        superseded: set[str] = set()
        loaded: set[str] = set()
        for name in names:
            try:
                plain = self.repo.read_index_file(name)
                superseded.update(index_file.INDEX_PREFIX + i.hex()
                                  for i in index_file.superseded_ids(plain))
                self.db.add_index_packs(name, index_file.iter_packs(plain))
                loaded.add(name)
            except ObjectNotFound:
                pass  # removed while we listed
            except (MedarkError, ValueError, struct.error) as exc:
                # Authenticated but unparsable (a writer bug) counts as damaged too.
                self.db.drop_index_file(name)
                self._error("index", name, f"index file {name} is damaged: {_plain(exc, name)}")
            progress.advance(files=1)
        for name in sorted(superseded & loaded):
            self.db.drop_index_file(name)
            self._note("index", name, f"index file {name} is superseded by a newer one; "
                       "`medark prune` removes it")
        self.result.stats.index_files = len(loaded)
        self.result.stats.packs = self.db.index_pack_count()
        self.result.stats.blobs = self.db.index_blob_count()

    # ---- packs -----------------------------------------------------------------------

    def _will_read(self, pack_id: bytes) -> bool:
        subset = self.options.read_data
        if subset is None:
            return False
        if subset.percent is not None:
            return self.db.is_selected(pack_id)
        return subset.in_group(pack_id)

    def _check_packs(self) -> None:
        progress = self.listener.phase("check all packs")
        for info in self.repo.backend.list(DATA_PREFIX):
            pack_hex = pack_id_from_name(info.name)
            if not _HEX64.fullmatch(pack_hex) or pack_name(pack_hex) != info.name:
                self._note("pack", info.name, f"{info.name} is not a pack file; ignored")
                continue
            self.db.add_disk_pack(bytes.fromhex(pack_hex), info.size)
        subset = self.options.read_data
        if subset is not None and subset.percent is not None:
            total = self.db.index_pack_count()
            self.db.select_random_packs(max(1, round(total * subset.percent / 100)) if total else 0)
        progress.set_total(self.result.stats.packs, None)
        for verdict in bounded_map(self._check_pack_tail, self._pack_jobs(progress),
                                   workers=4):
            self._report_pack(verdict, full_read=False)
            progress.advance(files=1)
        self._check_unreferenced()

    def _check_unreferenced(self) -> None:
        """Note packs no index lists, and learn their headers: when an index file is
        damaged, they say where the blobs it listed still are."""
        jobs = self.db.iter_unreferenced()
        for pack_id, entries in bounded_map(self._unindexed_header, jobs, workers=4):
            self.result.unreferenced_packs.append(pack_id.hex())
            if entries:
                self.db.add_header_blobs(pack_id, entries)
        count = len(self.result.unreferenced_packs)
        if not count:
            return
        if any(p.kind == "index" for p in self.result.errors):
            self._note("pack", DATA_PREFIX,
                       f"{count} pack(s) are not referenced by any intact index file; they "
                       "probably hold the blobs the damaged index file listed: do not prune "
                       "before the index is rebuilt")
        else:
            self._note("pack", DATA_PREFIX,
                       f"{count} pack(s) are not referenced by any index (left by an "
                       "interrupted backup); this is harmless, `medark prune` removes them")

    def _unindexed_header(self, job: tuple[bytes, int]) -> tuple[bytes, list[PackedBlob] | None]:
        return job[0], header_of(self.repo, job[0], job[1])

    def _pack_jobs(self, progress: Progress) -> Iterator[_TailJob]:
        """Packs whose tails to read; size and existence problems are reported here."""
        for pack_id, index_names in self.db.iter_index_packs():
            entries = self.db.blobs_in_pack(pack_id)
            name = pack_name(pack_id.hex())
            size = self.db.disk_size(pack_id)
            if size is None:
                self._error("pack", name, f"pack {pack_id.hex()} is listed in "
                            f"{', '.join(index_names)} but missing from the repository")
                self._broken.add(pack_id)
                for entry in entries:
                    self._mark_bad(entry.id, pack_id)
                progress.advance(files=1)
                continue
            want = expected_size(entries)
            if size != want:
                self._error("pack", name, f"pack {pack_id.hex()} has {size} bytes, but the index "
                            f"implies {want}")
                self._broken.add(pack_id)
            if self._will_read(pack_id):
                progress.advance(files=1)  # the data phase reads all of it
                continue
            yield pack_id, size, entries

    def _check_pack_tail(self, job: _TailJob) -> PackVerdict:
        pack_id, size, entries = job
        return check_header(self.repo, pack_id, size, entries)

    def _report_pack(self, verdict: PackVerdict, full_read: bool) -> None:
        pack_id = verdict.pack_id
        name = pack_name(pack_id.hex())
        if verdict.missing:
            self._error("pack", name, f"pack {pack_id.hex()} disappeared while being checked")
        for problem in verdict.problems:
            self._error("pack", name, f"pack {pack_id.hex()}: {problem}")
        for blob_id, reason in verdict.damaged:
            self._error("blob", blob_id.hex(),
                        f"pack {pack_id.hex()}: blob {blob_id.hex()} is damaged: {reason}")
            self._mark_bad(blob_id, pack_id)
        if verdict.ok:
            return
        self._broken.add(pack_id)
        if verdict.missing or (verdict.problems and not full_read):
            # Only the tail was read (or nothing): every blob of the pack is at risk
            # until `check --read-data` tells which ones are really damaged.
            for entry in self.db.blobs_in_pack(pack_id):
                self._mark_bad(entry.id, pack_id)

    # ---- snapshots and trees -----------------------------------------------------------

    def _check_snapshots(self, names: list[str]) -> None:
        progress = self.listener.phase("check snapshots, trees and blobs")
        progress.set_total(len(names), None)
        for name in names:
            snapshot_id = name.removeprefix(SNAPSHOTS_PREFIX)
            try:
                snapshot = Snapshot.from_json(self.repo.load_unpacked(name), snapshot_id)
            except ObjectNotFound:
                continue  # forgotten while we checked
            except MedarkError as exc:
                self._error("snapshot", name, f"snapshot {snapshot_id} is damaged: "
                            f"{_plain(exc, name)}")
                progress.advance(files=1)
                continue
            self.result.stats.snapshots += 1
            for root in snapshot.roots():  # the files, then the DICOM catalog's records
                self._snapshots.append((snapshot_id, root))
                self._walk_structure(snapshot_id, root)
            progress.advance(files=1)

    def _load_tree(self, tree_id: bytes) -> tuple[list[Node] | None, str]:
        """(nodes, problem): trying every pack the index names, then packs no index lists.
        A tree loaded from an unindexed pack comes with the problem that it is unindexed."""
        why = ""
        for pack_id, entry in self.db.locate(tree_id):
            if entry.type != BlobType.TREE:
                why = "the index lists it as a data blob"
                continue
            nodes, why = self._read_tree(pack_id, entry)
            if nodes is not None:
                return nodes, ""
        if why:
            return None, why
        for pack_id, entry in self.db.locate_unindexed(tree_id):
            nodes, _ = self._read_tree(pack_id, entry)
            if nodes is not None:
                return nodes, (f"it is not in the index (unindexed pack {pack_id.hex()[:16]} "
                               "holds it)")
        return None, "it is not in the index"

    def _read_tree(self, pack_id: bytes, entry: PackedBlob) -> tuple[list[Node] | None, str]:
        try:
            sealed = self.repo.backend.load(pack_name(pack_id.hex()), entry.offset, entry.length)
            return decode_tree(self.repo.decode_blob(entry, sealed, pack_id)), ""
        except MedarkError as exc:
            return None, str(exc)

    def _walk_structure(self, snapshot_id: str, root: bytes) -> None:
        """Every tree reachable from the snapshot loads; every blob it names is indexed.
        Trees already walked (for an earlier snapshot) are skipped."""
        short = snapshot_id[:8]
        stack: list[tuple[bytes, str]] = [(root, "/")]
        while stack:
            tree_id, path = stack.pop()
            if not self.db.mark_seen(tree_id):
                continue
            nodes, why = self._load_tree(tree_id)
            if why:
                self._tree_failed(short, path, tree_id, why)
            if nodes is None:
                continue
            self.result.stats.trees += 1
            for node in nodes:
                node_path = path.rstrip("/") + "/" + node.name
                if node.type == "dir":
                    if node.subtree is None:
                        self._error("tree", tree_id.hex(), f"snapshot {short}: {node_path}: "
                                    "directory has no subtree")
                    else:
                        stack.append((node.subtree, node_path))
                elif node.content:
                    self._check_content(short, node_path, node)

    def _tree_failed(self, short: str, path: str, tree_id: bytes, why: str) -> None:
        self._error("tree", tree_id.hex(),
                    f"snapshot {short}: {path}: tree {tree_id.hex()[:16]} is unusable: {why}")
        packs: list[bytes | None] = [pack_id for pack_id, _entry in self.db.locate(tree_id)]
        for pack_id in packs or [None]:
            self._mark_bad(tree_id, pack_id)

    def _check_content(self, short: str, path: str, node: Node) -> None:
        missing = 0
        unindexed = 0
        wrong_type = 0
        for blob_id in dict.fromkeys(node.content):
            types = self.db.blob_types(blob_id)
            if not types:
                missing += 1
                self._mark_bad(blob_id, None)
                unindexed += bool(self.db.locate_unindexed(blob_id))
            elif BlobType.DATA not in types:
                wrong_type += 1
        if missing:
            where = (f" ({unindexed} of them are in unindexed packs)" if unindexed else "")
            self._error("blob", path, f"snapshot {short}: {path}: {missing} of "
                        f"{len(node.content)} data blob(s) are not in the index{where}")
        if wrong_type:
            self._error("blob", path, f"snapshot {short}: {path}: {wrong_type} blob(s) are "
                        "indexed as trees, not data")

    # ---- reading data --------------------------------------------------------------------

    def _read_data(self, subset: DataSubset) -> None:
        self.result.read_data = subset.describe()
        progress = self.listener.phase(subset.describe())
        progress.set_total(sum(1 for _ in self._read_jobs()), None)
        for verdict in bounded_map(self._read_one, self._read_jobs(), workers=self.workers,
                                   window=self.workers + 1):
            self.result.stats.packs_read += 1
            self.result.stats.bytes_read += verdict.bytes_read
            self._report_pack(verdict, full_read=True)
            progress.advance(files=1, nbytes=verdict.bytes_read)

    def _read_jobs(self) -> Iterator[tuple[bytes, list[PackedBlob]]]:
        """Selected packs that exist, with their index entries (streamed, not collected)."""
        for pack_id, _names in self.db.iter_index_packs():
            if self._will_read(pack_id) and self.db.disk_size(pack_id) is not None:
                yield pack_id, self.db.blobs_in_pack(pack_id)

    def _read_one(self, job: tuple[bytes, list[PackedBlob]]) -> PackVerdict:
        return read_pack(self.repo, job[0], job[1])

    # ---- mapping damage to snapshots and files ----------------------------------------------

    def _map_damage(self) -> None:
        progress = self.listener.phase("find snapshots and files affected by damage")
        progress.set_total(len(self._snapshots), None)
        used: set[bytes] = set()
        for snapshot_id, root in self._snapshots:
            for path, blob_id in self._affected(root, "/"):
                used.add(blob_id)
                for pack in sorted(self._bad[blob_id], key=lambda p: p or ""):
                    self.result.damaged.append(
                        Damage(pack, blob_id.hex(), snapshot_id[:8], path))
            progress.advance(files=1)
        for blob_id in sorted(self._bad.keys() - used):
            for pack in sorted(self._bad[blob_id], key=lambda p: p or ""):
                self.result.damaged.append(Damage(pack, blob_id.hex(), None, None))

    def _affected(self, tree_id: bytes, path: str) -> Iterator[tuple[str, bytes]]:
        """(path, bad blob) for every use of a bad blob below this tree. Trees found clean
        are remembered, so shared subtrees are read once however many snapshots use them."""
        if tree_id in self._bad:
            yield path, tree_id
        if self.db.is_clean(tree_id):
            return
        nodes, _why = self._load_tree(tree_id)
        if nodes is None:
            return
        found = tree_id in self._bad
        for node in nodes:
            node_path = path.rstrip("/") + "/" + node.name
            for blob_id in dict.fromkeys(node.content):
                if blob_id in self._bad:
                    found = True
                    yield node_path, blob_id
            if node.type == "dir" and node.subtree is not None:
                for hit in self._affected(node.subtree, node_path):
                    found = True
                    yield hit
        if not found:
            self.db.mark_clean(tree_id)


def _plain(exc: Exception, name: str) -> str:
    """The error text without a leading 'name: ' (the report names the object itself)."""
    return str(exc).removeprefix(name + ": ")
