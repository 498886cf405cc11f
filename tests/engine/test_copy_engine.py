"""Copy through the Python API: the id map is a hint that a prune of the destination
cannot turn into a snapshot with missing data."""

from __future__ import annotations

import random
from pathlib import Path

from medark.engine.copy import Copier
from medark.engine.copy_map import CopyMap
from medark.engine.prune import PruneOptions, prune
from medark.repo.compression import parse_compression
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import SNAPSHOTS_PREFIX, all_snapshots, save_snapshot, save_tree, walk
from medark.storage.local import LocalBackend
from medark.util import clock

PASSWORD = b"pw"


def _repo(root: Path, suite: str) -> Repository:
    return Repository.init(LocalBackend(root / "repo"), PASSWORD, suite,
                           parse_compression("zstd:3"), root / "cache")


def _snapshot(repo: Repository, seed: int) -> Snapshot:
    rng = random.Random(seed)
    files = []
    for i in range(3):
        data = rng.randbytes(50_000)
        blob = repo.save_blob(BlobType.DATA, data).id
        files.append(Node(name=f"f{i}", type="file", size=len(data), content=[blob]))
    sub = save_tree(repo, files)
    root = save_tree(repo, [Node(name="dir", type="dir", subtree=sub)])
    repo.flush()
    snap = Snapshot(time=clock.now(), tree=root, paths=["/data"], hostname="his")
    save_snapshot(repo, snap)
    return snap


def _readable(repo: Repository, snap: Snapshot) -> int:
    read = 0
    for _path, node in walk(repo, snap.tree):
        for blob in node.content:
            read += len(repo.load_blob(blob))
    return read


def test_trees_are_copied_again_after_the_destination_was_pruned(tmp_path: Path) -> None:
    src, dst = _repo(tmp_path / "a", "aes-256-gcm"), _repo(tmp_path / "b", "sm4-gcm")
    snap = _snapshot(src, 1)
    idmap = CopyMap(tmp_path / "map.sqlite")
    copier = Copier(src, dst, idmap)
    copier.copy_snapshots([snap])
    copier.finish()
    copier.close()
    # the copy is forgotten and pruned at the destination; the map still names its trees
    for name in dst.list_names(SNAPSHOTS_PREFIX):
        dst.remove_object(name)
    prune(dst, PruneOptions(max_unused=0.0), work_dir=tmp_path / "work")
    dst.sync_index()
    assert idmap.tree(snap.tree) is not None

    copier = Copier(src, dst, idmap)
    assert idmap.tree(snap.tree) is None  # the prune replaced index files: trees forgotten
    copied = copier.copy_snapshots([snap])
    stats = copier.finish()
    copier.close()
    assert len(copied) == 1 and stats.blobs.copied == 3
    assert _readable(dst, all_snapshots(dst)[0]) == 150_000


def test_the_map_forgets_trees_only_when_an_index_file_disappears(tmp_path: Path) -> None:
    idmap = CopyMap(None)
    idmap.add_tree(b"s" * 32, b"d" * 32)
    idmap.add_blobs([(b"a" * 32, b"b" * 32)])
    assert idmap.revalidate({"index/1", "index/2"}) is False
    assert idmap.revalidate({"index/1", "index/2", "index/3"}) is False
    assert idmap.tree(b"s" * 32) == b"d" * 32
    assert idmap.revalidate({"index/3", "index/4"}) is True  # 1 and 2 replaced: a prune
    assert idmap.tree(b"s" * 32) is None
    assert idmap.blobs([b"a" * 32]) == {b"a" * 32: b"b" * 32}  # checked one by one anyway
