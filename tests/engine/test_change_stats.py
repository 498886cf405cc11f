"""Change statistics for ransomware detection: entropy verdicts and directory counts."""

from __future__ import annotations

import os
import random

from medark.engine.change_stats import (
    MAX_EXTENSIONS,
    ChangeStats,
    ContentSample,
    extension,
    looks_encrypted,
    recorded_extensions,
)
from medark.snapshot.model import Node

TEXT = b"".join(random.Random(1).choice([b"patient ", b"ward ", b"glucose 5.6 ", b"\n"])
                for _ in range(20000))


def test_random_bytes_look_encrypted_text_does_not() -> None:
    assert looks_encrypted(os.urandom(1 << 20)) is True
    assert looks_encrypted(os.urandom(300)) is True
    assert looks_encrypted(TEXT) is False
    assert looks_encrypted(memoryview(TEXT)[:5000]) is False
    assert looks_encrypted(b"x" * 10) is None  # too short to tell


def test_sample_uses_the_repository_verdict_when_there_is_one() -> None:
    sample = ContentSample()
    sample.add_chunk(TEXT, shrank=False)  # the compressor said it does not shrink
    sample.add_chunk(os.urandom(1000), shrank=True)
    sample.add_chunk(b"tiny")  # no verdict, too short: not sampled
    assert (sample.sampled, sample.encrypted) == (len(TEXT) + 1000, len(TEXT))
    assert sample.looks_encrypted


def test_file_counts() -> None:
    stats = ChangeStats()
    enc = ContentSample(sampled=100, encrypted=90)
    plain = ContentSample(sampled=100, encrypted=10)
    stats.file_stored(100, is_new=False, sample=enc)
    stats.file_stored(100, is_new=True, sample=enc)
    stats.file_stored(100, is_new=False, sample=plain)
    stats.file_stored(0, is_new=False, sample=ContentSample())  # nothing new: not encrypted
    got = stats.summary()
    assert got["files_changed_encrypted"] == 1 and got["files_new_encrypted"] == 1
    assert got["bytes_changed"] == 300 and got["content_encrypted"] == 190
    assert got["content_sampled"] == 300


def node(name: str, kind: str = "file") -> Node:
    return Node(name=name, type=kind)


def test_directory_renames_deletions_and_unseen_extensions() -> None:
    stats = ChangeStats(known_extensions=frozenset({"dcm", "txt", ""}))
    old = [node("a.dcm"), node("b.dcm"), node("c.txt"), node("d.txt"), node("sub", "dir")]
    files = ["a.dcm.locked", "b.enc", "c.txt", "e.dcm", "f.xlsx"]
    gone = [n for n in old if n.name not in files]
    stats.directory(files, old, gone, deleted_files=7)
    got = stats.summary()
    assert got["files_deleted"] == 7
    assert got["files_ext_renamed"] == 2  # a.dcm -> a.dcm.locked, b.dcm -> b.enc
    assert got["files_unseen_ext"] == 3  # locked, enc, xlsx (c.txt is old, e.dcm known)
    assert got["extensions"] == {"locked": 1, "enc": 1, "txt": 1, "dcm": 1, "xlsx": 1}


def test_without_known_extensions_nothing_is_unseen() -> None:
    stats = ChangeStats()
    stats.directory(["x.locked"], None, [], 0)
    assert stats.summary()["files_unseen_ext"] == 0


def test_extension_rules() -> None:
    assert extension("IMG.DCM") == "dcm"
    assert extension("IM000123") == "" and extension(".bashrc") == ""
    assert extension("a.b c") == "" and extension("x." + "y" * 20) == ""
    assert recorded_extensions({"extensions": {"dcm": 3}}) == frozenset({"dcm"})
    assert recorded_extensions({}) is None
    many = {f"e{i}": 1 for i in range(MAX_EXTENSIONS)}
    assert recorded_extensions({"extensions": many}) is None
