"""The check engine against real repositories in memory, damaged in every way we know."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from medark.engine.check import (
    ALL_DATA,
    Checker,
    CheckOptions,
    CheckResult,
    DataSubset,
    Problem,
    parse_subset,
)
from medark.errors import UsageError
from medark.repo.compression import CompressionSpec
from medark.repo.crypto import content_name
from medark.repo.pack import BlobType, PackBuilder, pack_name
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.storage.mem import MemoryBackend
from medark.util import clock
from medark.util.progress import NullProgress

PASSWORD = b"secret"


@dataclass
class Recorder:
    phases: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def phase(self, title: str) -> NullProgress:
        self.phases.append(title)
        return NullProgress()

    def problem(self, problem: Problem) -> None:
        self.problems.append(problem)


@dataclass
class Fixture:
    backend: MemoryBackend
    repo: Repository
    snapshots: list[Snapshot]
    blobs: dict[str, bytes]
    """File path -> id of its (single) content blob."""


def _file(repo: Repository, name: str, data: bytes) -> Node:
    blob = repo.save_blob(BlobType.DATA, data).id
    return Node(name=name, type="file", mode=0o100644, size=len(data), content=[blob])


def _dir(repo: Repository, name: str, nodes: list[Node]) -> Node:
    return Node(name=name, type="dir", mode=0o40755, subtree=save_tree(repo, nodes))


def _snapshot(repo: Repository, root: list[Node]) -> Snapshot:
    repo.flush()  # packs and index before the snapshot (the write order)
    snap = Snapshot(time=clock.now(), tree=save_tree(repo, root), paths=["/data"],
                    hostname="test")
    repo.flush()
    save_snapshot(repo, snap)
    return snap


@pytest.fixture
def fx() -> Iterator[Fixture]:
    backend = MemoryBackend()
    repo = Repository.init(backend, PASSWORD, "aes-256-gcm", CompressionSpec("zstd", 1))
    scan = os.urandom(50_000)
    report = b"report " * 2000
    first = _snapshot(repo, [_dir(repo, "data", [
        _file(repo, "scan.dcm", scan),
        _dir(repo, "reports", [_file(repo, "r1.txt", report)]),
    ])])
    # The second snapshot shares scan.dcm under another name, and adds a file.
    second = _snapshot(repo, [_dir(repo, "data", [
        _file(repo, "copy.dcm", scan),
        _file(repo, "new.bin", os.urandom(20_000)),
    ])])
    blobs = {
        "/data/scan.dcm": repo.crypto.blob_id(scan),
        "/data/reports/r1.txt": repo.crypto.blob_id(report),
    }
    yield Fixture(backend, repo, [first, second], blobs)
    repo.close()


def run_check(fx: Fixture, subset: DataSubset | None = None,
              tmp: Path | None = None) -> tuple[CheckResult, Recorder]:
    rec = Recorder()
    result = Checker(fx.repo, CheckOptions(read_data=subset, workers=2), rec, tmp).run()
    return result, rec


def pack_of(fx: Fixture, blob_id: bytes) -> str:
    pack_id, _entry = fx.repo.locate(blob_id)
    return pack_name(pack_id.hex())


def flip(fx: Fixture, name: str, offset: int) -> None:
    data = bytearray(fx.backend.objects[name])
    data[offset % len(data)] ^= 0x10
    fx.backend.objects[name] = bytes(data)


def names(fx: Fixture, prefix: str) -> list[str]:
    return sorted(n for n in fx.backend.objects if n.startswith(prefix))


# ---- a healthy repository ---------------------------------------------------------------


def test_healthy_repository_passes(fx: Fixture) -> None:
    result, rec = run_check(fx)
    assert result.ok and result.errors == [] and result.notes == []
    assert rec.phases == ["check config and keys", "load indexes", "check all packs",
                          "check snapshots, trees and blobs"]
    s = result.stats
    assert (s.snapshots, s.index_files, s.packs_read) == (2, len(names(fx, "index/")), 0)
    assert s.packs == len(names(fx, "data/"))
    assert s.trees == 5  # two roots, two /data, one /data/reports
    summary = result.summary()
    assert summary["message_type"] == "summary" and summary["num_errors"] == 0


def test_read_data_reads_every_pack(fx: Fixture) -> None:
    result, rec = run_check(fx, ALL_DATA)
    assert result.ok
    assert rec.phases[-1] == "read all data"
    assert result.stats.packs_read == len(names(fx, "data/"))
    assert result.stats.bytes_read == sum(len(fx.backend.objects[n]) for n in names(fx, "data/"))


def test_check_writes_nothing(fx: Fixture, tmp_path: Path) -> None:
    before = dict(fx.backend.objects)
    flip(fx, pack_of(fx, fx.blobs["/data/scan.dcm"]), 100)
    damaged = dict(fx.backend.objects)
    run_check(fx, ALL_DATA, tmp_path / "work")
    assert fx.backend.objects == damaged != before
    assert list((tmp_path / "work").iterdir()) == []  # the scratch database is gone


# ---- damage in packs ------------------------------------------------------------------------


def test_flipped_bit_in_a_blob_names_pack_blob_snapshots_and_paths(fx: Fixture) -> None:
    blob = fx.blobs["/data/scan.dcm"]
    pack_id, entry = fx.repo.locate(blob)
    flip(fx, pack_name(pack_id.hex()), entry.offset + entry.length // 2)

    structure, _ = run_check(fx)
    assert structure.ok  # only the data changed: the header still agrees with the index

    result, _ = run_check(fx, ALL_DATA)
    assert not result.ok
    assert result.broken_packs == [pack_id.hex()]
    places = {(d.pack, d.blob, d.snapshot, d.path) for d in result.damaged}
    first, second = (s.short_id for s in fx.snapshots)
    assert places == {
        (pack_id.hex(), blob.hex(), first, "/data/scan.dcm"),
        (pack_id.hex(), blob.hex(), second, "/data/copy.dcm"),
    }
    messages = " ".join(p.message for p in result.errors)
    assert blob.hex() in messages and "SHA-256" in messages


def test_flipped_bit_in_a_tree_blob(fx: Fixture) -> None:
    tree_id = fx.snapshots[0].tree
    pack_id, entry = fx.repo.locate(tree_id)
    flip(fx, pack_name(pack_id.hex()), entry.offset + 40)
    result, _ = run_check(fx)  # walking the trees finds it without --read-data
    assert not result.ok
    assert any(p.kind == "tree" and p.object == tree_id.hex() for p in result.errors)
    assert (fx.snapshots[0].short_id, "/") in {(d.snapshot, d.path) for d in result.damaged}


def test_damaged_pack_header_is_found_from_the_tail(fx: Fixture) -> None:
    pack = pack_of(fx, fx.blobs["/data/scan.dcm"])
    flip(fx, pack, len(fx.backend.objects[pack]) - 10)
    result, _ = run_check(fx)
    assert any(p.object == pack and "header" in p.message for p in result.errors)
    # Only the tail was read: every blob of the pack is reported at risk, with its files.
    assert "/data/scan.dcm" in {d.path for d in result.damaged}

    result, _ = run_check(fx, ALL_DATA)  # reading it all shows the blobs are intact
    assert result.broken_packs == [pack.rsplit("/", 1)[-1]]
    assert result.damaged == []


def test_missing_pack(fx: Fixture) -> None:
    pack = pack_of(fx, fx.blobs["/data/reports/r1.txt"])
    del fx.backend.objects[pack]
    result, _ = run_check(fx, ALL_DATA)
    assert any(p.object == pack and "missing" in p.message for p in result.errors)
    assert "/data/reports/r1.txt" in {d.path for d in result.damaged}


def test_truncated_pack_has_the_wrong_size(fx: Fixture) -> None:
    pack = pack_of(fx, fx.blobs["/data/scan.dcm"])
    fx.backend.objects[pack] = fx.backend.objects[pack][:-1]
    result, _ = run_check(fx)
    assert any(p.object == pack and "the index implies" in p.message for p in result.errors)


def test_unreferenced_pack_is_a_note_not_an_error(fx: Fixture) -> None:
    builder = PackBuilder()
    sealed = fx.repo.crypto.seal(b"orphan")
    builder.add(BlobType.DATA, fx.repo.crypto.blob_id(b"orphan"), sealed, 0)
    data = builder.finish(fx.repo.crypto)
    fx.backend.save(pack_name(content_name(data)), data)  # a backup died before its index
    fx.backend.save("data/zz/not-a-pack", b"junk")
    result, _ = run_check(fx, ALL_DATA)
    assert result.ok
    assert result.unreferenced_packs == [content_name(data)]
    assert result.summary()["suggest_prune"] is True
    assert any("prune" in n.message for n in result.notes)
    assert any(n.object == "data/zz/not-a-pack" for n in result.notes)


# ---- damage in metadata -----------------------------------------------------------------------


def test_damaged_index_file(fx: Fixture) -> None:
    index = names(fx, "index/")[0]
    flip(fx, index, 60)
    result, _ = run_check(fx)
    assert [p.object for p in result.errors if p.kind == "index"] == [index]
    # Its packs are now unindexed: found by their headers, never suggested for prune.
    assert result.unreferenced_packs
    assert result.summary()["suggest_prune"] is False
    assert any("do not prune" in n.message for n in result.notes)
    assert any(d.pack is None and d.path for d in result.damaged)


def test_damaged_snapshot(fx: Fixture) -> None:
    name = "snapshots/" + fx.snapshots[1].id
    flip(fx, name, 3)
    result, _ = run_check(fx)
    assert [(p.kind, p.object) for p in result.errors] == [("snapshot", name)]
    assert result.stats.snapshots == 1


def test_damaged_key_file(fx: Fixture) -> None:
    other = fx.repo.keys().add(fx.repo.crypto.suite, fx.repo.crypto.master_key, b"other")
    flip(fx, "keys/" + other, 20)
    result, _ = run_check(fx)
    assert [(p.kind, p.object) for p in result.errors] == [("key", "keys/" + other)]


def test_damaged_config(fx: Fixture) -> None:
    flip(fx, "config", 50)
    result, _ = run_check(fx)
    assert [p.kind for p in result.errors] == ["config"]


def test_blob_missing_from_every_index(fx: Fixture) -> None:
    data = os.urandom(1000)
    ghost = fx.repo.crypto.blob_id(data)
    node = Node(name="ghost.bin", type="file", size=1000, content=[ghost])
    snap = _snapshot(fx.repo, [_dir(fx.repo, "data", [node])])
    result, _ = run_check(fx)
    assert any("/data/ghost.bin" in p.message and "not in the index" in p.message
               for p in result.errors)
    assert (None, ghost.hex(), snap.short_id, "/data/ghost.bin") in {
        (d.pack, d.blob, d.snapshot, d.path) for d in result.damaged}


# ---- subsets -------------------------------------------------------------------------------


def test_parse_subset() -> None:
    assert parse_subset("10%").percent == 10
    assert (parse_subset("2/5").n, parse_subset("2/5").t) == (2, 5)
    for bad in ("0%", "101%", "x%", "0/3", "4/3", "1/0", "abc", "1/"):
        with pytest.raises(UsageError):
            parse_subset(bad)


def test_groups_partition_the_packs(fx: Fixture) -> None:
    total = len(names(fx, "data/"))
    read = [run_check(fx, DataSubset(n=n, t=3))[0].stats.packs_read for n in (1, 2, 3)]
    assert sum(read) == total


def test_percent_subset_reads_at_least_one_pack(fx: Fixture) -> None:
    result, rec = run_check(fx, parse_subset("1%"))
    assert result.ok and result.stats.packs_read == 1
    assert rec.phases[-1] == "read 1% of data packs"
