"""engine/dicom_restore.py on a real local repository: which snapshot a study comes from,
a directory restore of exactly the study's paths (names with glob characters taken
literally), a catalog record whose file the snapshot lacks, and the in-memory reads a
C-STORE push is fed with."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medark.engine.dicom_catalog import InstanceRecord, catalog_doc, save_records
from medark.engine.dicom_restore import (
    ExactPaths,
    SnapshotFiles,
    locate_study,
    read_instance,
    restore_to_dir,
)
from medark.errors import IntegrityError, ObjectNotFound, RepositoryCorrupt
from medark.repo.compression import CompressionSpec
from medark.repo.crypto import DEFAULT_SUITE
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.storage.local import LocalBackend
from medark.util.progress import NullProgress

MTIME = 1_700_000_000_123_456_789
CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", DEFAULT_SUITE,
                        CompressionSpec("zstd", 3), cache_dir=tmp_path / "cache")
    yield r
    r.close()


def content(path: str) -> bytes:
    return f"instance at {path}\n".encode() * 40


def rec(path: str, study: str, series: str = "1", sop: str = "") -> InstanceRecord:
    return InstanceRecord(path, len(content(path)), "P1", "张^三", "ACC1", study,
                          f"{study}.{series}", sop or f"{study}.{series}.{path[-6:]}", CT,
                          EXPLICIT, "CT", "20261103", "")


def _file(repo: Repository, name: str, path: str) -> Node:
    data = content(path)
    blob = repo.save_blob(BlobType.DATA, data).id
    return Node(name, "file", mode=stat.S_IFREG | 0o640, size=len(data), content=[blob],
                mtime_ns=MTIME)


def _tree(repo: Repository, files: list[str]) -> bytes:
    """A tree holding these absolute paths (directories made as needed)."""
    def build(prefix: str, paths: list[str]) -> bytes:
        here: dict[str, list[str]] = {}
        nodes: list[Node] = []
        for path in paths:
            head, _sep, rest = path.partition("/")
            if rest:
                here.setdefault(head, []).append(rest)
            else:
                nodes.append(_file(repo, head, f"{prefix}/{head}"))
        for name, below in sorted(here.items()):
            nodes.append(Node(name, "dir", mode=stat.S_IFDIR | 0o755, mtime_ns=MTIME,
                              subtree=build(f"{prefix}/{name}", below)))
        return save_tree(repo, sorted(nodes, key=lambda n: n.name))

    return build("", [p.lstrip("/") for p in files])


def _snapshot(repo: Repository, files: list[str], records: list[InstanceRecord],
              hour: int) -> Snapshot:
    catalog, _size, _stored = save_records(repo, repo.config.chunker, records)
    snap = Snapshot(time=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=hour),
                    tree=_tree(repo, files), paths=["/pacs"], hostname="pacs1",
                    dicom_catalog=catalog_doc(len(records), 0, catalog))
    repo.flush()
    save_snapshot(repo, snap)
    return snap


S_FILES = ["/pacs/a/[1].dcm", "/pacs/a/x*.dcm"]
T_FILES = ["/pacs/a/1.dcm", "/pacs/a/xy.dcm", "/pacs/b/other.dcm"]


def test_the_newest_snapshot_holding_the_study_or_the_series(repo: Repository) -> None:
    older = _snapshot(repo, S_FILES + T_FILES,
                      [rec(p, "1.2.9") for p in S_FILES] + [rec(p, "1.2.7") for p in T_FILES],
                      1)
    newer = _snapshot(repo, T_FILES, [rec(T_FILES[0], "1.2.7"),
                                      rec(T_FILES[1], "1.2.7", series="2"),
                                      rec(T_FILES[2], "1.2.7")], 2)
    snaps = [older, newer]
    assert locate_study(repo, snaps, "1.2.9").snapshot.id == older.id
    point = locate_study(repo, snaps, "1.2.7")
    assert point.snapshot.id == newer.id and len(point.records) == 3
    assert point.series == ["1.2.7.1", "1.2.7.2"]
    only = locate_study(repo, snaps, "1.2.7", "1.2.7.2")
    assert [r.path for r in only.records] == [T_FILES[1]]
    given = locate_study(repo, snaps, "1.2.7", given=older)
    assert given.snapshot.id == older.id and len(given.records) == 3
    with pytest.raises(ObjectNotFound, match=r"2 snapshot\(s\) searched, 2 with a catalog"):
        locate_study(repo, snaps, "1.2.404")
    with pytest.raises(ObjectNotFound, match="dicom find --study-uid"):
        locate_study(repo, snaps, "1.2.9", given=newer)


def test_exactly_the_study_paths_are_restored(repo: Repository, tmp_path: Path) -> None:
    records = [rec(p, "1.2.9") for p in S_FILES] + [rec(p, "1.2.7") for p in T_FILES]
    snap = _snapshot(repo, S_FILES + T_FILES, records, 1)
    point = locate_study(repo, [snap], "1.2.9")
    summary = restore_to_dir(repo, point, str(tmp_path / "out"), NullProgress())
    summary.raise_for_problems()
    restored = sorted(str(p.relative_to(tmp_path / "out"))
                      for p in (tmp_path / "out").rglob("*") if p.is_file())
    # "[1].dcm" as a glob would take "1.dcm", "x*.dcm" would take "xy.dcm": neither is
    assert restored == ["pacs/a/[1].dcm", "pacs/a/x*.dcm"]
    for path in S_FILES:
        copy = tmp_path / "out" / path.lstrip("/")
        assert copy.read_bytes() == content(path)
        assert copy.stat().st_mtime_ns == MTIME
    assert summary.files_verified == 2 and summary.verify_failures == []


def test_a_catalogued_file_the_snapshot_lacks_is_an_error(repo: Repository,
                                                          tmp_path: Path) -> None:
    ghost = rec("/pacs/gone/1.dcm", "1.2.9")
    snap = _snapshot(repo, S_FILES, [rec(p, "1.2.9") for p in S_FILES] + [ghost], 1)
    point = locate_study(repo, [snap], "1.2.9")
    summary = restore_to_dir(repo, point, str(tmp_path / "out"), NullProgress())
    assert summary.errors == ["/pacs/gone/1.dcm: in the DICOM catalog but not in the "
                              "snapshot"]
    with pytest.raises(RepositoryCorrupt, match="1 error"):
        summary.raise_for_problems()
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.dcm")) == ["[1].dcm",
                                                                         "x*.dcm"]


def test_instances_are_read_whole_and_checked(repo: Repository) -> None:
    snap = _snapshot(repo, T_FILES, [rec(p, "1.2.7") for p in T_FILES], 1)
    files = SnapshotFiles(repo, snap.tree)
    for path in T_FILES:
        assert read_instance(repo, files, rec(path, "1.2.7")) == content(path)
    with pytest.raises(ObjectNotFound, match="not a file in the snapshot"):
        read_instance(repo, files, rec("/pacs/a", "1.2.7"))
    with pytest.raises(ObjectNotFound):
        read_instance(repo, files, rec("/pacs/zz/1.dcm", "1.2.7"))
    # a node whose size disagrees with its blobs
    node = files.node(T_FILES[0])
    assert node is not None
    node.size += 1
    with pytest.raises(IntegrityError, match="bytes read, the snapshot says"):
        read_instance(repo, files, rec(T_FILES[0], "1.2.7"))


def test_exact_paths_take_no_pattern() -> None:
    paths = ExactPaths(["/pacs/a/[1].dcm"])
    assert paths.selective and not paths.excluded(("pacs",))
    assert paths.may_include_below(("pacs",)) and paths.may_include_below(("pacs", "a"))
    assert not paths.may_include_below(("pacs", "b"))
    assert not paths.included(("pacs", "a", "1.dcm"))
    assert paths.included(("pacs", "a", "[1].dcm"))
    assert paths.missing() == []
    assert ExactPaths(["/x/y"]).missing() == ["/x/y"]
