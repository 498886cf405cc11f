"""ls, diff, find and stats engines against real repositories built through the Python API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medark.engine.diff import SnapshotDiff
from medark.engine.find import Finder, Pattern
from medark.engine.listing import (
    format_long,
    go_mode,
    go_permissions,
    list_nodes,
    match_json,
    node_json,
    rfc3339_ns,
    snapshot_json,
)
from medark.engine.stats import compute_stats, index_totals, referenced_blobs
from medark.errors import ObjectNotFound, UsageError
from medark.repo.compression import CompressionSpec
from medark.repo.crypto import DEFAULT_SUITE
from medark.repo.pack import BlobType, PackedBlob
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.storage.local import LocalBackend
from medark.util.progress import NullProgress

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
MTIME = 1_764_147_600_123_456_789


class Counting:
    """The real repository, recording which blobs are loaded."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.backend = repo.backend
        self.cache = repo.cache
        self.loaded: list[bytes] = []

    def load_blob(self, blob_id: bytes) -> bytes:
        self.loaded.append(blob_id)
        return self.repo.load_blob(blob_id)

    def locate(self, blob_id: bytes) -> tuple[bytes, PackedBlob]:
        return self.repo.locate(blob_id)


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times are shown in local time; pin it so the expected strings hold anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", DEFAULT_SUITE,
                        CompressionSpec("zstd", 3), cache_dir=tmp_path / "cache")
    yield r
    r.close()


def f(repo: Repository, name: str, data: bytes, **kw: object) -> Node:
    content = [repo.save_blob(BlobType.DATA, data).id] if data else []
    fields: dict[str, object] = {"mode": 0o100644, "mtime_ns": MTIME, "ctime_ns": MTIME,
                                 "uid": 1000, "gid": 1000, "user": "pacs", "group": "pacs"}
    fields.update(kw)
    return Node(name=name, type="file", size=len(data), content=content, **fields)


def d(repo: Repository, name: str, children: list[Node], mode: int = 0o40755) -> Node:
    return Node(name=name, type="dir", mode=mode, mtime_ns=MTIME,
                subtree=save_tree(repo, children))


def snap(repo: Repository, children: list[Node], n: int = 0, **kw: object) -> Snapshot:
    s = Snapshot(time=T0 + timedelta(hours=n), tree=save_tree(repo, children),
                 paths=["/data"], hostname="pacs01", **kw)
    save_snapshot(repo, s)
    repo.flush()
    return s


def pacs(repo: Repository, series: bytes = b"CT image one") -> list[Node]:
    """/data/{pacs/{s1/IM1.dcm, s2/IM2.dcm}, notes.txt, link -> notes.txt}"""
    return [d(repo, "data", [
        d(repo, "pacs", [
            d(repo, "s1", [f(repo, "IM1.dcm", series)]),
            d(repo, "s2", [f(repo, "IM2.dcm", b"MR image two" * 100)]),
        ]),
        f(repo, "notes.txt", b"notes"),
        Node(name="link", type="symlink", mode=0o120777, linktarget="notes.txt"),
    ])]


# ---- ls ---------------------------------------------------------------------------


def test_ls_lists_every_node_parents_first(repo: Repository) -> None:
    s = snap(repo, pacs(repo))
    paths = [p for p, _ in list_nodes(repo, s)]
    assert paths == ["/data", "/data/link", "/data/notes.txt", "/data/pacs", "/data/pacs/s1",
                     "/data/pacs/s1/IM1.dcm", "/data/pacs/s2", "/data/pacs/s2/IM2.dcm"]


def test_ls_dir_shows_entries_and_loads_only_the_way_there(repo: Repository) -> None:
    s = snap(repo, pacs(repo))
    counting = Counting(repo)
    paths = [p for p, _ in list_nodes(counting, s, ["/data/pacs"])]
    assert paths == ["/data/pacs", "/data/pacs/s1", "/data/pacs/s2"]
    deep = [p for p, _ in list_nodes(repo, s, ["/data/pacs/"], recursive=True)]
    assert deep == ["/data/pacs", "/data/pacs/s1", "/data/pacs/s1/IM1.dcm", "/data/pacs/s2",
                    "/data/pacs/s2/IM2.dcm"]
    # s1 and s2 hold files only: listing /data/pacs must not have read their trees
    loaded_during_walk = set(counting.loaded)
    s1 = next(n for p, n in list_nodes(repo, s) if p == "/data/pacs/s1")
    assert s1.subtree not in loaded_during_walk
    top = [p for p, _ in list_nodes(repo, s, ["/"])]
    assert top == ["/data"]


def test_ls_bad_paths_are_one_clear_error(repo: Repository) -> None:
    s = snap(repo, pacs(repo))
    with pytest.raises(ObjectNotFound, match="/data/nope is not in snapshot"):
        list_nodes(repo, s, ["/data/nope"])
    with pytest.raises(ObjectNotFound, match="not a directory"):
        list_nodes(repo, s, ["/data/notes.txt/x"])
    with pytest.raises(UsageError, match="absolute"):
        list_nodes(repo, s, ["data"])


def test_node_json_uses_restic_fields_and_go_modes(repo: Repository) -> None:
    s = snap(repo, pacs(repo))
    nodes = dict(list_nodes(repo, s))
    data = node_json("/data", nodes["/data"])
    assert data["mode"] == 2147484141 and data["permissions"] == "drwxr-xr-x"
    assert "size" not in data and data["struct_type"] == "node" == data["message_type"]
    im = node_json("/data/pacs/s1/IM1.dcm", nodes["/data/pacs/s1/IM1.dcm"])
    assert im["size"] == len(b"CT image one") and im["mode"] == 0o644
    assert im["mtime"] == "2025-11-26T09:00:00.123456789Z"
    link = node_json("/data/link", nodes["/data/link"])
    assert link["permissions"] == "Lrwxrwxrwx" and link["linktarget"] == "notes.txt"
    assert go_permissions(go_mode(Node("x", "file", mode=0o104755))) == "urwxr-xr-x"
    assert go_permissions(go_mode(Node("x", "chardev", mode=0o20666))) == "Dcrw-rw-rw-"
    first = snapshot_json(s)
    assert first["message_type"] == "snapshot" and first["id"] == s.id
    assert first["short_id"] == s.id[:8] and first["hostname"] == "pacs01"


def test_long_format_and_local_times(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    node = f(repo, "IM1.dcm", b"abc")
    line = format_long("/data/IM1.dcm", node)
    assert line.startswith("-rw-r--r-- pacs     pacs")
    assert line.endswith(" 3 2025-11-26 09:00:00 /data/IM1.dcm")
    link = Node(name="l", type="symlink", mode=0o777, linktarget="target")
    assert format_long("/l", link).startswith("lrwxrwxrwx 0")
    assert format_long("/l", link).endswith("/l -> target")
    assert rfc3339_ns(1_000_000_000) == "1970-01-01T00:00:01Z"
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    assert rfc3339_ns(1_500_000_000) == "1970-01-01T08:00:01.5+08:00"


# ---- diff -------------------------------------------------------------------------


def test_diff_reports_restic_modifiers_and_statistics(repo: Repository) -> None:
    before = snap(repo, pacs(repo))
    after_nodes = [d(repo, "data", [
        d(repo, "pacs", [
            d(repo, "s1", [f(repo, "IM1.dcm", b"CT image one, re-sent")]),
            d(repo, "s2", [f(repo, "IM2.dcm", b"MR image two" * 100)]),
            d(repo, "s3", [f(repo, "IM3.dcm", b"new series")]),
        ]),
        Node(name="link", type="file", mode=0o100644),
        f(repo, "notes.txt", b"notes", mode=0o100600),
    ])]
    after = snap(repo, after_nodes, 1)
    differ = SnapshotDiff(repo, metadata=True)
    changes = [(c.modifier, c.path) for c in differ.changes(before.tree, after.tree)]
    assert changes == [
        ("TU", "/data/link"),
        ("U", "/data/notes.txt"),
        ("M", "/data/pacs/s1/IM1.dcm"),
        ("+", "/data/pacs/s3/"),
        ("+", "/data/pacs/s3/IM3.dcm"),
    ]
    stats = differ.statistics()
    assert stats.changed_files == 1
    assert (stats.added.files, stats.added.dirs, stats.removed.files) == (1, 1, 0)
    assert stats.added.data_blobs == 2  # the changed IM1 and the new IM3
    assert stats.removed.data_blobs == 1
    assert stats.added.bytes >= len(b"CT image one, re-sent") + len(b"new series")
    doc = stats.as_json()
    assert doc["message_type"] == "statistics"
    assert set(doc["added"]) == {"files", "dirs", "others", "data_blobs", "tree_blobs", "bytes"}


def test_diff_skips_identical_subtrees_without_loading(repo: Repository) -> None:
    nodes = pacs(repo)
    before = snap(repo, nodes)
    unchanged = nodes[0]
    after = snap(repo, [unchanged, f(repo, "new.txt", b"x")], 1)
    counting = Counting(repo)
    changes = list(SnapshotDiff(counting).changes(before.tree, after.tree))
    assert [(c.modifier, c.path) for c in changes] == [("+", "/new.txt")]
    assert counting.loaded == [before.tree, after.tree]
    assert list(SnapshotDiff(counting).changes(before.tree, before.tree)) == []


def test_diff_without_metadata_hides_u_and_flags_bitrot(repo: Repository) -> None:
    before = snap(repo, [f(repo, "a.dcm", b"good"), f(repo, "b.txt", b"b")])
    after = snap(repo, [f(repo, "a.dcm", b"gooD"), f(repo, "b.txt", b"b", mode=0o100600)], 1)
    changes = [(c.modifier, c.path) for c in SnapshotDiff(repo).changes(before.tree, after.tree)]
    assert changes == [("M?", "/a.dcm")]  # same size, times and inode: content rotted


def test_diff_dir_replaced_by_file_lists_what_went(repo: Repository) -> None:
    before = snap(repo, [d(repo, "x", [f(repo, "inner", b"i")])])
    after = snap(repo, [f(repo, "x", b"now a file")], 1)
    differ = SnapshotDiff(repo)
    changes = [(c.modifier, c.path) for c in differ.changes(before.tree, after.tree)]
    assert changes == [("T", "/x"), ("-", "/x/inner")]
    assert differ.statistics().removed.files == 1


# ---- find -------------------------------------------------------------------------


def test_patterns() -> None:
    assert Pattern("*.dcm").matches("IM1.dcm", "/data/s1/IM1.dcm")
    assert not Pattern("*.DCM").matches("IM1.dcm", "/data/s1/IM1.dcm")
    assert Pattern("*.DCM", ignore_case=True).matches("IM1.dcm", "/data/s1/IM1.dcm")
    assert Pattern("s1/*.dcm").matches("IM1.dcm", "/data/s1/IM1.dcm")
    assert not Pattern("/s1/*.dcm").matches("IM1.dcm", "/data/s1/IM1.dcm")
    assert Pattern("/data/*/IM1.dcm").matches("IM1.dcm", "/data/s1/IM1.dcm")
    assert not Pattern("/data/*.dcm").matches("IM1.dcm", "/data/s1/IM1.dcm")
    assert Pattern("/data/**/*.dcm").matches("IM1.dcm", "/data/s1/IM1.dcm")
    with pytest.raises(UsageError):
        Pattern("/")


def test_find_searches_each_shared_subtree_once(repo: Repository) -> None:
    s1 = snap(repo, pacs(repo))
    s2 = snap(repo, pacs(repo, series=b"changed"), 1)
    finder = Finder(repo, ["*.dcm", "NOTES*"], ignore_case=True)
    first = finder.find(s1.tree)
    assert [p for p, _ in first] == ["/data/notes.txt", "/data/pacs/s1/IM1.dcm",
                                     "/data/pacs/s2/IM2.dcm"]
    loaded = finder.trees_loaded
    second = finder.find(s2.tree)
    assert [p for p, _ in second] == [p for p, _ in first]
    # only root, data, pacs and the changed s1 are new; s2 comes from the memo
    assert finder.trees_loaded - loaded == 4
    assert finder.find(s1.tree) == first and finder.trees_loaded - loaded == 4
    by_path = Finder(repo, ["pacs/s2/*"])
    assert [p for p, _ in by_path.find(s1.tree)] == ["/data/pacs/s2/IM2.dcm"]
    match = match_json(*second[0])
    assert match["path"] == "/data/notes.txt" and match["type"] == "file"
    assert match["size"] == 5 and match["mtime"] == "2025-11-26T09:00:00.123456789Z"
    assert match["permissions"] == "-rw-r--r--" and match["user"] == "pacs"
    with pytest.raises(UsageError):
        Finder(repo, [])


# ---- stats ------------------------------------------------------------------------


def test_restore_size_counts_paths_and_hard_links_once(repo: Repository) -> None:
    linked = {"links": 2, "inode": 77, "device_id": 1}
    s1 = snap(repo, [d(repo, "a", [f(repo, "x", b"12345", **linked)]),
                     d(repo, "b", [f(repo, "y", b"12345", **linked)]),
                     f(repo, "z", b"123")])
    report = compute_stats(repo, [s1], [s1])
    assert report.restore_size == 8  # x and y are one inode
    assert report.file_count == 5
    doc = report.as_json()
    assert doc["total_size"] == 8 and doc["total_file_count"] == 5
    assert doc["snapshots_count"] == 1


def test_stats_memo_dedup_and_repository_block(repo: Repository) -> None:
    s1 = snap(repo, pacs(repo))
    s2 = snap(repo, pacs(repo), 1, tags=["again"])  # identical content: same tree
    s3 = snap(repo, pacs(repo, series=b"other CT"), 2)
    counting = Counting(repo)
    report = compute_stats(counting, [s3], [s1, s2, s3], "raw-data", NullProgress())
    one = len(b"CT image one") + len(b"MR image two" * 100) + len(b"notes")
    assert report.repository.raw_size == 2 * one + one - len(b"CT image one") + len(b"other CT")
    assert report.restore_size == one - len(b"CT image one") + len(b"other CT")
    # sizes: each distinct tree once (s2 is s1's tree: 5 + 4 new in s3); blobs: s3's 5 trees
    assert len(set(counting.loaded)) == 9 and len(counting.loaded) == 9 + 5
    doc = report.as_json()
    assert doc["mode"] == "raw-data" and doc["snapshots_count"] == 1
    assert doc["total_blob_count"] == 3 + 5  # 3 files' contents, 5 trees
    assert doc["stored_size"] == doc["total_size"] and doc["deduplicated_size"] > one
    packs = list(repo.backend.list("data/"))
    repo_doc = doc["repository"]
    assert repo_doc["stored_size"] == sum(p.size for p in packs)
    assert repo_doc["pack_count"] == len(packs)
    assert repo_doc["snapshots_count"] == 3
    assert repo_doc["dedup_ratio"] == round(
        repo_doc["raw_size"] / repo_doc["deduplicated_size"], 4)
    assert set(doc) >= {"total_size", "total_uncompressed_size", "compression_ratio",
                        "compression_space_saving", "dedup_ratio", "repository"}


def test_index_totals_match_a_blob_by_blob_sum(repo: Repository) -> None:
    snap(repo, pacs(repo))
    snap(repo, [f(repo, "big.txt", b"compressible " * 5000)], 1)
    blobs = [b for _pack, b in repo.cache.blobs()]
    totals = index_totals(repo)
    assert totals.count == len(blobs)
    assert totals.plain == sum(b.plain_length for b in blobs)
    assert totals.sealed == sum(b.length for b in blobs)
    assert totals.compressed_count >= 1 and totals.compression_ratio > 5


def test_raw_data_warns_on_blobs_missing_from_index(repo: Repository) -> None:
    ghost = Node(name="ghost", type="file", size=3, content=[b"\x01" * 32])
    s = snap(repo, [ghost])
    progress = NullProgress()
    totals = referenced_blobs(repo, [s.tree], progress)
    assert totals.missing == 1 and totals.count == 1
    assert "not in the index" in progress.warnings[0]
    with pytest.raises(UsageError, match="unknown stats mode"):
        compute_stats(repo, [s], [s], "files-by-contents")
