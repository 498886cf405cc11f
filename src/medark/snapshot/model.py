"""Node, tree and snapshot models and their JSON encoding.

A tree is one directory's sorted list of nodes, stored as a TREE blob (so identical
directories deduplicate). A snapshot names its root tree and what was backed up.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, get_args, get_type_hints

from medark.errors import RepositoryCorrupt
from medark.util import clock
from medark.util.jsondoc import MALFORMED
from medark.util.jsondoc import text as _text
from medark.util.jsondoc import texts as _texts

if TYPE_CHECKING:  # imported when the first tree is decoded: 15 ms of every other start
    import msgspec

NodeType = Literal["file", "dir", "symlink", "dev", "chardev", "fifo", "socket"]
NODE_TYPES: tuple[str, ...] = get_args(NodeType)


@dataclass(slots=True)
class Node:
    """slots: a tree of a million files holds a million of these (less memory, faster
    to make)."""

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
        # Field by field, in this order (the encoding of an unchanged directory must not
        # change, or its tree would be stored again): once per node of every backup.
        doc: dict[str, Any] = {"name": self.name, "type": self.type, "mode": self.mode}
        if self.uid:
            doc["uid"] = self.uid
        if self.gid:
            doc["gid"] = self.gid
        if self.user:
            doc["user"] = self.user
        if self.group:
            doc["group"] = self.group
        if self.mtime_ns:
            doc["mtime_ns"] = self.mtime_ns
        if self.ctime_ns:
            doc["ctime_ns"] = self.ctime_ns
        if self.inode:
            doc["inode"] = self.inode
        if self.device_id:
            doc["device_id"] = self.device_id
        if self.size:
            doc["size"] = self.size
        if self.linktarget:
            doc["linktarget"] = self.linktarget
        if self.rdev:
            doc["rdev"] = self.rdev
        if self.error:
            doc["error"] = self.error
        if self.links != 1:
            doc["links"] = self.links
        if self.type == "file":
            doc["content"] = [c.hex() for c in self.content]
        if self.subtree is not None:
            doc["subtree"] = self.subtree.hex()
        return doc

    @property
    def mtime(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=clock.now().tzinfo)


_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""json.dumps's own settings for these arguments, made once (dumps builds one per call)."""


def encode_tree(nodes: list[Node]) -> bytes:
    ordered = sorted(nodes, key=_name)
    return _ENCODER.encode({"nodes": [n.to_dict() for n in ordered]}).encode()


def _name(node: Node) -> str:
    return node.name


def _stored_node() -> type[msgspec.Struct]:
    """Node's fields as a tree stores them (ids as hex text, the type one of NODE_TYPES),
    for msgspec to check every field's type in C: a per-node Python check took two
    thirds of a many-files restore's tree decoding. Unknown fields are ignored (a newer
    writer's)."""
    import msgspec

    stored = {"type": NodeType, "content": list[str], "subtree": str | None}
    hints = get_type_hints(Node)
    fields: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(Node):
        default = (f.default if f.default is not dataclasses.MISSING
                   else f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else msgspec.NODEFAULT)
        fields.append((f.name, stored.get(f.name, hints[f.name]), default))
    return msgspec.defstruct("StoredNode", fields)


@cache
def _tree_decoder() -> msgspec.json.Decoder[Any]:
    import msgspec

    return msgspec.json.Decoder(msgspec.defstruct(
        "StoredTree", [("nodes", list[_stored_node()])]))  # type: ignore[misc]  # made at run time


def decode_tree(raw: bytes) -> list[Node]:
    """RepositoryCorrupt for anything but a tree of well-typed nodes (hex ids included)."""
    import msgspec

    try:
        stored = _tree_decoder().decode(raw).nodes
        fromhex = bytes.fromhex
        return [Node(d.name, d.type, d.mode, d.uid, d.gid, d.user, d.group, d.mtime_ns,
                     d.ctime_ns, d.inode, d.device_id, d.links, d.size,
                     list(map(fromhex, d.content)),
                     fromhex(d.subtree) if d.subtree else None, d.linktarget, d.rdev, d.error)
                for d in stored]
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, RecursionError) as exc:
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
