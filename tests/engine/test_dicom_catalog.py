"""The DICOM catalog's stored form and queries (engine/dicom_catalog.py, dicom_query.py)
on a real local repository: records round-trip sorted, an unchanged catalog is stored
once, a damaged one is reported, find decodes each distinct segment once across many
snapshots, and studies_in gives restore its instances; version 1 catalogs (one segment)
are still read. The per-directory segments as real backups build them: an unchanged
directory's reused without being read, one changed file's directory rebuilt alone, a
deleted directory dropped."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dicom_samples import Instance, uid, write_instance

from medark.engine.backup import Backup
from medark.engine.backup_model import BackupOptions
from medark.engine.dicom_catalog import (
    CatalogBuilder,
    InstanceRecord,
    catalog_doc,
    decode_records,
    decode_segment,
    encode_records,
    encode_segment,
    save_catalog,
    save_records,
    snapshot_records,
)
from medark.engine.dicom_query import DicomFilter, date_range, find, studies_in, verify
from medark.errors import RepositoryCorrupt, UsageError
from medark.repo.compression import CompressionSpec
from medark.repo.crypto import DEFAULT_SUITE
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import load_tree, save_snapshot, save_tree
from medark.storage.local import LocalBackend
from medark.util.lru import LRU
from medark.util.progress import NullProgress


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", DEFAULT_SUITE,
                        CompressionSpec("zstd", 3), cache_dir=tmp_path / "cache")
    yield r
    r.close()


def rec(n: int, study: int, series: int = 1, name: str = "张^三", date: str = "20261103",
        modality: str = "CT", patient: str = "P1") -> InstanceRecord:
    return InstanceRecord(f"/pacs/{study}/{series}/{n}", 1000 + n, patient, name,
                          f"ACC{study}", f"1.2.{study}", f"1.2.{study}.{series}",
                          f"1.2.{study}.{series}.{n}", "1.2.840.10008.5.1.4.1.1.2",
                          "1.2.840.10008.1.2.1", modality, date, "胸部CT")


def test_records_round_trip_sorted_by_path() -> None:
    records = [rec(3, 1), rec(1, 1), InstanceRecord("/pacs/bad", 40, error="header lacks x")]
    raw = encode_records(records)
    assert json.loads(raw.splitlines()[0])["format"] == "medark-dicom-catalog"
    assert decode_records(raw) == sorted(records, key=lambda r: r.path)
    assert "张^三".encode() in raw  # UTF-8, not \\u escapes: smaller before zstd


@pytest.mark.parametrize("raw", [b"", b"{}\n", b'{"format":"medark-dicom-catalog",'
                                 b'"version":9,"fields":[]}\n', b"\xff\xfe"])
def test_a_damaged_catalog_is_reported(raw: bytes) -> None:
    with pytest.raises(RepositoryCorrupt):
        decode_records(raw)
    good = encode_records([rec(1, 1)]).splitlines()
    with pytest.raises(RepositoryCorrupt):
        decode_records(good[0] + b'\n["/x", "big", "a"]\n')


def test_segments_round_trip_by_name_below_their_directory() -> None:
    records = [rec(3, 1), rec(1, 1)]
    raw = encode_segment(records)
    assert b"/pacs" not in raw  # names only: the directory is the tree's
    assert decode_segment(raw, "/pacs/1/1") == sorted(records, key=lambda r: r.path)
    head, first = raw.splitlines()[:2]
    for bad in ("", "a/b", ".."):
        line = json.dumps([bad, *json.loads(first)[1:]])
        with pytest.raises(RepositoryCorrupt):
            decode_segment(head + b"\n" + line.encode() + b"\n", "/d")


def test_an_unchanged_catalog_is_stored_once(repo: Repository) -> None:
    records = [rec(n, s) for s in range(20) for n in range(50)]
    tree, size, stored = save_records(repo, repo.config.chunker, records)
    repo.flush()
    added = repo.stats.plain_added
    again, _, stored_again = save_records(repo, repo.config.chunker, list(reversed(records)))
    repo.flush()
    assert again == tree and repo.stats.plain_added == added
    assert stored > 0 and stored_again == 0 and size > 0
    snap = Snapshot(time=datetime(2026, 12, 1, tzinfo=UTC), tree=tree or b"", paths=["/"],
                    hostname="h", dicom_catalog=catalog_doc(len(records), 0, tree))
    assert snapshot_records(repo, snap) == sorted(records, key=lambda r: r.path)


def _snapshot(repo: Repository, records: list[InstanceRecord], n: int) -> Snapshot:
    tree, _size, _stored = save_catalog(repo, repo.config.chunker, records)
    snap = Snapshot(time=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=n),
                    tree=save_tree(repo, []), paths=["/pacs"], hostname="pacs1",
                    dicom_catalog={"version": 1, "instances": len(records),
                                   "malformed": 0, "tree": tree.hex()})
    repo.flush()
    save_snapshot(repo, snap)
    return snap


def test_find_reads_version_1_catalogs_decoding_each_once(repo: Repository) -> None:
    base = [rec(n, 1) for n in range(3)] + [rec(1, 2, name="Smith^John", patient="P2",
                                                modality="MR", date="20261001")]
    more = [*base, rec(1, 3, date="20261205")]
    snaps = [_snapshot(repo, base, n) for n in range(4)] + [_snapshot(repo, more, 9)]
    result = find(repo, snaps, DicomFilter(name="张"))
    assert result.decoded == 2 and result.searched == 5
    assert [s.study_uid for s in result.studies] == ["1.2.1", "1.2.3"]
    first, third = result.studies
    assert first.snapshots == [s.id for s in snaps] and third.snapshots == [snaps[-1].id]
    assert first.instances == 3 and first.series["1.2.1.1"].size == 1000 + 1001 + 1002
    assert [s.study_uid for s in find(repo, snaps, DicomFilter(name="SMITH")).studies] == [
        "1.2.2"]
    assert find(repo, snaps, DicomFilter(modality="mr", date_from="20261001",
                                         date_to="20261001")).studies[0].patient_id == "P2"
    assert find(repo, snaps, DicomFilter(date_from="20261201")).studies[0].study_uid == \
        "1.2.3"
    assert [r.sop_uid for r in studies_in(repo, snaps[0], "1.2.1")] == [
        "1.2.1.1.0", "1.2.1.1.1", "1.2.1.1.2"]
    assert studies_in(repo, snaps[0], "1.2.1", "1.2.1.9") == []
    assert studies_in(repo, snaps[0], "1.2.3") == []


def test_date_ranges() -> None:
    assert date_range("2026-11-01..2026-11-30") == ("20261101", "20261130")
    assert date_range("20261101..") == ("20261101", None)
    assert date_range("..20261130") == (None, "20261130")
    assert date_range("20261103") == ("20261103", "20261103")
    for bad in ("2026-13-01", "yesterday", "2026110", "20261101..x"):
        with pytest.raises(UsageError):
            date_range(bad)


def test_a_snapshot_whose_catalog_is_gone_is_named_and_skipped(repo: Repository) -> None:
    """An older Medark's prune deletes the catalog's blobs: find searches the rest."""
    good = _snapshot(repo, [rec(1, 1)], 0)
    lost = Snapshot(time=good.time + timedelta(hours=1), tree=good.tree, paths=["/pacs"],
                    hostname="pacs1", dicom_catalog={"version": 1, "instances": 1,
                                                     "malformed": 0, "tree": "ab" * 32})
    save_snapshot(repo, lost)
    result = find(repo, [good, lost], DicomFilter())
    assert [s.study_uid for s in result.studies] == ["1.2.1"]
    assert list(result.unreadable) == [lost.id]


# ---- per-directory segments, as backups build them ----------------------------------

class CountingRepo:
    """The repository, counting the blobs the catalog reads (a spy, not a stand-in)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.loaded: list[bytes] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.repo, name)

    def load_blob(self, blob_id: bytes) -> bytes:
        self.loaded.append(blob_id)
        return self.repo.load_blob(blob_id)


def _instance(study: int, series: int, n: int, name: str = "张^三") -> Instance:
    return Instance(f"s{study}/{series}/{n}.dcm", f"P{study}", name, uid(study),
                    uid(study, series), uid(study, series, n), pixels=bytes(16))


def _backup(repo: Repository, root: Path) -> tuple[Snapshot, CountingRepo]:
    spy = CountingRepo(repo)
    builder = CatalogBuilder(spy, repo.config.chunker, repo.flush)  # type: ignore[arg-type]
    result = Backup(repo, BackupOptions(paths=[str(root)], host="pacs1", workers=2,
                                        observer=builder), NullProgress()).run()
    return result.snapshot, spy


def _catalog_dirs(repo: Repository, snap: Snapshot) -> dict[str, Node]:
    """Every catalog directory node by path."""
    out: dict[str, Node] = {}
    stack = [("", snap.catalog_tree)]
    while stack:
        path, tree = stack.pop()
        assert tree is not None
        for node in load_tree(repo, tree):
            if node.type == "dir":
                out[f"{path}/{node.name}"] = node
                stack.append((f"{path}/{node.name}", node.subtree))
    return out


def test_segments_reused_rebuilt_and_dropped_by_directory(repo: Repository,
                                                          tmp_path: Path) -> None:
    root = tmp_path / "pacs"
    for study in (1, 2, 3):
        for n in range(3):
            write_instance(root, _instance(study, 1, n))
    (root / "s1" / "1" / "notes.txt").write_text("not DICOM")
    first, _spy = _backup(repo, root)
    assert first.dicom_catalog["instances"] == 9 and first.summary["dicom"]["parsed"] == 9
    before = _catalog_dirs(repo, first)
    pacs = str(root)
    assert before[pacs].size == 9 and before[f"{pacs}/s2"].size == 3

    quiet, spy = _backup(repo, root)
    assert quiet.dicom_catalog == first.dicom_catalog  # the same tree id
    assert quiet.summary["dicom"]["carried"] == 9 and quiet.summary["dicom"]["parsed"] == 0
    assert quiet.summary["dicom"]["catalog_stored"] == 0
    segments = {c for n in before.values() for c in load_tree(repo, n.subtree or b"")
                for c in c.content}
    assert not segments & set(spy.loaded)  # nothing decoded: every directory reused

    changed = _instance(2, 1, 1, name="王^五")
    path = write_instance(root, changed)
    os.utime(path, (1e9, 1e9))
    third, spy = _backup(repo, root)
    after = _catalog_dirs(repo, third)
    assert third.summary["dicom"]["parsed"] == 1 and third.summary["dicom"]["carried"] == 8
    assert after[f"{pacs}/s1"] == before[f"{pacs}/s1"]
    assert after[f"{pacs}/s3"] == before[f"{pacs}/s3"]
    assert after[f"{pacs}/s2/1"].subtree != before[f"{pacs}/s2/1"].subtree
    assert {r.patient_name for r in studies_in(repo, third, uid(2))} == {"张^三", "王^五"}
    own_s1 = [c for c in load_tree(repo, before[f"{pacs}/s1/1"].subtree or b"")
              for c in c.content]
    assert not set(own_s1) & set(spy.loaded)  # only s2/1's segment was read

    shutil.rmtree(root / "s3")
    fourth, _spy = _backup(repo, root)
    dropped = _catalog_dirs(repo, fourth)
    assert f"{pacs}/s3" not in dropped and dropped[pacs].size == 6
    assert fourth.dicom_catalog["instances"] == 6
    assert studies_in(repo, fourth, uid(3)) == [] and len(studies_in(repo, third, uid(3))) == 3
    snaps = [first, quiet, third, fourth]
    result = find(repo, snaps, DicomFilter(patient_id="P3"))
    assert [h.snapshots for h in result.studies] == [[first.id, quiet.id, third.id]]
    assert result.decoded == 4  # the first's 3 segments, then only s2/1's new one
    assert verify(repo, third).mismatches == [] and verify(repo, third).checked == 9


def test_a_version_1_parent_is_carried_into_version_2(repo: Repository,
                                                      tmp_path: Path) -> None:
    """A snapshot written before the per-directory catalog: the next backup carries its
    records over (no header read again) and writes version 2."""
    root = tmp_path / "pacs"
    for n in range(4):
        write_instance(root, _instance(7, n % 2, n))
    made, _spy = _backup(repo, root)
    records = snapshot_records(repo, made)
    tree, _size, _stored = save_catalog(repo, repo.config.chunker, records)
    repo.flush()
    old = Snapshot(time=made.time, tree=made.tree, paths=made.paths, hostname="pacs1",
                   dicom_catalog={"version": 1, "instances": 4, "malformed": 0,
                                  "tree": tree.hex()})
    save_snapshot(repo, old)
    assert snapshot_records(repo, old) == records
    spy = CountingRepo(repo)
    builder = CatalogBuilder(spy, repo.config.chunker, repo.flush)  # type: ignore[arg-type]
    new = Backup(repo, BackupOptions(paths=[str(root)], host="pacs1", parent=old.id,
                                     observer=builder), NullProgress()).run().snapshot
    assert new.dicom_catalog == made.dicom_catalog  # version 2, the same tree
    assert (new.summary["dicom"]["parsed"], new.summary["dicom"]["carried"]) == (0, 4)
    assert snapshot_records(repo, new) == records


def test_the_readers_cache_is_bounded_by_entries_and_by_records() -> None:
    by_count: LRU[str, list[int]] = LRU(2)
    for key in "abc":
        by_count.put(key, [1])
    assert by_count.get("a") is None and by_count.get("c") == [1]
    by_weight: LRU[str, list[int]] = LRU(10, len, budget=5)
    by_weight.put("a", [1, 2, 3])
    by_weight.put("b", [1, 2])
    assert by_weight.get("a") == [1, 2, 3]  # 5 in all: both kept, "a" now the newest
    by_weight.put("c", [1])
    assert by_weight.get("b") is None and by_weight.get("a") == [1, 2, 3]
    by_weight.put("huge", list(range(50)))  # over the budget alone: kept, the rest go
    assert by_weight.get("huge") is not None and by_weight.get("a") is None
