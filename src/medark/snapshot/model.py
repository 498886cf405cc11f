"""Node, tree and snapshot models and their JSON encoding.

A tree is one directory's sorted list of nodes, stored as a TREE blob (so identical
directories deduplicate). A snapshot names its root tree and what was backed up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medark.errors import RepositoryCorrupt
from medark.util import clock
from medark.util.jsondoc import MALFORMED
from medark.util.jsondoc import text as _text
from medark.util.jsondoc import texts as _texts

NODE_TYPES = ("file", "dir", "symlink", "dev", "chardev", "fifo", "socket")


@dataclass
class Node:
    name: str
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    device_id: int = 0
    links: int = 1
    size: int = 0
    content: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None
    linktarget: str = ""
    rdev: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "type": self.type, "mode": self.mode}
        for key in ("uid", "gid", "user", "group", "mtime_ns", "ctime_ns", "inode",
                    "device_id", "size", "linktarget", "rdev", "error"):
            value = getattr(self, key)
            if value:
                doc[key] = value
        if self.links != 1:
            doc["links"] = self.links
        if self.type == "file":
            doc["content"] = [c.hex() for c in self.content]
        if self.subtree is not None:
            doc["subtree"] = self.subtree.hex()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Node:
        """TypeError/ValueError for a field of the wrong type (decode_tree reports it)."""
        if not isinstance(doc, dict):
            raise TypeError(f"a node is a {type(doc).__name__}, not an object")
        subtree = doc.get("subtree")
        content = doc.get("content", [])
        if not isinstance(content, list):
            raise TypeError("a node's content is not a list")
        node_type = _text(doc, "type", None)
        if node_type not in NODE_TYPES:
            raise ValueError(f"unknown node type {node_type!r}")
        return cls(
            name=_text(doc, "name", None),
            type=node_type,
            mode=int(doc.get("mode", 0)),
            uid=int(doc.get("uid", 0)),
            gid=int(doc.get("gid", 0)),
            user=_text(doc, "user"),
            group=_text(doc, "group"),
            mtime_ns=int(doc.get("mtime_ns", 0)),
            ctime_ns=int(doc.get("ctime_ns", 0)),
            inode=int(doc.get("inode", 0)),
            device_id=int(doc.get("device_id", 0)),
            links=int(doc.get("links", 1)),
            size=int(doc.get("size", 0)),
            content=[bytes.fromhex(c) for c in content],
            subtree=bytes.fromhex(subtree) if subtree else None,
            linktarget=_text(doc, "linktarget"),
            rdev=int(doc.get("rdev", 0)),
            error=_text(doc, "error"),
        )

    @property
    def mtime(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=clock.now().tzinfo)


def encode_tree(nodes: list[Node]) -> bytes:
    ordered = sorted(nodes, key=lambda n: n.name)
    return json.dumps({"nodes": [n.to_dict() for n in ordered]}, separators=(",", ":")).encode()


def decode_tree(raw: bytes) -> list[Node]:
    try:
        nodes = json.loads(raw)["nodes"]
        if not isinstance(nodes, list):
            raise TypeError("nodes is not a list")
        return [Node.from_dict(d) for d in nodes]
    except MALFORMED as exc:
        raise RepositoryCorrupt(f"a tree object is malformed: {exc}") from None


@dataclass
class Snapshot:
    time: datetime
    tree: bytes
    paths: list[str]
    hostname: str
    username: str = ""
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    program_version: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    """What a database snapshot needs for recovery (kind, system id, LSNs, timeline,
    server version); empty for file backups."""
    dicom_catalog: dict[str, Any] = field(default_factory=dict)
    """The DICOM catalog of a file backup (engine/dicom_catalog.py): `version`,
    `instances`, `malformed` and, when it holds any record, `tree`: the hex id of a TREE
    blob whose one file node holds the records. Empty when no catalog was made."""
    original: str = ""
    """For a copy made by `medark copy` or a snapshot rewritten by `medark tag`: the id
    the snapshot was first saved under (restic's field), so a second copy recognises it."""
    id: str = ""
    """Storage name (hex SHA-256 of the sealed object); set when loaded or saved."""

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def catalog_tree(self) -> bytes | None:
        """The DICOM catalog's tree id, or None."""
        tree = self.dicom_catalog.get("tree")
        return bytes.fromhex(tree) if isinstance(tree, str) and tree else None

    def roots(self) -> list[bytes]:
        """Every tree the snapshot refers to: the files' root, then the DICOM catalog's.
        What keeps blobs alive (prune), locked (WORM), checked and copied."""
        catalog = self.catalog_tree
        return [self.tree] if catalog is None else [self.tree, catalog]

    def to_json(self) -> bytes:
        return json.dumps(self._doc(), sort_keys=True).encode()

    def _doc(self) -> dict[str, Any]:
        return {
            "time": clock.format_time(self.time),
            "tree": self.tree.hex(),
            "paths": self.paths,
            "hostname": self.hostname,
            "username": self.username,
            "tags": self.tags,
            "parent": self.parent,
            "program_version": self.program_version,
            "summary": self.summary,
            **({"source": self.source} if self.source else {}),
            **({"original": self.original} if self.original else {}),
            **({"dicom_catalog": self.dicom_catalog} if self.dicom_catalog else {}),
        }

    @classmethod
    def from_json(cls, raw: bytes, snapshot_id: str) -> Snapshot:
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise TypeError(f"the document is a {type(doc).__name__}, not an object")
            parent = doc.get("parent")
            summary, source = doc.get("summary") or {}, doc.get("source") or {}
            catalog = doc.get("dicom_catalog") or {}
            if not isinstance(catalog, dict):
                raise TypeError("dicom_catalog must be an object")
            if catalog.get("tree") is not None:
                bytes.fromhex(_text(catalog, "tree", None))
            if not isinstance(parent, str | None):
                raise TypeError("parent is not a string")
            if not isinstance(summary, dict) or not isinstance(source, dict):
                raise TypeError("summary and source must be objects")
            return cls(
                time=clock.parse_time(_text(doc, "time", None)),
                tree=bytes.fromhex(_text(doc, "tree", None)),
                paths=_texts(doc, "paths", True),
                hostname=_text(doc, "hostname", None),
                username=_text(doc, "username"),
                tags=_texts(doc, "tags", False),
                parent=parent,
                program_version=_text(doc, "program_version"),
                summary=summary,
                source=source,
                original=str(doc.get("original") or ""),
                dicom_catalog=catalog,
                id=snapshot_id,
            )
        except MALFORMED as exc:
            raise RepositoryCorrupt(f"snapshot {snapshot_id[:8]} is malformed: {exc}") from None

    def public(self) -> dict[str, Any]:
        """restic's field names, so existing tooling reads `snapshots --json`."""
        return {"id": self.id, "short_id": self.short_id, **self._doc()}
