"""The DICOM catalog's stored form and queries (engine/dicom_catalog.py, dicom_query.py)
on a real local repository: records round-trip sorted, an unchanged catalog is stored
once, a damaged one is reported, find decodes each distinct catalog once across many
snapshots, and studies_in gives restore its instances."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medark.engine.dicom_catalog import (
    InstanceRecord,
    decode_records,
    encode_records,
    load_records,
    save_catalog,
)
from medark.engine.dicom_query import DicomFilter, date_range, find, studies_in
from medark.errors import RepositoryCorrupt, UsageError
from medark.repo.compression import CompressionSpec
from medark.repo.crypto import DEFAULT_SUITE
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.storage.local import LocalBackend


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


def test_an_unchanged_catalog_is_stored_once(repo: Repository) -> None:
    records = [rec(n, s) for s in range(20) for n in range(50)]
    tree, size, stored = save_catalog(repo, repo.config.chunker, records)
    repo.flush()
    added = repo.stats.plain_added
    again, _, stored_again = save_catalog(repo, repo.config.chunker, list(reversed(records)))
    repo.flush()
    assert again == tree and repo.stats.plain_added == added
    assert stored > 0 and stored_again == 0
    assert load_records(repo, tree) == sorted(records, key=lambda r: r.path)
    assert size == len(encode_records(records))


def _snapshot(repo: Repository, records: list[InstanceRecord], n: int) -> Snapshot:
    tree, _size, _stored = save_catalog(repo, repo.config.chunker, records)
    snap = Snapshot(time=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=n),
                    tree=save_tree(repo, []), paths=["/pacs"], hostname="pacs1",
                    dicom_catalog={"version": 1, "instances": len(records),
                                   "malformed": 0, "tree": tree.hex()})
    repo.flush()
    save_snapshot(repo, snap)
    return snap


def test_find_across_snapshots_decodes_each_catalog_once(repo: Repository) -> None:
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
