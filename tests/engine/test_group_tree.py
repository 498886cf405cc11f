"""A consistency group's reconciliation and tree (engine/group_backup.py, group_tree.py):
references against a real scan, files gone since the previous snapshot filled by path and
size (nodes grafted, no data stored again), the rest reported; the grafted tree restores."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medark.engine.backup import Backup
from medark.engine.backup_model import BackupOptions
from medark.engine.group_backup import reconcile
from medark.engine.group_check import check_pair, compare
from medark.engine.group_tree import TreeReader, graft, parts_of
from medark.engine.restore import RestoreOptions, restore
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.sources.pacs.index import Reference
from medark.util.progress import NullProgress


def scan(repo: Repository, root: Path) -> Snapshot:
    return Backup(repo, BackupOptions(paths=[str(root)], host="pacs1", workers=2),
                  NullProgress()).run().snapshot


def test_references_are_present_after_the_point_filled_or_missing(
        repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "storage"
    for rel, size in (("ab/cd/u1", 10), ("ab/ef/u2", 20), ("zz/zz/orphan", 3)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(bytes([len(rel)]) * size)
    first = scan(repo, root)
    refs = [Reference("ab/cd/u1", 10), Reference("ab/ef/u2", 20), Reference("/else/x", 1)]
    done = reconcile(repo, str(root), refs, first, None)
    assert (done.referenced, done.after_point, done.filled, done.missing, done.outside) == (
        2, ["zz/zz/orphan"], [], [], ["/else/x"])

    kept = (root / "ab/ef/u2").read_bytes()
    (root / "ab/ef/u2").unlink()  # deleted during the scan (the index still names it)
    (root / "ab/cd/u1").unlink()
    second = scan(repo, root)
    assert second.parent == first.id
    refs = [Reference("ab/cd/u1", 11),  # another size: not the same file
            Reference("ab/ef/u2", 20), Reference("cd/ab/u3", None)]
    done = reconcile(repo, str(root), refs, second, None)
    assert done.filled == ["ab/ef/u2"]
    assert sorted(done.missing) == ["ab/cd/u1", "cd/ab/u3"]
    assert done.after_point == ["zz/zz/orphan"]

    blobs_before = repo.stats.data_blobs
    grafted = graft(repo, second.tree, done.additions)
    assert repo.stats.data_blobs == blobs_before, "grafting stores no data"
    repo.flush()
    reader = TreeReader(repo, grafted)
    node = reader.node(str(root / "ab/ef/u2"))
    assert node is not None and node.size == 20
    assert reader.node(str(root / "zz/zz/orphan")) is not None, "the scan's files stay"
    target = tmp_path / "restored"
    restored = restore(repo, Snapshot(time=second.time, tree=grafted, paths=[str(root)],
                                      hostname="pacs1", id=second.id),
                       RestoreOptions(target=str(target)), NullProgress())
    assert restored.errors == []
    back = target / str(root).lstrip("/")
    assert (back / "ab/ef/u2").read_bytes() == kept
    assert not (back / "ab/cd/u1").exists()
    pair = check_pair([Reference("ab/ef/u2"), Reference("ab/cd/u1")], str(back))
    assert pair["rows_without_files"] == ["ab/cd/u1"]
    assert pair["files_without_rows"] == ["zz/zz/orphan"]


def test_graft_makes_directories_and_keeps_what_the_scan_has(
        repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "s"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"scan")
    snap = scan(repo, root)
    reader = TreeReader(repo, snap.tree)
    scanned = reader.node(str(root / "a" / "f"))
    assert scanned is not None
    stale = replace(scanned, size=99)
    grafted = graft(repo, snap.tree, {parts_of(str(root / "a" / "f")): stale,
                                      parts_of(str(root / "new" / "deep" / "g")): stale})
    repo.flush()
    after = TreeReader(repo, grafted)
    kept = after.node(str(root / "a" / "f"))
    added = after.node(str(root / "new" / "deep" / "g"))
    assert kept is not None and kept.size == 4
    assert added is not None and added.size == 99 and added.name == "g"
    assert compare(["x", "y"], ["y", "z"]) == {
        "references": 2, "files": 2, "rows_without_files": ["x"],
        "files_without_rows": ["z"]}
