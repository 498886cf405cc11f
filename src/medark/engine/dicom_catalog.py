"""The DICOM catalog: one record per DICOM instance of a file backup, stored encrypted in
the repository and referred to by the snapshot (docs/repository-format.md, "DICOM
catalog").

During `backup` the `CatalogBuilder` (a file observer, engine/file_observer.py) parses
the header of every new or changed file that starts like DICOM, from the bytes the
backup read; the records of unchanged files are carried over from the parent snapshot's
catalog. At the end the records, sorted by path, are written as JSON lines, cut by the
repository's content-defined chunker into DATA blobs, and named by a TREE blob holding
one file node: an unchanged catalog deduplicates whole, a changed one mostly, and prune,
check, copy and object locks treat it as they treat a snapshot's files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple, dataclass, fields
from typing import Any, Protocol

from medark.errors import ObjectNotFound, RepositoryCorrupt
from medark.repo.chunker import Chunker, ChunkerParams
from medark.repo.pack import BlobType
from medark.repo.repository import SaveResult
from medark.snapshot.model import Node, Snapshot, encode_tree
from medark.snapshot.store import load_tree
from medark.sources.dicom import MAGIC_OFFSET, is_dicom
from medark.util.jsondoc import MALFORMED

FORMAT = "medark-dicom-catalog"
VERSION = 1
NODE_NAME = "dicom-catalog.v1.jsonl"


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One DICOM file of a snapshot. `error` is set (and the DICOM fields may be empty)
    for a file that starts like DICOM but whose header does not parse."""

    path: str
    """The file's path in the snapshot (absolute, as `ls` shows it)."""
    size: int
    patient_id: str = ""
    patient_name: str = ""
    accession: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    sop_class: str = ""
    transfer_syntax: str = ""
    modality: str = ""
    study_date: str = ""
    study_description: str = ""
    error: str = ""

    @property
    def malformed(self) -> bool:
        return bool(self.error)


FIELDS = [f.name for f in fields(InstanceRecord)]
_SHARED = ("patient_id", "patient_name", "accession", "study_uid", "series_uid",
           "sop_class", "transfer_syntax", "modality", "study_date", "study_description")


class Strings:
    """One string object for each distinct value of the fields that repeat across a
    series' instances (patient, study, series, class…): a record then costs about
    half the memory, which a catalog of a million instances held during a backup
    feels (about 0.35 instead of 0.7 GB)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def share(self, record: InstanceRecord) -> InstanceRecord:
        seen = self._seen
        for name in _SHARED:
            value = getattr(record, name)
            # dataclass(frozen=True) refuses setattr; the record is not yet shared
            object.__setattr__(record, name, seen.setdefault(value, value))
        return record


class CatalogRepo(Protocol):
    """What storing and reading catalogs needs (docs/architecture.md, convention 4)."""

    def save_blob(
        self, blob_type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None
    ) -> SaveResult: ...

    def load_blob(self, blob_id: bytes) -> bytes: ...

    def save_unpacked(self, prefix: str, plaintext: bytes) -> str: ...

    def load_unpacked(self, name: str) -> bytes: ...

    def list_names(self, prefix: str) -> Iterator[str]: ...


# ---- the stored form ---------------------------------------------------------------

def encode_records(records: Iterable[InstanceRecord]) -> bytes:
    """A header line, then one JSON array per record in FIELDS order, sorted by path."""
    head = json.dumps({"format": FORMAT, "version": VERSION, "fields": FIELDS},
                      separators=(",", ":"))
    lines = [head]
    for record in sorted(records, key=lambda r: r.path):
        lines.append(json.dumps(astuple(record), ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def decode_records(raw: bytes) -> list[InstanceRecord]:
    try:
        lines = raw.decode().splitlines()
        head = json.loads(lines[0]) if lines else None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise ValueError("not a DICOM catalog")
        if head.get("version") != VERSION or head.get("fields") != FIELDS:
            raise ValueError(f"catalog version {head.get('version')} is not supported")
        records = []
        strings = Strings()
        for line in lines[1:]:
            values = json.loads(line)
            if (not isinstance(values, list) or len(values) != len(FIELDS)
                    or not isinstance(values[1], int)
                    or not all(isinstance(v, str) for i, v in enumerate(values) if i != 1)):
                raise ValueError("a record is not a list of the catalog's fields")
            records.append(strings.share(InstanceRecord(*values)))
        return records
    except (*MALFORMED, UnicodeDecodeError) as exc:
        raise RepositoryCorrupt(f"a DICOM catalog is malformed: {exc}") from None


def save_catalog(repo: CatalogRepo, chunker: ChunkerParams,
                 records: Iterable[InstanceRecord]) -> tuple[bytes, int, int]:
    """(tree id, plaintext size, bytes added to the repository) of the stored catalog:
    0 added when the same catalog is already stored."""
    data = encode_records(records)
    saved = [repo.save_blob(BlobType.DATA, chunk) for chunk in Chunker(chunker).cut(data)]
    node = Node(name=NODE_NAME, type="file", mode=0o100600, size=len(data),
                content=[r.id for r in saved])
    tree = repo.save_blob(BlobType.TREE, encode_tree([node]))
    return tree.id, len(data), sum(r.stored for r in saved) + tree.stored


def load_records(repo: CatalogRepo, tree_id: bytes) -> list[InstanceRecord]:
    nodes = [n for n in load_tree(repo, tree_id) if n.name == NODE_NAME]
    if len(nodes) != 1:
        raise RepositoryCorrupt(f"DICOM catalog tree {tree_id.hex()[:16]} has no records")
    return decode_records(b"".join(repo.load_blob(b) for b in nodes[0].content))


def snapshot_records(repo: CatalogRepo, snapshot: Snapshot) -> list[InstanceRecord]:
    """The catalog of a snapshot ([] when it has none or it holds no instance)."""
    tree = snapshot.catalog_tree
    return [] if tree is None else load_records(repo, tree)


class CatalogCache:
    """Decoded catalogs by tree id: snapshots that share an unchanged catalog (the usual
    case between two backups of a quiet PACS) are decoded once."""

    def __init__(self, repo: CatalogRepo) -> None:
        self.repo = repo
        self._by_tree: dict[bytes, list[InstanceRecord]] = {}
        self.decoded = 0

    def records(self, snapshot: Snapshot) -> list[InstanceRecord]:
        tree = snapshot.catalog_tree
        if tree is None:
            return []
        cached = self._by_tree.get(tree)
        if cached is None:
            cached = self._by_tree[tree] = load_records(self.repo, tree)
            self.decoded += 1
        return cached


# ---- building it during a backup ---------------------------------------------------

def record_of(path: str, size: int, head: bytes) -> InstanceRecord | None:
    """The record of a file from its first bytes; None when it is not DICOM."""
    if not is_dicom(head):
        return None
    from medark.sources.dicom.header import Malformed, read_header  # pydicom: when needed

    try:
        h = read_header(path, head, size)
    except Malformed as exc:
        return InstanceRecord(path, size, error=str(exc))
    return InstanceRecord(path, size, h.patient_id, h.patient_name, h.accession, h.study_uid,
                          h.series_uid, h.sop_uid, h.sop_class, h.transfer_syntax,
                          h.modality, h.study_date, h.study_description)


class CatalogBuilder:
    """The backup's file observer that makes the snapshot's catalog."""

    def __init__(self, repo: CatalogRepo, chunker: ChunkerParams,
                 flush: Callable[[], None]) -> None:
        """`flush`: called after the catalog's blobs are saved (the repository's flush),
        so the snapshot is written only once they are indexed."""
        self.repo = repo
        self.chunker = chunker
        self._flush = flush
        self._parent: Snapshot | None = None
        self._parsed: list[InstanceRecord] = []
        self._kept: list[str] = []
        self._parent_records: int | None = None
        self._strings = Strings()
        self.malformed_paths: list[str] = []

    def start(self, parent: Snapshot | None) -> None:
        self._parent = parent

    def read(self, path: str, size: int, head: bytes) -> None:
        if len(head) <= MAGIC_OFFSET:
            return
        record = record_of(path, size, head)
        if record is not None:  # list.append is atomic: file threads share it
            self._parsed.append(self._strings.share(record))

    def unchanged(self, path: str) -> None:
        self._kept.append(path)

    def finish(self, snapshot: Snapshot) -> None:
        carried = self._carried()
        records = self._parsed + carried
        malformed = [r for r in records if r.malformed]
        self.malformed_paths = sorted(r.path for r in self._parsed if r.malformed)
        doc: dict[str, Any] = {"version": VERSION, "instances": len(records) - len(malformed),
                               "malformed": len(malformed)}
        size = stored = 0
        parent = self._parent
        if (not self._parsed and parent is not None and parent.catalog_tree is not None
                and self._parent_records == len(carried)):
            # every record carried over, none new: the parent's catalog as it is, with
            # no encoding, chunking or hashing (a quiet night of a large PACS)
            doc["tree"] = parent.dicom_catalog["tree"]
            size = int(parent.summary.get("dicom", {}).get("catalog_bytes", 0))
        elif records:
            tree, size, stored = save_catalog(self.repo, self.chunker, records)
            self._flush()
            doc["tree"] = tree.hex()
        snapshot.dicom_catalog = doc
        snapshot.summary["dicom"] = {
            "instances": doc["instances"], "malformed": doc["malformed"],
            "parsed": len(self._parsed), "carried": len(carried),
            "studies": len({r.study_uid for r in records if not r.malformed}),
            "catalog_bytes": size, "catalog_stored": stored,
        }

    def _carried(self) -> list[InstanceRecord]:
        """Records of the files reused unread. From the parent's catalog; when the parent
        has none (made without one, or its blobs are gone), from the files' heads."""
        if not self._kept:
            return []
        parent = self._parent
        if parent is not None and parent.dicom_catalog:
            try:
                by_path = {r.path: r for r in snapshot_records(self.repo, parent)}
            except (ObjectNotFound, RepositoryCorrupt):
                by_path = None
            if by_path is not None:
                self._parent_records = len(by_path)
                return [r for r in (by_path.get(p) for p in self._kept) if r is not None]
        return [r for r in (_record_from_disk(p) for p in self._kept) if r is not None]


def _record_from_disk(path: str) -> InstanceRecord | None:
    """A reused file's record read from its start (once, when no parent catalog has it)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(MAGIC_OFFSET + 4)
            if not is_dicom(head):
                return None
            head += f.read(64 * 1024)
    except OSError:
        return None
    return record_of(path, size, head)
