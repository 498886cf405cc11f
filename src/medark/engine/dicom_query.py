"""Questions to the DICOM catalog: which studies and series match (`dicom find`), which
instances make up a study (`studies_in`, for `dicom restore`), and whether a snapshot's
files still say what its catalog says (`dicom verify`).

Nothing here records the access: the commands wrap these calls in the audit trail
(service/access_audit.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

from medark.engine.dicom_catalog import (
    LEGACY_VERSION,
    SEGMENT,
    CatalogReader,
    CatalogRepo,
    InstanceRecord,
    Segment,
    join,
    parent_of,
    segments,
)
from medark.errors import ObjectNotFound, RepositoryCorrupt, UsageError
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import load_tree
from medark.sources.dicom.header import REREAD_LIMIT, Malformed, parse_header
from medark.util.lru import LRU


def studies_in(repo: CatalogRepo, snapshot: Snapshot, study_uid: str,
               series_uid: str | None = None,
               reader: CatalogReader | None = None) -> list[InstanceRecord]:
    """The instances of one study (or of one of its series) in a snapshot, sorted by
    path: each record's `path` is the file's path in the snapshot (for restore's
    selection), with its `sop_uid`, `sop_class` and `transfer_syntax` (for a C-STORE's
    presentation contexts). [] when the snapshot has no catalog or no such study.
    Malformed files are never returned. Raises RepositoryCorrupt or ObjectNotFound when
    the catalog cannot be read. The catalog is read segment by segment; `reader` shares
    decoded segments across calls (a search through many snapshots)."""
    found = [r for r in (reader or CatalogReader(repo)).records(snapshot)
             if not r.malformed and r.study_uid == study_uid
             and (series_uid is None or r.series_uid == series_uid)]
    return sorted(found, key=lambda r: r.path)


# ---- find ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DicomFilter:
    """Every given key must match (an instance-level AND)."""

    patient_id: str | None = None
    name: str | None = None
    """Substring of the patient's name, case-insensitive (any script)."""
    accession: str | None = None
    study_uid: str | None = None
    modality: str | None = None
    date_from: str | None = None
    """YYYYMMDD, inclusive."""
    date_to: str | None = None

    def matches(self, r: InstanceRecord) -> bool:
        if r.malformed:
            return False
        if self.patient_id is not None and r.patient_id != self.patient_id:
            return False
        if self.accession is not None and r.accession != self.accession:
            return False
        if self.study_uid is not None and r.study_uid != self.study_uid:
            return False
        if self.modality is not None and r.modality.upper() != self.modality.upper():
            return False
        if self.name is not None and self.name.casefold() not in r.patient_name.casefold():
            return False
        if self.date_from is not None and not (r.study_date and r.study_date >= self.date_from):
            return False
        return self.date_to is None or bool(r.study_date and r.study_date <= self.date_to)

    def public(self) -> dict[str, str]:
        """The filters given (for the audit record and --json)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def date_range(text: str) -> tuple[str | None, str | None]:
    """`FROM..TO` (either side may be empty) or one day; YYYYMMDD or YYYY-MM-DD."""
    if ".." in text:
        low, _sep, high = text.partition("..")
    else:
        low = high = text
    return _day(low, text), _day(high, text)


def _day(part: str, whole: str) -> str | None:
    part = part.strip()
    if not part:
        return None
    digits = part.replace("-", "")
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError
    except ValueError:
        raise UsageError(f"--date {whole!r}: give FROM..TO as YYYYMMDD or YYYY-MM-DD "
                         "(either side may be left out)") from None
    return digits


@dataclass
class SeriesHit:
    series_uid: str
    modality: str
    instances: int
    size: int
    snapshots: list[str] = field(default_factory=list)


@dataclass
class StudyHit:
    study_uid: str
    patient_id: str
    patient_name: str
    accession: str
    study_date: str
    study_description: str
    series: dict[str, SeriesHit] = field(default_factory=dict)
    snapshots: list[str] = field(default_factory=list)

    @property
    def instances(self) -> int:
        return sum(s.instances for s in self.series.values())

    def public(self) -> dict[str, object]:
        return {
            "study_uid": self.study_uid, "patient_id": self.patient_id,
            "patient_name": self.patient_name, "accession": self.accession,
            "study_date": self.study_date, "study_description": self.study_description,
            "instances": self.instances, "size": sum(s.size for s in self.series.values()),
            "snapshots": self.snapshots,
            "series": [{"series_uid": s.series_uid, "modality": s.modality,
                        "instances": s.instances, "size": s.size, "snapshots": s.snapshots}
                       for s in sorted(self.series.values(), key=lambda s: s.series_uid)],
        }


@dataclass
class FindResult:
    studies: list[StudyHit]
    searched: int
    """Snapshots searched."""
    with_catalog: int
    decoded: int
    """Segments decoded (one a directory; those snapshots share, once)."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Snapshot id -> why its catalog could not be read (its blobs pruned by a Medark
    that did not know them, or damaged); the other snapshots are still searched."""


def _group(records: list[InstanceRecord], flt: DicomFilter) -> dict[str, StudyHit]:
    """One segment's matching instances, per study and series."""
    studies: dict[str, StudyHit] = {}
    for r in records:
        if not flt.matches(r):
            continue
        study = studies.get(r.study_uid)
        if study is None:
            study = studies[r.study_uid] = StudyHit(
                r.study_uid, r.patient_id, r.patient_name, r.accession, r.study_date,
                r.study_description)
        series = study.series.get(r.series_uid)
        if series is None:
            series = study.series[r.series_uid] = SeriesHit(r.series_uid, r.modality, 0, 0)
        series.instances += 1
        series.size += r.size
    return studies


def _add(into: dict[str, StudyHit], hits: dict[str, StudyHit]) -> None:
    """Sums `hits` into `into` (new objects: `hits` may be a remembered result)."""
    for uid, hit in hits.items():
        mine = into.get(uid)
        if mine is None:
            mine = into[uid] = StudyHit(hit.study_uid, hit.patient_id, hit.patient_name,
                                        hit.accession, hit.study_date, hit.study_description)
        for key, s in hit.series.items():
            have = mine.series.get(key)
            if have is None:
                mine.series[key] = SeriesHit(s.series_uid, s.modality, s.instances, s.size)
            else:
                have.instances += s.instances
                have.size += s.size


MEMO_ENTRIES = 4096
MEMO_SERIES = 16
"""A catalog subtree's or segment's hits are remembered (by id) when they name at most
this many series: a selective search skips every subtree unchanged since the previous
snapshot, and the memory stays bounded when a search matches nearly everything."""


class _Search:
    """One search's hits per catalog subtree and per segment, remembered by id (both
    are content-addressed: the same id holds the same records wherever it appears)."""

    def __init__(self, repo: CatalogRepo, flt: DicomFilter) -> None:
        self.repo = repo
        self.flt = flt
        self.reader = CatalogReader(repo, keep=8)
        self.memo: LRU[tuple[bytes, ...], dict[str, StudyHit]] = LRU(MEMO_ENTRIES)

    def snapshot(self, snap: Snapshot) -> dict[str, StudyHit]:
        tree = snap.catalog_tree
        if tree is None:
            return {}
        if snap.dicom_catalog.get("version") == LEGACY_VERSION:
            hits: dict[str, StudyHit] = {}
            for seg in segments(self.repo, snap):
                _add(hits, self._segment(seg))
            return hits
        return self._tree(tree, "/")

    def _remember(self, key: tuple[bytes, ...], hits: dict[str, StudyHit]
                  ) -> dict[str, StudyHit]:
        if sum(len(h.series) for h in hits.values()) <= MEMO_SERIES:
            self.memo.put(key, hits)
        return hits

    def _segment(self, seg: Segment) -> dict[str, StudyHit]:
        key = (b"s", *seg.node.content)
        hits = self.memo.get(key)
        if hits is None:
            hits = self._remember(key, _group(self.reader.segment(seg), self.flt))
        return hits

    def _tree(self, tree: bytes, path: str) -> dict[str, StudyHit]:
        key = (b"t", tree)
        remembered = self.memo.get(key)
        if remembered is not None:
            return remembered
        hits: dict[str, StudyHit] = {}
        for node in load_tree(self.repo, tree):
            if node.name == SEGMENT and node.type == "file":
                _add(hits, self._segment(Segment(path, node)))
            elif node.type == "dir" and node.subtree is not None:
                _add(hits, self._tree(node.subtree, join(path, node.name)))
        return self._remember(key, hits)


def find(repo: CatalogRepo, snapshots: list[Snapshot], flt: DicomFilter) -> FindResult:
    """Matching studies across snapshots, oldest snapshot first; a study's figures are
    those of the newest snapshot holding it. Catalogs are read a segment at a time; a
    subtree or segment shared by snapshots is decoded once while its hits are
    remembered (bounded: see MEMO_SERIES)."""
    search = _Search(repo, flt)
    merged: dict[str, StudyHit] = {}
    unreadable: dict[str, str] = {}
    with_catalog = 0
    for snap in sorted(snapshots, key=lambda s: (s.time, s.id)):
        if snap.dicom_catalog:
            with_catalog += 1
        try:
            hits = search.snapshot(snap)
        except (ObjectNotFound, RepositoryCorrupt) as exc:
            unreadable[snap.id] = str(exc)
            continue
        for uid, hit in hits.items():
            mine = merged.get(uid)
            snaps = (mine.snapshots if mine else []) + [snap.id]
            series_snaps = {k: s.snapshots for k, s in mine.series.items()} if mine else {}
            fresh = StudyHit(hit.study_uid, hit.patient_id, hit.patient_name, hit.accession,
                             hit.study_date, hit.study_description, snapshots=snaps)
            for key, s in (mine.series.items() if mine else []):
                fresh.series[key] = SeriesHit(s.series_uid, s.modality, s.instances, s.size,
                                              s.snapshots)
            for key, s in hit.series.items():
                fresh.series[key] = SeriesHit(s.series_uid, s.modality, s.instances, s.size,
                                              [*series_snaps.get(key, []), snap.id])
            merged[uid] = fresh
    studies = sorted(merged.values(), key=lambda h: (h.patient_id, h.study_date, h.study_uid))
    return FindResult(studies, len(snapshots), with_catalog, search.reader.decoded,
                      unreadable)


# ---- verify --------------------------------------------------------------------------

@dataclass
class VerifyResult:
    instances: int
    checked: int
    malformed: int
    mismatches: list[str]


class _Files:
    """A snapshot's directories, loaded on demand to find the records' files; the most
    recent ones kept (the catalog is walked depth first, like the files' tree)."""

    def __init__(self, repo: CatalogRepo, root: bytes) -> None:
        self.repo = repo
        self.root = root
        self._dirs: LRU[str, dict[str, Node]] = LRU(256)

    def _load(self, tree: bytes) -> dict[str, Node]:
        return {n.name: n for n in load_tree(self.repo, tree)}

    def node(self, path: str) -> Node | None:
        entries = self._dir(parent_of(path.rstrip("/")))
        return entries.get(path.rstrip("/").rpartition("/")[2]) if entries is not None else None

    def _dir(self, path: str) -> dict[str, Node] | None:
        cached = self._dirs.get(path)
        if cached is not None:
            return cached
        if path == "/":
            return self._dirs.put(path, self._load(self.root))
        above = self._dir(parent_of(path))
        node = above.get(path.rpartition("/")[2]) if above is not None else None
        if node is None or node.type != "dir" or node.subtree is None:
            return None
        return self._dirs.put(path, self._load(node.subtree))


def _head(repo: CatalogRepo, node: Node, upto: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    for blob in node.content:
        parts.append(repo.load_blob(blob))
        got += len(parts[-1])
        if got >= upto:
            break
    return b"".join(parts)


def verify(repo: CatalogRepo, snapshot: Snapshot, share: float = 1.0,
           rng: random.Random | None = None) -> VerifyResult:
    """Each (sampled) instance's file is read from the repository, parses as DICOM, and
    its UIDs and size match its record; one line per mismatch. The catalog is read a
    segment at a time; a sample is drawn as it goes (selection sampling over the count
    the snapshot records), so it is exactly the share asked for."""
    rng = rng or random.Random()
    total = snapshot.dicom_catalog.get("instances")
    if share < 1.0 and not isinstance(total, int):
        total = sum(1 for r in CatalogReader(repo).records(snapshot) if not r.malformed)
    wanted = (max(1, round(total * share)) if total else 0) if share < 1.0 else -1
    files = _Files(repo, snapshot.tree)
    mismatches: list[str] = []
    instances = malformed = checked = 0
    for seg in segments(repo, snapshot):
        for r in sorted(seg.records(repo), key=lambda r: r.path):
            if r.malformed:
                malformed += 1
                continue
            instances += 1
            if wanted >= 0:
                left = max(int(total or 0) - instances + 1, 1)
                if rng.random() * left >= wanted - checked:
                    continue
            checked += 1
            mismatches.extend(_verify_one(repo, files, r))
    return VerifyResult(instances, checked, malformed, mismatches)


def _verify_one(repo: CatalogRepo, files: _Files, r: InstanceRecord) -> list[str]:
    node = files.node(r.path)
    if node is None or node.type != "file":
        return [f"{r.path}: in the catalog but not a file in the snapshot"]
    if node.size != r.size:
        return [f"{r.path}: size {node.size}, the catalog says {r.size}"]
    try:
        head = _head(repo, node, 1)
        try:
            header = parse_header(head)
        except Malformed:
            if len(head) >= node.size:
                raise
            header = parse_header(_head(repo, node, REREAD_LIMIT))
    except Malformed as exc:
        return [f"{r.path}: {exc}"]
    except ObjectNotFound as exc:
        return [f"{r.path}: its data cannot be read ({exc})"]
    return [f"{r.path}: {label} is {stored!r}, the catalog says {catalog!r}"
            for label, stored, catalog in (
                ("StudyInstanceUID", header.study_uid, r.study_uid),
                ("SeriesInstanceUID", header.series_uid, r.series_uid),
                ("SOPInstanceUID", header.sop_uid, r.sop_uid),
                ("SOPClassUID", header.sop_class, r.sop_class),
                ("TransferSyntaxUID", header.transfer_syntax, r.transfer_syntax))
            if stored != catalog]
