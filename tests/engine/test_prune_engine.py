"""Prune through the Python API: what is kept, removed and repacked, and crash safety."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medark.engine.prune import (
    PruneOptions,
    delete_old_index,
    prune,
    repack,
    write_index,
)
from medark.engine.prune_plan import Action, parse_max_unused, plan_prune
from medark.errors import BackendError, RepositoryCorrupt, UsageError
from medark.repo import index_file
from medark.repo.compression import parse_compression
from medark.repo.crypto import content_name
from medark.repo.pack import DATA_PREFIX, BlobType, PackBuilder, pack_name, parse_header
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import (
    SNAPSHOTS_PREFIX,
    all_snapshots,
    load_tree,
    save_snapshot,
    save_tree,
    walk,
)
from medark.storage.local import LocalBackend
from medark.storage.wrappers.faulty import FaultyBackend

PASSWORD = b"correct horse battery staple"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def payload(seed: int, size: int = 40_000) -> bytes:
    return random.Random(seed).randbytes(size)


class Repo:
    """A repository on disk, reopened with a fresh cache whenever asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._opened = 0
        self.repo = Repository.init(LocalBackend(root / "repo"), PASSWORD, "aes-256-gcm",
                                    parse_compression("zstd:3"), root / "cache")

    def reopen(self, fresh_cache: bool = False) -> Repository:
        self.repo.close()
        self._opened += 1
        cache = self.root / (f"cache{self._opened}" if fresh_cache else "cache")
        self.repo = Repository.open(LocalBackend(self.root / "repo"), PASSWORD, cache)
        return self.repo

    def add(self, *groups: dict[str, bytes], tag: str = "") -> list[Snapshot]:
        """One snapshot per group of files; all of their blobs share one flush (so the
        data of several snapshots can share a pack)."""
        roots = []
        for files in groups:
            nodes = []
            for name, data in sorted(files.items()):
                blob = self.repo.save_blob(BlobType.DATA, data).id
                nodes.append(Node(name=name, type="file", size=len(data), content=[blob]))
            sub = save_tree(self.repo, nodes)
            roots.append(save_tree(self.repo, [Node(name="data", type="dir", subtree=sub)]))
        self.repo.flush()
        snaps = []
        for root in roots:
            snap = Snapshot(time=T0 + timedelta(minutes=len(self.files("snapshots/"))),
                            tree=root, paths=["/data"], hostname="h",
                            tags=[tag] if tag else [])
            save_snapshot(self.repo, snap)
            snaps.append(snap)
        return snaps

    def forget(self, snap: Snapshot) -> None:
        self.repo.backend.remove(SNAPSHOTS_PREFIX + snap.id)

    def files(self, prefix: str = "") -> dict[str, int]:
        return {i.name: i.size for i in self.repo.backend.list(prefix)}

    def size(self) -> int:
        return sum(self.files().values())


@pytest.fixture
def r(tmp_path: Path) -> Iterator[Repo]:
    repo = Repo(tmp_path)
    yield repo
    repo.repo.close()


def verify(r: Repo, unreferenced_ok: bool = False) -> dict[str, bytes]:
    """Reopen with a fresh cache; every snapshot's every blob loads and verifies; every
    indexed pack exists and its header matches the index. Returns path -> content."""
    repo = r.reopen(fresh_cache=True)
    contents: dict[str, bytes] = {}
    for snap in all_snapshots(repo):
        for path, node in walk(repo, snap.tree):
            if node.type == "file":
                contents[f"{snap.short_id}{path}"] = b"".join(
                    repo.load_blob(c) for c in node.content)
    indexed: set[bytes] = set()
    for name in repo.index_names():
        for pack_id, blobs in index_file.iter_packs(repo.read_index_file(name)):
            indexed.add(pack_id)
            data = repo.backend.load(pack_name(pack_id.hex()))
            assert content_name(data) == pack_id.hex()
            header = parse_header(repo.crypto, data, len(data))
            assert sorted(header, key=lambda b: b.offset) == sorted(blobs, key=lambda b: b.offset)
    stored = {bytes.fromhex(n.rsplit("/", 1)[-1]) for n in r.files(DATA_PREFIX)}
    assert indexed <= stored
    if not unreferenced_ok:
        assert stored == indexed, "no pack is left that no index names"
    return contents


def test_parse_max_unused() -> None:
    assert parse_max_unused("5%") == 5.0
    assert parse_max_unused("0%") == 0.0
    assert parse_max_unused("unlimited") == 100.0
    for bad in ("5", "x%", "120%", "-1%"):
        with pytest.raises(UsageError):
            parse_max_unused(bad)


def test_nothing_to_do_changes_nothing(r: Repo) -> None:
    r.add({"a": payload(1)})
    r.add({"b": payload(2)})
    before = r.files()
    stats = prune(r.repo, PruneOptions(), work_dir=r.root / "work")
    assert r.files() == before
    assert stats.packs_removed == stats.packs_repacked == stats.index_files_written == 0
    assert stats.blobs_unused == 0 and stats.bytes_freed == 0
    assert stats.snapshots == 2
    assert not list((r.root / "work").iterdir()), "the working database is cleaned up"


def test_forgotten_snapshot_packs_are_removed(r: Repo) -> None:
    (old,) = r.add({"a": payload(1)})
    (new,) = r.add({"b": payload(2)})
    before = verify(r)
    r.forget(old)
    size = r.size()
    data_size = sum(r.files(DATA_PREFIX).values())
    stats = prune(r.repo, PruneOptions())
    assert stats.packs_removed == 2  # old snapshot's data pack and tree pack
    assert stats.blobs_removed == 3  # blob a and its two trees
    assert stats.packs_deleted == 2
    assert data_size - sum(r.files(DATA_PREFIX).values()) == stats.bytes_freed
    assert stats.packs_repacked == 0 and stats.index_files_removed == 2
    assert r.size() < size
    assert stats.bytes_freed > 40_000
    after = verify(r)
    assert after == {k: v for k, v in before.items() if k.startswith(new.short_id)}


def test_dry_run_changes_nothing(r: Repo) -> None:
    (old,) = r.add({"a": payload(1)})
    r.add({"b": payload(2)})
    r.forget(old)
    before = r.files()
    stats = prune(r.repo, PruneOptions(dry_run=True))
    assert stats.dry_run and stats.packs_removed == 2 and stats.bytes_freed > 0
    assert r.files() == before


def test_partly_used_pack_is_repacked_beyond_max_unused(r: Repo) -> None:
    keep, drop = r.add({"k": payload(1)}, {"d": payload(2, 60_000)})
    r.forget(drop)
    plan = plan_prune(r.repo, max_unused=0.0)
    try:
        actions = sorted(p.action.value for p in plan.packs)
        assert actions == ["repack", "repack"]  # one data pack, one tree pack
    finally:
        plan.close()
    data_size = sum(r.files(DATA_PREFIX).values())
    dry = prune(r.repo, PruneOptions(max_unused=0.0, dry_run=True))
    stats = prune(r.repo, PruneOptions(max_unused=0.0))
    assert stats.packs_repacked == 2 and stats.packs_written == 2 and stats.packs_deleted == 2
    assert stats.blobs_repacked == 3  # the kept file's blob and its two trees
    assert stats.blobs_removed == 3 and stats.bytes_removed == dry.bytes_removed
    assert stats.bytes_unused_after == 0
    assert data_size - sum(r.files(DATA_PREFIX).values()) == stats.bytes_freed
    assert abs(dry.bytes_freed - stats.bytes_freed) < 1000  # the estimate is close
    assert verify(r) == {f"{keep.short_id}/data/k": payload(1)}


def test_partly_used_data_pack_is_kept_within_max_unused(r: Repo) -> None:
    keep, drop = r.add({"k": payload(1, 100_000)}, {"d": payload(2, 3_000)})
    r.forget(drop)
    stats = prune(r.repo, PruneOptions(max_unused=10.0))
    # the data pack is 3% unused: kept; the tree pack is repacked anyway (restic's rule)
    assert stats.packs_kept == 1 and stats.packs_repacked == 1
    assert stats.bytes_unused_after > 0
    assert verify(r) == {f"{keep.short_id}/data/k": payload(1, 100_000)}
    again = prune(r.repo, PruneOptions(max_unused=10.0))
    assert again.packs_repacked == 0 and again.index_files_written == 0


def test_unreferenced_pack_is_removed(r: Repo) -> None:
    r.add({"a": payload(1)})
    builder = PackBuilder()
    builder.add(BlobType.DATA, b"\x01" * 32, r.repo.crypto.seal(b"orphan"), 0)
    data = builder.finish(r.repo.crypto)
    orphan = pack_name(content_name(data))
    r.repo.backend.save(orphan, data)
    r.repo.backend.save("data/zz/not-a-pack", b"x")  # foreign name: left alone
    stats = prune(r.repo, PruneOptions())
    assert stats.packs_unreferenced == 1 and stats.bytes_unreferenced == len(data)
    assert orphan not in r.files()
    assert "data/zz/not-a-pack" in r.files()
    r.repo.backend.remove("data/zz/not-a-pack")
    verify(r)


def test_missing_pack_with_used_blobs_refuses(r: Repo) -> None:
    (_snap,) = r.add({"a": payload(1)})
    data_pack = next(n for n, size in r.files(DATA_PREFIX).items() if size > 40_000)
    r.repo.backend.remove(data_pack)
    before = r.files()
    with pytest.raises(RepositoryCorrupt, match="prune changed nothing"):
        prune(r.repo, PruneOptions())
    assert r.files() == before


def test_missing_pack_without_used_blobs_is_dropped_from_the_index(r: Repo) -> None:
    (old,) = r.add({"a": payload(1)})
    (new,) = r.add({"b": payload(2)})
    r.forget(old)
    plan = plan_prune(r.repo)
    doomed = [p.id for p in plan.packs if p.action is Action.REMOVE]
    plan.close()
    r.repo.backend.remove(pack_name(doomed[0].hex()))
    stats = prune(r.repo, PruneOptions())
    assert stats.packs_missing == 1 and stats.packs_removed == 1
    assert verify(r) == {f"{new.short_id}/data/b": payload(2)}


def test_broken_tree_refuses(r: Repo) -> None:
    (snap,) = r.add({"a": payload(1)})
    tree_pack = next(n for n, size in r.files(DATA_PREFIX).items() if size < 40_000)
    r.repo.backend.remove(tree_pack)
    with pytest.raises(RepositoryCorrupt, match=f"snapshot {snap.short_id}"):
        prune(r.repo, PruneOptions())


def test_corrupt_blob_stops_repack_before_anything_is_deleted(r: Repo) -> None:
    _keep, drop = r.add({"k": payload(1)}, {"d": payload(2)})
    r.forget(drop)
    data_pack = next(n for n, size in r.files(DATA_PREFIX).items() if size > 40_000)
    path = r.root / "repo" / data_pack
    raw = bytearray(path.read_bytes())
    # flip a byte inside the kept blob ("k" sorts first, so it starts the pack)
    raw[100] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    index_before = r.files("index/")
    with pytest.raises(RepositoryCorrupt, match="prune stopped before deleting anything"):
        prune(r.repo, PruneOptions(max_unused=0.0))
    assert r.files("index/") == index_before
    assert data_pack in r.files()


def test_duplicate_blob_is_copied_once(r: Repo) -> None:
    shared = payload(7)
    # a second writer, opened before the first stores the blob, stores it again
    # (two concurrent backups of the same file)
    other = Repository.open(LocalBackend(r.root / "repo"), PASSWORD, r.root / "other-cache")
    (a,) = r.add({"shared": shared})
    try:
        nodes = [Node(name="shared", type="file", size=len(shared),
                      content=[other.save_blob(BlobType.DATA, shared).id]),
                 Node(name="x", type="file", size=10,
                      content=[other.save_blob(BlobType.DATA, payload(8, 50_000)).id])]
        sub = save_tree(other, nodes)
        root = save_tree(other, [Node(name="data", type="dir", subtree=sub)])
        other.flush()
        b = Snapshot(time=T0 + timedelta(hours=1), tree=root, paths=["/data"], hostname="h2")
        save_snapshot(other, b)
    finally:
        other.close()
    repo = r.reopen()
    # forget nothing: the duplicate is reported, every pack is fully used and kept
    stats = prune(repo, PruneOptions())
    assert stats.blobs_duplicate == 1 and stats.packs_repacked == 0
    # forget b: its data pack holds the duplicate (used via a) and x (unused)
    r.forget(b)
    stats = prune(repo, PruneOptions(max_unused=0.0))
    assert stats.blobs_repacked == 0, "the duplicate already lives in a kept pack"
    assert stats.blobs_duplicate == 1
    assert verify(r) == {f"{a.short_id}/data/shared": shared}
    assert prune(r.repo, PruneOptions()).blobs_duplicate == 0


def test_prune_rebuilds_the_index_cache(r: Repo) -> None:
    (old,) = r.add({"a": payload(1)})
    (new,) = r.add({"b": payload(2)})
    r.forget(old)
    prune(r.repo, PruneOptions())
    repo = r.repo
    assert repo.cache.known_index_files() == repo.index_names()
    assert repo.cache.pack_ids() == {bytes.fromhex(n.rsplit("/", 1)[-1])
                                     for n in r.files(DATA_PREFIX)}
    tree = load_tree(repo, new.tree)
    assert tree[0].name == "data"
    # another process whose cache still knows the old index files rebuilds on open
    reopened = r.reopen()
    assert reopened.cache.known_index_files() == reopened.index_names()


def test_everything_forgotten_empties_the_repository(r: Repo) -> None:
    snaps = r.add({"a": payload(1)}, {"b": payload(2)})
    for s in snaps:
        r.forget(s)
    stats = prune(r.repo, PruneOptions())
    assert stats.index_files_written == 0 and stats.index_files_removed == 1
    assert r.files(DATA_PREFIX) == {} and r.files("index/") == {}


# ---- crash safety: stop between phases, then check and prune again ----------------------

PHASES = ["repack", "write_index", "delete_old_index", "delete_packs_half"]


def crashed_prune(r: Repo, stop_after: str) -> None:
    plan = plan_prune(r.repo, max_unused=0.0)
    try:
        new = repack(r.repo, plan)
        if stop_after == "repack":
            return
        write_index(r.repo, plan, new)
        if stop_after == "write_index":
            return
        delete_old_index(r.repo, plan)
        if stop_after == "delete_old_index":
            return
        doomed = [p for p in plan.packs if p.action is not Action.KEEP]
        r.repo.backend.remove(pack_name(doomed[0].id.hex()))
    finally:
        plan.close()


@pytest.mark.parametrize("stop_after", PHASES)
def test_crash_between_phases_leaves_a_usable_repository(r: Repo, stop_after: str) -> None:
    keep, drop = r.add({"k": payload(1), "k2": payload(3)}, {"d": payload(2)})
    (gone,) = r.add({"g": payload(4)})
    r.forget(drop)
    r.forget(gone)
    expected = {f"{keep.short_id}/data/k": payload(1), f"{keep.short_id}/data/k2": payload(3)}
    crashed_prune(r, stop_after)
    assert verify(r, unreferenced_ok=True) == expected
    # the next prune finishes the job: one index generation, no leftover packs
    prune(r.repo, PruneOptions(max_unused=0.0))
    assert verify(r) == expected
    final = prune(r.repo, PruneOptions(max_unused=0.0))
    assert final.index_files_written == 0 and final.packs_unreferenced == 0


def test_superseded_list_is_only_in_the_last_new_index_file(
    r: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medark.engine import prune as prune_module

    for i in range(3):
        r.add({f"f{i}": payload(i)})
    old = sorted(r.files("index/"))
    monkeypatch.setattr(prune_module, "MAX_BLOBS_PER_INDEX_FILE", 1)
    plan = plan_prune(r.repo)
    try:
        plan.index_leftovers = 1  # force a rewrite although nothing is unused
        names = write_index(r.repo, plan, [])
    finally:
        plan.close()
    assert len(names) == 6  # one file per pack
    lists = [index_file.superseded_ids(r.repo.read_index_file(n)) for n in names]
    assert all(not s for s in lists[:-1])
    assert sorted(index_file.INDEX_PREFIX + s.hex() for s in lists[-1]) == old


@pytest.mark.parametrize("fault", ["save", "save_lands", "remove", "list", "load"])
def test_storage_faults_leave_a_usable_repository(r: Repo, fault: str) -> None:
    """Convention 3 (docs/architecture.md): prune against the faulty backend; the fault
    stops it somewhere, the repository stays usable, and the next run finishes the job."""
    keep, drop = r.add({"k": payload(1), "k2": payload(3)}, {"d": payload(2)})
    (gone,) = r.add({"g": payload(4)})
    r.forget(drop)
    r.forget(gone)
    expected = {f"{keep.short_id}/data/k": payload(1), f"{keep.short_id}/data/k2": payload(3)}
    r.repo.close()
    faulty = FaultyBackend(LocalBackend(r.root / "repo"), transient=False)
    repo = Repository.open(faulty, PASSWORD, r.root / "faulty-cache")
    if fault in ("save", "save_lands"):
        faulty.fail_save_every, faulty.save_lands = 2, fault == "save_lands"
    else:
        setattr(faulty, f"fail_{fault}_every", 2 if fault != "load" else 3)
    try:
        with pytest.raises(BackendError, match="injected fault"):
            prune(repo, PruneOptions(max_unused=0.0))
    finally:
        repo.close()
    assert sum(faulty.injected.values()) >= 1
    r.repo = Repository.open(LocalBackend(r.root / "repo"), PASSWORD, r.root / "cache")
    assert verify(r, unreferenced_ok=True) == expected
    prune(r.repo, PruneOptions(max_unused=0.0))
    assert verify(r) == expected


def test_index_leftovers_alone_force_a_rewrite(r: Repo) -> None:
    """A prune that died while writing its index leaves packs listed twice and nothing
    else to do; the next prune still rewrites the index into one generation."""
    r.add({"a": payload(1)})
    r.add({"b": payload(2)})
    plan = plan_prune(r.repo)
    try:
        assert not plan.has_work
        kept = list(plan.kept_packs())
    finally:
        plan.close()
    r.repo.save_unpacked(index_file.INDEX_PREFIX, index_file.encode(kept[:1], []))
    stats = prune(r.repo, PruneOptions())
    assert stats.index_files_removed == 3 and stats.index_files_written == 1
    assert verify(r)
    again = prune(r.repo, PruneOptions())
    assert again.index_files_written == 0
