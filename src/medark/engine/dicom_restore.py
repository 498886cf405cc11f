"""`dicom restore`: one study (or one of its series) out of a snapshot, by the DICOM
catalog (engine/dicom_catalog.py), to a directory or into a PACS by C-STORE.

Which snapshot: the one given, else the newest whose catalog holds the study (and the
series, when given). To a directory, the instances' files go through the restore
engine with a selection of exactly their paths (ExactPaths): full paths below the
target, metadata, blobs verified as they are read, then each file read back. To a PACS,
each instance's blobs are read and verified in memory and handed to the C-STORE client
(sources/dicom/push.py) one at a time: nothing is written to disk. The repository is
only read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from medark.engine.dicom_catalog import CatalogReader, CatalogRepo, InstanceRecord
from medark.engine.dicom_query import studies_in
from medark.engine.restore import RestoreOptions, Restorer, RestoreSummary
from medark.engine.restore_data import RestoreRepo
from medark.engine.restore_select import PathFilter
from medark.errors import IntegrityError, ObjectNotFound
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import load_tree
from medark.sources.dicom.push import (
    DEFAULT_CALLING_AET,
    Outgoing,
    PacsAddress,
    PushSummary,
    StoreResult,
    Timeouts,
    push,
)
from medark.util.progress import Progress


class DicomRestoreRepo(RestoreRepo, CatalogRepo, Protocol):
    """What restoring a study needs: the catalog and the files (convention 4)."""


@dataclass(frozen=True)
class StudyPoint:
    """A study's instances as one snapshot holds them."""

    snapshot: Snapshot
    records: list[InstanceRecord]

    @property
    def size(self) -> int:
        return sum(r.size for r in self.records)

    @property
    def series(self) -> list[str]:
        return sorted({r.series_uid for r in self.records})


def locate_study(repo: CatalogRepo, snapshots: Sequence[Snapshot], study_uid: str,
                 series_uid: str | None = None, given: Snapshot | None = None) -> StudyPoint:
    """The study's instances in `given`, else in the newest of `snapshots` (oldest first)
    whose catalog holds them; ObjectNotFound, naming what was searched, when none does."""
    what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
    if given is not None:
        records = studies_in(repo, given, study_uid, series_uid)
        if not records:
            why = "" if given.dicom_catalog else " (it has no DICOM catalog)"
            raise ObjectNotFound(f"{what} is not in snapshot {given.short_id}'s DICOM "
                                 f"catalog{why}; `medark dicom find --study-uid` lists the "
                                 "snapshots that hold it")
        return StudyPoint(given, records)
    reader = CatalogReader(repo)  # a segment the snapshots share is decoded once
    for snap in sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True):
        records = studies_in(repo, snap, study_uid, series_uid, reader)
        if records:
            return StudyPoint(snap, records)
    with_catalog = sum(1 for s in snapshots if s.dicom_catalog)
    raise ObjectNotFound(f"{what} is in no snapshot's DICOM catalog ({len(snapshots)} "
                         f"snapshot(s) searched, {with_catalog} with a catalog)")


# ---- to a directory ----------------------------------------------------------------

class ExactPaths(PathFilter):
    """A selection of exactly these file paths (and the directories above them, made on
    the way): set lookups, so a study of thousands of instances in a tree of millions
    of files costs what its paths cost, and names are never read as glob patterns."""

    def __init__(self, paths: Iterable[str]) -> None:
        super().__init__()
        self.files = {_comps(p) for p in paths}
        self._dirs = {f[:i] for f in self.files for i in range(1, len(f))}
        self.seen: set[tuple[str, ...]] = set()

    @property
    def selective(self) -> bool:
        return True

    def excluded(self, comps: Sequence[str]) -> bool:
        return False

    def included(self, comps: Sequence[str]) -> bool:
        key = tuple(comps)
        if key in self.files:
            self.seen.add(key)
            return True
        return False

    def may_include_below(self, comps: Sequence[str]) -> bool:
        return tuple(comps) in self._dirs

    def missing(self) -> list[str]:
        return sorted("/" + "/".join(c) for c in self.files - self.seen)


def _comps(path: str) -> tuple[str, ...]:
    return tuple(c for c in path.split("/") if c)


class _StudyRestorer(Restorer):
    def __init__(self, repo: RestoreRepo, snapshot: Snapshot, options: RestoreOptions,
                 progress: Progress, paths: ExactPaths) -> None:
        super().__init__(repo, snapshot, options, progress)
        self.filter = paths


def restore_to_dir(repo: DicomRestoreRepo, point: StudyPoint, target: str,
                   progress: Progress, workers: int = 0) -> RestoreSummary:
    """The study's files below `target` with their full paths, each read back against
    the snapshot; an instance the catalog names but the snapshot lacks is an error."""
    paths = ExactPaths(r.path for r in point.records)
    options = RestoreOptions(target=target, verify=True, workers=workers)
    summary = _StudyRestorer(repo, point.snapshot, options, progress, paths).run()
    for path in paths.missing():
        summary.damaged = True
        summary.errors.append(f"{path}: in the DICOM catalog but not in the snapshot")
        progress.warn(summary.errors[-1])
    return summary


# ---- into a PACS -------------------------------------------------------------------

class SnapshotFiles:
    """File nodes of a snapshot by path, each directory loaded once."""

    def __init__(self, repo: CatalogRepo, root: bytes) -> None:
        self.repo = repo
        self._dirs: dict[tuple[str, ...], dict[str, Node] | None] = {(): self._load(root)}

    def _load(self, tree: bytes) -> dict[str, Node]:
        return {n.name: n for n in load_tree(self.repo, tree)}

    def _dir(self, comps: tuple[str, ...]) -> dict[str, Node] | None:
        if comps not in self._dirs:
            above = self._dir(comps[:-1])
            node = above.get(comps[-1]) if above is not None else None
            self._dirs[comps] = (self._load(node.subtree) if node is not None
                                 and node.type == "dir" and node.subtree is not None
                                 else None)
        return self._dirs[comps]

    def node(self, path: str) -> Node | None:
        comps = _comps(path)
        if not comps:
            return None
        entries = self._dir(comps[:-1])
        return entries.get(comps[-1]) if entries is not None else None


def read_instance(repo: CatalogRepo, files: SnapshotFiles, record: InstanceRecord) -> bytes:
    """One instance's bytes, every blob authenticated and checked against its id."""
    node = files.node(record.path)
    if node is None or node.type != "file":
        raise ObjectNotFound(f"{record.path}: in the DICOM catalog but not a file in the "
                             "snapshot")
    data = b"".join(repo.load_blob(blob) for blob in node.content)
    if len(data) != node.size:
        raise IntegrityError(f"{record.path}: {len(data)} bytes read, the snapshot says "
                             f"{node.size}")
    return data


def push_to_pacs(repo: DicomRestoreRepo, point: StudyPoint, peer: PacsAddress,
                 calling_aet: str = DEFAULT_CALLING_AET, timeouts: Timeouts | None = None,
                 on_result: Callable[[StoreResult], None] | None = None) -> PushSummary:
    """C-STORE each instance of the study, read from the repository in memory."""
    files = SnapshotFiles(repo, point.snapshot.tree)
    outgoing = [Outgoing(r.path, r.sop_class, r.sop_uid, r.transfer_syntax,
                         partial(read_instance, repo, files, r)) for r in point.records]
    return push(outgoing, peer, calling_aet, timeouts, on_result)
