"""Trees as the repository stores them (snapshot/model.py): every field survives the round
trip, a newer writer's extra field is ignored, and anything malformed, whatever the
field, is one RepositoryCorrupt line, never a wrong-typed node deep inside a restore."""

from __future__ import annotations

import json

import pytest

from medark.errors import RepositoryCorrupt
from medark.snapshot.model import NODE_TYPES, Node, decode_tree, encode_tree


def every_kind() -> list[Node]:
    return [
        Node("a.dcm", "file", 0o100640, 1234, 5678, "pacs", "影像", 1_660_000_000_123_456_789,
             1_660_000_001_000_000_000, 42, 65024, 3, 10_000, [b"\x01" * 32, b"\x02" * 32]),
        Node("empty", "file", 0o100600),
        Node("dir", "dir", 0o42775, subtree=b"\x03" * 32),
        Node("link", "symlink", 0o120777, linktarget="../a.dcm"),
        Node("tty", "chardev", 0o20620, rdev=1025),
        Node("disk", "dev", 0o60660, rdev=2049),
        Node("pipe", "fifo", 0o10644),
        Node("sock", "socket", 0o140755),
        Node("gone", "file", 0o100644, error="permission denied"),
    ]


def test_every_field_of_every_kind_survives_the_round_trip() -> None:
    nodes = every_kind()
    assert {n.type for n in nodes} == set(NODE_TYPES)
    assert decode_tree(encode_tree(nodes)) == sorted(nodes, key=lambda n: n.name)


def test_a_newer_writers_field_is_ignored() -> None:
    doc = json.loads(encode_tree(every_kind()[:1]))
    doc["nodes"][0]["xattrs"] = {"user.k": "v"}
    assert decode_tree(json.dumps(doc).encode()) == every_kind()[:1]


GOOD = {"name": "a", "type": "file", "mode": 33188, "content": ["00" * 32]}


@pytest.mark.parametrize("change", [
    {"name": 7}, {"name": None}, {"type": "door"}, {"type": None}, {"mode": "644"},
    {"mode": 1.5}, {"mode": True}, {"uid": -1.0}, {"user": 0},
    {"content": "00"}, {"content": ["zz"]}, {"content": ["0"]}, {"content": [1]},
    {"subtree": "xyz"}, {"subtree": 5}, {"linktarget": []}, {"error": {}},
])
def test_a_malformed_node_is_a_corrupt_tree(change: dict[str, object]) -> None:
    raw = json.dumps({"nodes": [{**GOOD, **change}]}).encode()
    with pytest.raises(RepositoryCorrupt, match="a tree object is malformed"):
        decode_tree(raw)


@pytest.mark.parametrize("raw", [
    b"", b"[]", b"{}", b'{"nodes": {}}', b'{"nodes": [1]}', b'{"nodes": [{}]}',
    b'{"nodes": [{"type": "file"}]}', b"\xff\xfe", b'{"nodes": [' * 10_000,
])
def test_a_malformed_document_is_a_corrupt_tree(raw: bytes) -> None:
    with pytest.raises(RepositoryCorrupt, match="a tree object is malformed"):
        decode_tree(raw)
