"""Immutable retention in-process, on a memory backend that locks like S3 and an injected
clock: retention on write, batched extension before a snapshot, the tree memo, forget
and prune skipping locked objects, legal-hold markers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medark.engine.prune import PruneOptions, prune
from medark.engine.worm import (
    HOLDS_PREFIX,
    active_holds,
    hold,
    lock_states,
    release,
    remove_snapshots,
    survey_holds,
)
from medark.errors import ObjectLocked, RepositoryCorrupt
from medark.repo.compression import parse_compression
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.repo.retention import LockPolicy
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import SNAPSHOTS_PREFIX, find_snapshot, save_snapshot, save_tree
from medark.storage.mem import MemoryBackend
from medark.storage.objectlock import Retention, RetentionRule, Tampered
from medark.util import clock

PASSWORD = b"pw"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


class LockingMemory(MemoryBackend):
    """A memory backend with the Object Lock capability (retention enforced on remove)."""

    def __init__(self) -> None:
        super().__init__()
        self.retained: dict[str, Retention] = {}
        self.rule: RetentionRule | None = None
        self.extensions = 0
        self.heads = 0

    def object_lock_enabled(self) -> bool:
        return True

    def create_locked(self) -> None:
        self.create()

    def set_retention_rule(self, rule: RetentionRule | None) -> None:
        self.rule = rule

    def _apply(self, name: str) -> None:
        decided = self.rule(name) if self.rule is not None else None
        if decided is not None:
            self.retained[name] = Retention(decided[0], decided[1])

    def save(self, name: str, data: bytes | bytearray) -> None:
        super().save(name, data)
        self._apply(name)

    def save_file(self, name: str, path: str) -> None:
        super().save_file(name, path)
        self._apply(name)

    def set_retention(self, name: str, until: datetime, mode: str) -> None:
        self.extensions += 1
        old = self.retained.get(name, Retention(None, None))
        self.retained[name] = Retention(mode, until, old.legal_hold)

    def retention(self, name: str) -> Retention:
        self.heads += 1
        self.stat(name)
        return self.retained.get(name, Retention(None, None))

    def set_legal_hold(self, name: str, on: bool) -> None:
        old = self.retained.get(name, Retention(None, None))
        self.retained[name] = Retention(old.mode, old.until, on)

    def tampered(self) -> list[Tampered]:
        return []

    def remove(self, name: str) -> None:
        r = self.retained.get(name)
        if r is not None and r.locked_at(clock.now()):
            raise ObjectLocked(f"{name} is locked", r.until)
        super().remove(name)


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch) -> clock.FixedClock:
    at = clock.FixedClock(T0)
    monkeypatch.setattr(clock, "SYSTEM", at)
    return at


def _snapshot(repo: Repository, files: dict[str, bytes]) -> Snapshot:
    nodes = [Node(name=n, type="file", size=len(d),
                  content=[repo.save_blob(BlobType.DATA, d).id])
             for n, d in sorted(files.items())]
    root = save_tree(repo, [Node(name="data", type="dir", subtree=save_tree(repo, nodes))])
    repo.flush()
    snap = Snapshot(time=clock.now(), tree=root, paths=["/data"], hostname="h")
    save_snapshot(repo, snap)
    return snap


def _repo(tmp_path: Path, backend: LockingMemory, days: int = 10) -> Repository:
    return Repository.init(backend, PASSWORD, "aes-256-gcm", parse_compression("zstd:3"),
                           tmp_path / "cache", lock=LockPolicy.new(days))


def test_objects_are_locked_and_extended_in_batches(tmp_path: Path,
                                                     fixed: clock.FixedClock) -> None:
    backend = LockingMemory()
    repo = _repo(tmp_path, backend)
    first = _snapshot(repo, {"a": b"A" * 5000})
    target = T0 + timedelta(days=11)  # 10 days + 1 day of margin
    names = [i.name for i in backend.list("")]
    assert all(backend.retained[n].until == target for n in names if not n.startswith("locks/"))
    assert backend.extensions == 0
    shared_pack = "data/" + repo.locate(repo.crypto.blob_id(b"A" * 5000))[0].hex()
    shared_pack = f"data/{shared_pack[5:7]}/{shared_pack[5:]}"
    key = next(n for n in names if n.startswith("keys/"))

    fixed.advance(8 * 86400)  # the old data now expires before the new snapshot's horizon
    _snapshot(repo, {"a": b"A" * 5000, "b": b"B" * 5000})
    for name in (shared_pack, "config", key):  # what the new snapshot needs is extended
        assert backend.retained[name].until == T0 + timedelta(days=19), name
    assert backend.retained[f"{SNAPSHOTS_PREFIX}{first.id}"].until == target  # not needed
    done = backend.extensions
    assert done == 4  # the shared pack, its index file, the config and the key

    heads = backend.heads
    fixed.advance(3600)
    _snapshot(repo, {"a": b"A" * 5000, "b": b"B" * 5000, "c": b"C" * 5000})
    assert backend.extensions == done and backend.heads == heads  # all known: no requests
    repo.close()


def test_forget_and_prune_skip_locked_objects(tmp_path: Path,
                                              fixed: clock.FixedClock) -> None:
    backend = LockingMemory()
    repo = _repo(tmp_path, backend, days=2)
    old = _snapshot(repo, {"a": b"A" * 5000})
    fixed.advance(3600)
    _snapshot(repo, {"b": b"B" * 5000})
    lines: list[str] = []
    removed, kept = remove_snapshots(repo, [old], dry_run=False, note=lines.append)
    assert removed == [] and kept[0].until == T0 + timedelta(days=3)
    assert lines == [f"snapshot {old.short_id} is locked (compliance) until "
                     "2026-11-04T00:00:00Z: kept"]
    # The lock expires for the old snapshot but not (thanks to the margin) for anything
    # a remaining snapshot needs; an admin removes the old one.
    backend.retained[SNAPSHOTS_PREFIX + old.id] = Retention(None, None)
    removed, kept = remove_snapshots(repo, [old], dry_run=False, note=lines.append)
    assert removed == [old] and not kept
    stats = prune(repo, PruneOptions())
    assert stats.locked and all(until is not None for _n, until in stats.locked)
    assert stats.packs_deleted == 0
    fixed.advance(4 * 86400)  # everything has expired: prune frees the old data now
    stats = prune(repo, PruneOptions())
    assert stats.packs_deleted >= 1 and not stats.locked
    repo.close()


def test_legal_hold_markers_on_any_backend(tmp_path: Path, fixed: clock.FixedClock) -> None:
    repo = Repository.init(MemoryBackend(), PASSWORD, "aes-256-gcm",
                           parse_compression("zstd:3"), tmp_path / "cache")
    snap = _snapshot(repo, {"a": b"A" * 100})
    result = hold(repo, snap, "case 7")
    assert not result.storage_holds and snap.id in active_holds(repo)
    (state,) = lock_states(repo, [snap.id])
    assert state.locked(clock.now()) and state.held is not None
    assert state.held.reason == "case 7"
    lines: list[str] = []
    removed, kept = remove_snapshots(repo, [snap], dry_run=False, note=lines.append)
    assert not removed and kept and "under legal hold since" in lines[0]
    fixed.advance(1)
    release(repo, snap, lambda sid: find_snapshot(repo, sid))
    assert not active_holds(repo)
    removed, _ = remove_snapshots(repo, [snap], dry_run=False, note=lines.append)
    assert removed == [snap]
    repo.close()


# ---- fail closed: a hold marker that cannot be read or verified -----------------------


def _damage(repo: Repository, name: str) -> None:
    """Flip bytes of a stored object in place (bit rot, a truncated write)."""
    raw = bytearray(repo.backend.load(name))
    raw[40:48] = bytes(b ^ 0xFF for b in raw[40:48])
    repo.backend.remove(name)
    repo.backend.save(name, bytes(raw))


def test_a_damaged_hold_marker_blocks_forget_and_prune(tmp_path: Path,
                                                       fixed: clock.FixedClock) -> None:
    repo = Repository.init(MemoryBackend(), PASSWORD, "aes-256-gcm",
                           parse_compression("zstd:3"), tmp_path / "cache")
    held = _snapshot(repo, {"a": b"A" * 100})
    fixed.advance(60)
    other = _snapshot(repo, {"b": b"B" * 100})
    marker = hold(repo, held, "case 9").marker
    _damage(repo, marker)
    survey = survey_holds(repo)
    assert not survey.active and [d.name for d in survey.damaged] == [marker]
    lines: list[str] = []
    removed, kept = remove_snapshots(repo, [held, other], dry_run=False, note=lines.append)
    assert not removed and {k.snapshot.id for k in kept} == {held.id, other.id}
    assert all(marker in line and "`medark check`" in line for line in lines), lines
    assert {n.removeprefix(SNAPSHOTS_PREFIX) for n in repo.list_names(SNAPSHOTS_PREFIX)} \
        == {held.id, other.id}
    with pytest.raises(RepositoryCorrupt, match=f"{marker}.*prune deletes nothing"):
        prune(repo, PruneOptions())
    repo.close()


def test_a_sealed_marker_that_names_no_snapshot_is_damaged(tmp_path: Path,
                                                           fixed: clock.FixedClock) -> None:
    """Authenticated but not a hold record (a bug, another version): damaged, not 'no hold'."""
    repo = Repository.init(MemoryBackend(), PASSWORD, "aes-256-gcm",
                           parse_compression("zstd:3"), tmp_path / "cache")
    snap = _snapshot(repo, {"a": b"A" * 100})
    name = repo.save_unpacked(HOLDS_PREFIX, b'{"snapshot": 5, "held": "yes", "time": "x"}')
    (bad,) = survey_holds(repo).damaged
    assert bad.name == name and bad.problem == "not a valid hold record"
    removed, kept = remove_snapshots(repo, [snap], dry_run=True, note=lambda _line: None)
    assert not removed and kept[0].marker == name
    repo.close()


def test_release_lifts_no_s3_hold_while_a_marker_is_damaged(tmp_path: Path,
                                                            fixed: clock.FixedClock) -> None:
    backend = LockingMemory()
    repo = _repo(tmp_path, backend)
    first = _snapshot(repo, {"a": b"A" * 100})
    second = _snapshot(repo, {"b": b"B" * 100})
    hold(repo, first)
    hold(repo, second)
    backend.save(HOLDS_PREFIX + "ab" * 32, b"written by hand, or by an attacker")
    markers = set(repo.list_names(HOLDS_PREFIX))
    with pytest.raises(RepositoryCorrupt, match="release lifts no S3 legal hold"):
        release(repo, first, lambda sid: find_snapshot(repo, sid))
    assert backend.retained[SNAPSHOTS_PREFIX + first.id].legal_hold
    assert backend.retained["config"].legal_hold
    assert set(repo.list_names(HOLDS_PREFIX)) == markers  # nothing recorded
    repo.close()
