"""What a snapshot holds (`ls`), and the restic view of a node shared by ls, find and diff.

Operators come from restic and their scripts parse its output, so nodes are shown the way
restic shows them: `mode` is Go's os.FileMode (type bits high, e.g. a 0755 directory is
2147484141), `permissions` its string form ("drwxr-xr-x"), times RFC 3339 with nanoseconds
in local time. The long text format uses the familiar `ls -l` letters instead.
"""

from __future__ import annotations

import functools
import posixpath
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from medark.errors import ObjectNotFound, UsageError
from medark.snapshot.model import Node, Snapshot, decode_tree


class TreeSource(Protocol):
    """All listing needs from a repository: tree blobs by id."""

    def load_blob(self, blob_id: bytes) -> bytes: ...


def load_nodes(repo: TreeSource, tree_id: bytes) -> list[Node]:
    return decode_tree(repo.load_blob(tree_id))


def join(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


def has_prefix(base: str, path: str) -> bool:
    """Whether `path` is `base` or lies below it ('/a' holds '/a/b' but not '/ab')."""
    return path == base or path.startswith(base.rstrip("/") + "/")


def normalize_dir(path: str) -> str:
    if not path.startswith("/"):
        raise UsageError(f"path {path!r} must be absolute (start with '/'), as ls shows them")
    return posixpath.normpath(path).replace("//", "/")


def resolve(repo: TreeSource, root: bytes, path: str, snapshot: str = "") -> Node | None:
    """The node at absolute `path` (None for '/'); ObjectNotFound names what is missing."""
    node: Node | None = None
    tree: bytes | None = root
    walked = ""
    for name in [p for p in path.split("/") if p]:
        if tree is None:
            raise ObjectNotFound(f"{walked} is not a directory in snapshot {snapshot[:8]}")
        found = [n for n in load_nodes(repo, tree) if n.name == name]
        walked = join(walked or "/", name)
        if not found:
            raise ObjectNotFound(f"{walked} is not in snapshot {snapshot[:8]}")
        node = found[0]
        tree = node.subtree if node.type == "dir" else None
    return node


def list_nodes(
    repo: TreeSource, snap: Snapshot, dirs: list[str] | None = None, recursive: bool = False
) -> Iterator[tuple[str, Node]]:
    """restic's `ls` walk: everything, or each dir in `dirs` with its entries (all levels
    below it with `recursive`). Only the trees on the way to a dir are loaded. A path that
    is not in the snapshot raises here, before anything is yielded."""
    wanted = sorted({normalize_dir(d) for d in dirs or []})
    for d in wanted:
        resolve(repo, snap.tree, d, snap.id)
    return _walk(repo, snap.tree, wanted, recursive)


def _walk(
    repo: TreeSource, root: bytes, wanted: list[str], recursive: bool
) -> Iterator[tuple[str, Node]]:
    def within(path: str) -> bool:
        return not wanted or any(has_prefix(d, path) for d in wanted)

    def approaching(path: str) -> bool:
        return not wanted or any(has_prefix(path, d) for d in wanted)

    def visit(tree_id: bytes, prefix: str) -> Iterator[tuple[str, Node]]:
        for node in load_nodes(repo, tree_id):
            path = join(prefix, node.name)
            sub = node.subtree if node.type == "dir" else None
            if within(path):
                yield path, node
                if recursive:
                    if sub is not None:
                        yield from visit(sub, path)
                    continue
            if sub is not None and approaching(path):
                yield from visit(sub, path)

    yield from visit(root, "/")


# ---- the restic view of nodes and times ---------------------------------------------

_TYPE_BITS = {
    "file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "dev": stat.S_IFBLK,
    "chardev": stat.S_IFCHR, "fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK,
}
_GO_TYPE_BITS = {
    "file": 0, "dir": 1 << 31, "symlink": 1 << 27, "dev": 1 << 26,
    "chardev": (1 << 26) | (1 << 21), "fifo": 1 << 25, "socket": 1 << 24,
}
_GO_LETTERS = "dalTLDpSugct?"  # bit 31 down to bit 19, as Go's FileMode.String() prints
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


def unix_mode(node: Node) -> int:
    """st_mode with the type bits taken from the node type (trusted over stored bits)."""
    return _TYPE_BITS.get(node.type, 0) | (node.mode & 0o7777)


def go_mode(node: Node) -> int:
    """The node's mode as Go's os.FileMode, which restic's JSON carries."""
    mode = _GO_TYPE_BITS.get(node.type, 1 << 19) | (node.mode & 0o777)
    if node.mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if node.mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if node.mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


@functools.lru_cache(maxsize=512)
def go_permissions(mode: int) -> str:
    """Go's FileMode.String(): restic's `permissions` field."""
    letters = "".join(c for i, c in enumerate(_GO_LETTERS) if mode & (1 << (31 - i)))
    rwx = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (letters or "-") + rwx


@functools.lru_cache(maxsize=4096)
def _utc_offset(quarter_hour: int, _zone: tuple[str, str]) -> int:
    """Local UTC offset in seconds; offsets only change on quarter-hour boundaries.
    `_zone` (time.tzname) keys the cache, so a tzset() to another zone is seen."""
    moment = datetime.fromtimestamp(quarter_hour * 900, tz=UTC).astimezone()
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset else 0


def rfc3339_ns(ns: int) -> str:
    """Go's RFC3339Nano in local time: '2026-11-26T09:00:00.123456789+01:00'."""
    seconds, frac = divmod(ns, 1_000_000_000)
    offset = _utc_offset(seconds // 900, time.tzname)
    t = time.gmtime(seconds + offset)
    text = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")
    if frac:
        text += f".{frac:09d}".rstrip("0")
    if not offset:
        return text + "Z"
    sign = "+" if offset >= 0 else "-"
    minutes = abs(offset) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_time(value: datetime) -> str:
    """restic's text time format, in local time."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def local_time_ns(ns: int) -> str:
    return local_time(datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC))


def node_json(path: str, node: Node) -> dict[str, Any]:
    """One `ls --json` line, restic's field names and omissions."""
    mode = go_mode(node)
    doc: dict[str, Any] = {
        "name": node.name, "type": node.type, "path": path, "uid": node.uid, "gid": node.gid,
    }
    if node.type == "file":
        doc["size"] = node.size
    doc["mode"] = mode
    doc["permissions"] = go_permissions(mode)
    doc["mtime"] = rfc3339_ns(node.mtime_ns)
    doc["ctime"] = rfc3339_ns(node.ctime_ns)
    if node.inode:
        doc["inode"] = node.inode
    if node.type == "symlink":
        doc["linktarget"] = node.linktarget
    doc["message_type"] = "node"
    doc["struct_type"] = "node"
    return doc


def match_json(path: str, node: Node) -> dict[str, Any]:
    """One `find --json` match: restic's node fields without name and content."""
    mode = go_mode(node)
    doc: dict[str, Any] = {
        "path": path, "permissions": go_permissions(mode), "type": node.type, "mode": mode,
        "mtime": rfc3339_ns(node.mtime_ns), "ctime": rfc3339_ns(node.ctime_ns),
        "uid": node.uid, "gid": node.gid,
    }
    for key in ("user", "group", "inode", "device_id", "size", "linktarget"):
        value = getattr(node, key)
        if value:
            doc[key] = value
    if node.links:
        doc["links"] = node.links
    return doc


def snapshot_json(snap: Snapshot) -> dict[str, Any]:
    """The first line of `ls --json`."""
    return {**snap.public(), "message_type": "snapshot", "struct_type": "snapshot"}


def format_long(path: str, node: Node) -> str:
    """`ls -l` style: mode, owner, group, size, mtime, path (-> target)."""
    user = node.user or str(node.uid)
    group = node.group or str(node.gid)
    target = f" -> {node.linktarget}" if node.type == "symlink" else ""
    return (
        f"{stat.filemode(unix_mode(node))} {user:<8} {group:<8} {node.size:>12} "
        f"{local_time_ns(node.mtime_ns)} {path}{target}"
    )
