"""The DICOM catalog: one record per DICOM instance of a file backup, stored encrypted in
the repository and referred to by the snapshot (docs/repository-format.md, "DICOM
catalog").

The catalog is stored per directory (version 2): each directory's records are one
segment (JSON lines sorted by name, cut by the repository's chunker into DATA blobs),
and a tree of TREE blobs mirroring the directories that hold records names the segments
and carries each subtree's counts. During `backup` the `CatalogBuilder` (a file
observer, engine/file_observer.py) parses the header of every new or changed file that
starts like DICOM and, when the backup has finished a directory, writes that directory's
segment and catalog tree: an unchanged directory reuses the parent snapshot's catalog
subtree as it is (nothing decoded), a changed one carries its unchanged files' records
over from the parent's segment of that directory alone. Memory is what the directories
in flight hold, not the catalog's size. Readers (`segments`, `CatalogReader`) stream
segment by segment. Version 1 (one segment of every record under a single node) is
still read.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Protocol

from medark.errors import ObjectNotFound, RepositoryCorrupt
from medark.repo.chunker import Chunker, ChunkerParams
from medark.repo.pack import BlobType, SaveResult
from medark.snapshot.model import Node, Snapshot, encode_tree
from medark.snapshot.store import load_tree
from medark.sources.dicom import MAGIC_OFFSET, is_dicom
from medark.util.jsondoc import MALFORMED
from medark.util.lru import LRU

FORMAT = "medark-dicom-catalog"
VERSION = 2
LEGACY_VERSION = 1
NODE_NAME = "dicom-catalog.v1.jsonl"
"""Version 1's one node (every record, full paths)."""
SEGMENT = "."
"""A catalog tree's node holding its own directory's records (no directory entry can be
named so)."""
SEGMENT_FORMAT = "medark-dicom-segment"
_DIR_MODE, _FILE_MODE = 0o040700, 0o100600
_TREES_KEPT = 32
"""Catalog trees kept by directory path while one snapshot's catalog is looked up (a
depth-first walk reuses its ancestors'). Not more: each holds its directory's
subdirectory nodes, so 256 kept all 65,536 leaf nodes of an Orthanc tree (+30 MB on a
no-change backup, docs/benchmarks.md "1,000,000 files")."""


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

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


FIELDS = [f.name for f in fields(InstanceRecord)]
SEGMENT_FIELDS = ["name", *FIELDS[1:]]
_SHARED = ("patient_id", "patient_name", "accession", "study_uid", "series_uid",
           "sop_class", "transfer_syntax", "modality", "study_date", "study_description")


class Strings:
    """One string object for each distinct value of the fields that repeat across a
    series' instances (patient, study, series, class…): a record then costs about half
    the memory. Kept per segment: sharing across a whole catalog would grow with it."""

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


def parent_of(path: str) -> str:
    """The directory holding `path` ("/" for "/x")."""
    return path.rpartition("/")[0] or "/"


def join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


# ---- the stored form ---------------------------------------------------------------

def _dumps(values: list[Any]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def _encode(fmt: str, version: int, names: list[str], rows: Iterable[list[Any]]) -> bytes:
    head = json.dumps({"format": fmt, "version": version, "fields": names},
                      separators=(",", ":"))
    return ("\n".join([head, *(_dumps(r) for r in rows)]) + "\n").encode()


def _values(record: InstanceRecord) -> list[Any]:
    return [getattr(record, f) for f in FIELDS]


def encode_records(records: Iterable[InstanceRecord]) -> bytes:
    """Version 1: a header line, then one JSON array per record in FIELDS order, sorted
    by path (read for older snapshots; written by tests only)."""
    return _encode(FORMAT, LEGACY_VERSION, FIELDS,
                   (_values(r) for r in sorted(records, key=lambda r: r.path)))


def encode_segment(records: Iterable[InstanceRecord]) -> bytes:
    """One directory's records: a header line, then one array per record sorted by
    name, the name in place of the path."""
    rows = ([r.name, *_values(r)[1:]] for r in sorted(records, key=lambda r: r.path))
    return _encode(SEGMENT_FORMAT, VERSION, SEGMENT_FIELDS, rows)


def _decode(raw: bytes, fmt: str, version: int, names: list[str],
            directory: str | None) -> list[InstanceRecord]:
    """`directory`: the segment's (names become paths below it); None for version 1."""
    try:
        lines = raw.decode().splitlines()
        head = json.loads(lines[0]) if lines else None
        if not isinstance(head, dict) or head.get("format") != fmt:
            raise ValueError("not a DICOM catalog")
        if head.get("version") != version or head.get("fields") != names:
            raise ValueError(f"catalog version {head.get('version')} is not supported")
        records = []
        strings = Strings()
        for line in lines[1:]:
            values = json.loads(line)
            if (not isinstance(values, list) or len(values) != len(FIELDS)
                    or not isinstance(values[1], int)
                    or not all(isinstance(v, str) for i, v in enumerate(values) if i != 1)):
                raise ValueError("a record is not a list of the catalog's fields")
            if directory is not None:
                if not values[0] or "/" in values[0] or values[0] in (".", ".."):
                    raise ValueError(f"a record's name {values[0]!r} is not a file name")
                values[0] = join(directory, values[0])
            records.append(strings.share(InstanceRecord(*values)))
        return records
    except (*MALFORMED, UnicodeDecodeError) as exc:
        raise RepositoryCorrupt(f"a DICOM catalog is malformed: {exc}") from None


def decode_records(raw: bytes) -> list[InstanceRecord]:
    """Version 1's records."""
    return _decode(raw, FORMAT, LEGACY_VERSION, FIELDS, None)


def decode_segment(raw: bytes, directory: str) -> list[InstanceRecord]:
    return _decode(raw, SEGMENT_FORMAT, VERSION, SEGMENT_FIELDS, directory)


def _save_chunks(repo: CatalogRepo, chunker: ChunkerParams, name: str,
                 data: bytes) -> tuple[Node, int]:
    """A file node holding `data` as chunks, and the bytes that added."""
    saved = [repo.save_blob(BlobType.DATA, chunk) for chunk in Chunker(chunker).cut(data)]
    node = Node(name=name, type="file", mode=_FILE_MODE, size=len(data),
                content=[r.id for r in saved])
    return node, sum(r.stored for r in saved)


def save_catalog(repo: CatalogRepo, chunker: ChunkerParams,
                 records: Iterable[InstanceRecord]) -> tuple[bytes, int, int]:
    """Version 1 (tests of older snapshots): (tree id, plaintext size, bytes added)."""
    data = encode_records(records)
    node, stored = _save_chunks(repo, chunker, NODE_NAME, data)
    tree = repo.save_blob(BlobType.TREE, encode_tree([node]))
    return tree.id, len(data), stored + tree.stored


class _Writer:
    """Writes catalog trees bottom-up and counts what they cost."""

    def __init__(self, repo: CatalogRepo, chunker: ChunkerParams) -> None:
        self.repo = repo
        self.chunker = chunker
        self.plain = 0
        self.stored = 0

    def directory(self, name: str, own: list[InstanceRecord],
                  below: list[Node]) -> Node | None:
        """The catalog node of a directory from its own records and its subdirectories'
        catalog nodes: `size` counts the instances below it, `inode` the malformed
        files (docs/repository-format.md). None when it holds nothing."""
        nodes = list(below)
        bad = sum(n.inode for n in below) + sum(1 for r in own if r.malformed)
        good = sum(n.size for n in below) + len(own) - sum(1 for r in own if r.malformed)
        if own:
            data = encode_segment(own)
            node, stored = _save_chunks(self.repo, self.chunker, SEGMENT, data)
            nodes.append(node)
            self.plain += len(data)
            self.stored += stored
        if not nodes:
            return None
        raw = encode_tree(nodes)
        tree = self.repo.save_blob(BlobType.TREE, raw)
        self.plain += len(raw)
        self.stored += tree.stored
        return Node(name=name, type="dir", mode=_DIR_MODE, size=good, inode=bad,
                    subtree=tree.id)


def save_records(repo: CatalogRepo, chunker: ChunkerParams,
                 records: Iterable[InstanceRecord]) -> tuple[bytes | None, int, int]:
    """A whole catalog from records in memory (tests, tools): (root tree id or None,
    plaintext size, bytes added). A backup builds it directory by directory instead."""
    by_dir: dict[str, list[InstanceRecord]] = {}
    for r in records:
        by_dir.setdefault(parent_of(r.path), []).append(r)
    dirs = set(by_dir)
    for d in list(dirs):
        while d != "/":
            d = parent_of(d)
            dirs.add(d)
    writer = _Writer(repo, chunker)
    below: dict[str, list[Node]] = {}
    root = None
    for d in sorted(dirs, key=lambda p: (-p.count("/"), p)):
        if d == "/":
            continue
        node = writer.directory(d.rpartition("/")[2], by_dir.get(d, []), below.pop(d, []))
        if node is not None:
            below.setdefault(parent_of(d), []).append(node)
    root = writer.directory("", by_dir.get("/", []), below.pop("/", []))
    return (root.subtree if root else None), writer.plain, writer.stored


def catalog_doc(instances: int, malformed: int, tree: bytes | None) -> dict[str, Any]:
    """A snapshot's `dicom_catalog` (version 2)."""
    doc: dict[str, Any] = {"version": VERSION, "instances": instances, "malformed": malformed}
    if tree is not None:
        doc["tree"] = tree.hex()
    return doc


# ---- reading -------------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    """One directory's records as stored: `directory` is "" for a version 1 catalog
    (one segment of every record, with full paths)."""

    directory: str
    node: Node

    @property
    def key(self) -> tuple[str | bytes, ...]:
        return (self.directory, *self.node.content)

    def records(self, repo: CatalogRepo) -> list[InstanceRecord]:
        raw = b"".join(repo.load_blob(b) for b in self.node.content)
        return decode_records(raw) if not self.directory else decode_segment(
            raw, self.directory)


def segments(repo: CatalogRepo, snapshot: Snapshot) -> Iterator[Segment]:
    """A snapshot's segments, depth first (each catalog tree loaded once, only the path
    down to the current one held). Raises RepositoryCorrupt or ObjectNotFound."""
    tree = snapshot.catalog_tree
    if tree is None:
        return
    if snapshot.dicom_catalog.get("version") == LEGACY_VERSION:
        nodes = [n for n in load_tree(repo, tree) if n.name == NODE_NAME]
        if len(nodes) != 1:
            raise RepositoryCorrupt(f"DICOM catalog tree {tree.hex()[:16]} has no records")
        yield Segment("", nodes[0])
        return
    yield from tree_segments(repo, tree, "/")


def tree_segments(repo: CatalogRepo, tree: bytes, path: str) -> Iterator[Segment]:
    stack = [(tree, path)]
    while stack:
        tree_id, where = stack.pop()
        subdirs = []
        for node in load_tree(repo, tree_id):
            if node.name == SEGMENT and node.type == "file":
                yield Segment(where, node)
            elif node.type == "dir" and node.subtree is not None:
                subdirs.append((node.subtree, join(where, node.name)))
        stack.extend(reversed(subdirs))


RECORDS_KEPT = 50_000
"""Decoded records a reader keeps (about 22 MB), whatever the directories' sizes."""


class CatalogReader:
    """Decoded segments by content and directory, the last `keep` of them (and at most
    RECORDS_KEPT records, besides the newest segment): snapshots sharing a directory's
    segment (every unchanged directory between two backups) decode it once while they
    are read one after the other."""

    def __init__(self, repo: CatalogRepo, keep: int = 64) -> None:
        self.repo = repo
        self._cache: LRU[tuple[str | bytes, ...], list[InstanceRecord]] = LRU(
            keep, len, RECORDS_KEPT)
        self.decoded = 0

    def segment(self, segment: Segment) -> list[InstanceRecord]:
        cached = self._cache.get(segment.key)
        if cached is None:
            cached = self._cache.put(segment.key, segment.records(self.repo))
            self.decoded += 1
        return cached

    def records(self, snapshot: Snapshot) -> Iterator[InstanceRecord]:
        """Every record of a snapshot, directory by directory."""
        for seg in segments(self.repo, snapshot):
            yield from self.segment(seg)


def snapshot_records(repo: CatalogRepo, snapshot: Snapshot) -> list[InstanceRecord]:
    """The whole catalog of a snapshot in memory, sorted by path (tests, small
    catalogs): [] when it has none."""
    return sorted(CatalogReader(repo).records(snapshot), key=lambda r: r.path)


class CatalogTrees:
    """One snapshot's catalog trees by directory path, loaded on demand; the most recent
    `keep` kept (a backup's directories finish depth first, near each other)."""

    def __init__(self, repo: CatalogRepo, root: bytes | None,
                 keep: int = _TREES_KEPT) -> None:
        self.repo = repo
        self.root = root
        self._cache: LRU[str, dict[str, Node]] = LRU(keep)
        self._absent: LRU[str, bool] = LRU(keep)

    def entries(self, path: str) -> dict[str, Node] | None:
        """The catalog tree's nodes at a directory; None when nothing below it is
        catalogued."""
        if self.root is None:
            return None
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        if self._absent.get(path):
            return None
        if path == "/":
            tree: bytes | None = self.root
        else:
            above = self.entries(parent_of(path))
            node = above.get(path.rpartition("/")[2]) if above is not None else None
            tree = node.subtree if node is not None and node.type == "dir" else None
        if tree is None:
            self._absent.put(path, True)
            return None
        return self._cache.put(path, {n.name: n for n in load_tree(self.repo, tree)})


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
    """The backup's file observer that makes the snapshot's catalog, one directory at a
    time as the backup finishes them (children before their parent)."""

    def __init__(self, repo: CatalogRepo, chunker: ChunkerParams,
                 flush: Callable[[], None]) -> None:
        """`flush`: called after the catalog's last blobs are saved (the repository's
        flush), so the snapshot is written only once they are indexed."""
        self.repo = repo
        self._writer = _Writer(repo, chunker)
        self._flush = flush
        self._lock = threading.Lock()
        self._parsed: dict[str, tuple[Strings, list[InstanceRecord]]] = {}
        self._kept: dict[str, list[str]] = {}
        self._below: dict[str, list[Node]] = {}
        self._parent: CatalogTrees | None = None
        self._legacy: Snapshot | None = None
        self._legacy_records: dict[str, dict[str, InstanceRecord]] | None = None
        self._from_disk = True
        self.parsed = 0
        self.malformed_paths: list[str] = []

    def start(self, parent: Snapshot | None) -> None:
        doc = parent.dicom_catalog if parent is not None else {}
        if parent is None or not doc:
            return  # no parent, or one made without a catalog: read kept files' starts
        self._from_disk = False
        if doc.get("version") == LEGACY_VERSION and parent.catalog_tree is not None:
            self._legacy = parent
        else:
            self._parent = CatalogTrees(self.repo, parent.catalog_tree)

    def read(self, path: str, size: int, head: bytes) -> None:
        if len(head) <= MAGIC_OFFSET:
            return
        record = record_of(path, size, head)
        if record is None:
            return
        directory = parent_of(path)
        with self._lock:  # file threads share the directories in flight
            entry = self._parsed.get(directory)
            if entry is None:
                entry = self._parsed[directory] = (Strings(), [])
            entry[1].append(entry[0].share(record))
            self.parsed += 1
            if record.malformed:
                self.malformed_paths.append(path)

    def unchanged(self, path: str) -> None:
        directory, _sep, name = path.rpartition("/")
        self._kept.setdefault(directory or "/", []).append(name)

    def directory(self, path: str, unchanged: bool) -> None:
        with self._lock:
            parsed = self._parsed.pop(path, (None, []))[1]
        kept = self._kept.pop(path, [])
        below = self._below.pop(path, [])
        if unchanged and not parsed:
            reused = self._reuse(path)
            if reused is not False:
                if isinstance(reused, Node):
                    self._below.setdefault(parent_of(path), []).append(reused)
                return
        node = self._writer.directory(path.rpartition("/")[2],
                                      parsed + self._carried(path, kept), below)
        if node is not None:
            self._below.setdefault(parent_of(path), []).append(node)

    def finish(self, snapshot: Snapshot) -> None:
        # What no directory event closed: the directories above the backed-up paths,
        # and files given as paths. Deepest first, so each parent sees its children.
        with self._lock:
            open_dirs = set(self._parsed) | set(self._kept) | set(self._below)
        todo = set()
        for d in open_dirs:
            while d != "/":
                todo.add(d)
                d = parent_of(d)
        for d in sorted(todo, key=lambda p: (-p.count("/"), p)):
            self.directory(d, False)
        with self._lock:
            parsed = self._parsed.pop("/", (None, []))[1]
        root = self._writer.directory("", parsed + self._carried("/", self._kept.pop("/", [])),
                                      self._below.pop("/", []))
        self._flush()
        doc = catalog_doc(root.size if root else 0, root.inode if root else 0,
                          root.subtree if root else None)
        snapshot.dicom_catalog = doc
        self.malformed_paths.sort()
        total = doc["instances"] + doc["malformed"]
        snapshot.summary["dicom"] = {
            "instances": doc["instances"], "malformed": doc["malformed"],
            "parsed": self.parsed, "carried": total - self.parsed,
            "catalog_bytes": self._writer.plain, "catalog_stored": self._writer.stored,
        }

    def _reuse(self, path: str) -> Node | bool | None:
        """An unchanged directory's catalog node in the parent snapshot (None: nothing
        below it is DICOM); False when the parent's catalog cannot say."""
        if self._parent is None:
            return False
        try:
            above = self._parent.entries(parent_of(path))
        except (ObjectNotFound, RepositoryCorrupt):
            return False
        name = path.rpartition("/")[2]
        node = above.get(name) if above is not None else None
        if node is None or node.type != "dir":
            return None
        return Node(name=name, type="dir", mode=_DIR_MODE, size=node.size, inode=node.inode,
                    subtree=node.subtree)

    def _carried(self, directory: str, kept: list[str]) -> list[InstanceRecord]:
        """Records of a directory's files reused unread: from the parent's segment of
        that directory; when the parent has no catalog (made without one, or its blobs
        are gone), from the files' starts."""
        if not kept:
            return []
        if not self._from_disk:
            try:
                by_name = self._parent_records(directory)
            except (ObjectNotFound, RepositoryCorrupt):
                by_name = None
            if by_name is not None:
                return [r for r in (by_name.get(n) for n in kept) if r is not None]
        return [r for r in (_record_from_disk(join(directory, n)) for n in kept)
                if r is not None]

    def _parent_records(self, directory: str) -> dict[str, InstanceRecord]:
        if self._legacy is not None:
            if self._legacy_records is None:  # version 1: the whole catalog, once
                grouped: dict[str, dict[str, InstanceRecord]] = {}
                for r in CatalogReader(self.repo).records(self._legacy):
                    grouped.setdefault(parent_of(r.path), {})[r.name] = r
                self._legacy_records = grouped
            return self._legacy_records.get(directory, {})
        assert self._parent is not None
        entries = self._parent.entries(directory)
        node = entries.get(SEGMENT) if entries is not None else None
        if node is None:
            return {}
        return {r.name: r for r in Segment(directory, node).records(self.repo)}


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
