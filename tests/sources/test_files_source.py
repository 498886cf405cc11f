"""Exclusion rules and node metadata of the file-tree source."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from medark.errors import UsageError
from medark.snapshot.model import Node
from medark.sources.files.excludes import Excluder
from medark.sources.files.metadata import node_from_stat, same_file_node, unchanged


def test_patterns_without_slash_match_names_at_any_depth() -> None:
    ex = Excluder.from_options(["*.tmp", "cache"], [])
    assert ex.excluded("/data/a/b.tmp")
    assert ex.excluded("/data/cache")
    assert not ex.excluded("/data/cache.txt")
    assert not ex.excluded("/data/file.dcm")


def test_patterns_with_slash_match_paths_and_negation_reincludes() -> None:
    ex = Excluder.from_options(["/data/tmp/*", "!/data/tmp/keep.sql"], [])
    assert ex.excluded("/data/tmp/x")
    assert not ex.excluded("/data/tmp/keep.sql")
    assert not ex.excluded("/other/tmp/x")


def test_exclude_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.write_text("# scratch files\n*.swp\n\n")
    assert Excluder.from_options([], [str(rules)]).excluded("/a/.x.swp")
    with pytest.raises(UsageError, match="cannot read exclude file"):
        Excluder.from_options([], [str(tmp_path / "missing")])


def test_node_from_stat_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    st = os.lstat(path)
    node = node_from_stat("f", st)
    assert (node.type, node.size, node.mtime_ns, node.inode) == (
        "file", 3, st.st_mtime_ns, st.st_ino)
    assert unchanged(node, st)
    path.write_bytes(b"abcd")
    assert not unchanged(node, os.lstat(path))
    os.symlink("f", tmp_path / "link")
    link = node_from_stat("link", os.lstat(tmp_path / "link"), "f")
    assert link.type == "symlink" and link.linktarget == "f" and link.size == 0


def test_a_file_node_is_the_same_only_if_every_stat_field_is(tmp_path: Path) -> None:
    """same_file_node lets an unchanged file keep its parent's node: it must say no as
    soon as node_from_stat would make any field differently (a field added there and
    forgotten here fails this test)."""
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF " * 100)
    st = os.lstat(path)
    node = node_from_stat("report.pdf", st)
    node.content = [b"\x01" * 32]
    assert same_file_node(node, st)
    for f in dataclasses.fields(Node):
        if f.name in ("name", "content"):
            continue
        value = getattr(node, f.name)
        other = (value + 1 if isinstance(value, int)
                 else value + "x" if isinstance(value, str) else b"\x02" * 32)
        assert not same_file_node(dataclasses.replace(node, **{f.name: other}), st), f.name
