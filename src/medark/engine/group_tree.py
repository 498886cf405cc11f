"""A consistency group's tree (docs/repository-format.md, "Consistency groups"):

    files/        the file snapshot's tree with the filled files grafted in
    references    the index's file references at the point, one relative path a line
    after-point   files present but not referenced (written after the point), one a line
    filled        references missing from the scan, taken from the previous snapshot
    missing       references neither scanned nor found in the previous snapshot
    database/     a point on SQLite only: the copy of the index, one file under the
                  index's own name (e.g. database/index); a PostgreSQL point's database
                  is in its base backup and WAL archive instead

Grafting copies nodes (their chunk ids), never data: a filled file costs one tree blob
per directory on its path."""

from __future__ import annotations

import io
import posixpath
import stat
from collections.abc import Iterable, Iterator
from dataclasses import replace

from medark.errors import RepositoryCorrupt
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import SnapshotRepo, load_tree, save_tree
from medark.util.progress import Progress

KIND = "group"
"""The source kind of a group's point (its snapshot's `source.kind`)."""
FILES = "files"
DATABASE = "database"
LISTS = ("references", "after-point", "filled", "missing")
DIR_MODE = stat.S_IFDIR | 0o755


def group_snapshots(snaps: list[Snapshot], name: str | None = None) -> list[Snapshot]:
    """Group snapshots (of group `name`), oldest first. Here, not beside group_backup:
    forget, copy and the retention of points need it without the database clients."""
    return [s for s in snaps if s.source.get("kind") == KIND
            and (name is None or s.source.get("group") == name)]


def parts_of(path: str) -> tuple[str, ...]:
    return tuple(p for p in posixpath.normpath(path).split("/") if p)


class TreeReader:
    """Looks nodes up by absolute path, loading each tree once."""

    def __init__(self, repo: SnapshotRepo, root: bytes) -> None:
        self.repo = repo
        self.root = root
        self._trees: dict[bytes, dict[str, Node]] = {}

    def children(self, tree: bytes) -> dict[str, Node]:
        if tree not in self._trees:
            self._trees[tree] = {n.name: n for n in load_tree(self.repo, tree)}
        return self._trees[tree]

    def node(self, path: str) -> Node | None:
        tree: bytes | None = self.root
        found: Node | None = None
        for part in parts_of(path):
            if tree is None:
                return None
            found = self.children(tree).get(part)
            if found is None:
                return None
            tree = found.subtree if found.type == "dir" else None
        return found

    def files_under(self, path: str) -> Iterator[tuple[str, Node]]:
        """(path relative to `path`, node) of every regular file below it."""
        top = self.node(path)
        if top is None or top.type != "dir" or top.subtree is None:
            return
        stack: list[tuple[str, bytes]] = [("", top.subtree)]
        while stack:
            prefix, tree = stack.pop()
            for node in load_tree(self.repo, tree):  # not cached: a walk reads each once
                rel = f"{prefix}{node.name}"
                if node.type == "dir" and node.subtree is not None:
                    stack.append((rel + "/", node.subtree))
                elif node.type == "file":
                    yield rel, node


def graft(repo: SnapshotRepo, tree: bytes | None,
          additions: dict[tuple[str, ...], Node]) -> bytes:
    """`tree` (None: an empty directory) with each node of `additions` placed at its
    path (parts), directories made as needed; an entry already there is kept (the scan's
    copy wins). The new trees are saved, not flushed: flush before reading them."""
    if not additions and tree is not None:
        return tree
    nodes = {} if tree is None else {n.name: n for n in load_tree(repo, tree)}
    below: dict[str, dict[tuple[str, ...], Node]] = {}
    for parts, node in additions.items():
        if len(parts) == 1:
            nodes.setdefault(parts[0], replace(node, name=parts[0]))
        else:
            below.setdefault(parts[0], {})[parts[1:]] = node
    for name, sub in below.items():
        existing = nodes.get(name)
        if existing is not None and existing.type != "dir":
            continue  # a file where the path needs a directory: the scan's file wins
        if existing is None:
            nodes[name] = Node(name=name, type="dir", mode=DIR_MODE, subtree=graft(repo, None,
                                                                                 sub))
        else:
            nodes[name] = replace(existing, subtree=graft(repo, existing.subtree, sub))
    return save_tree(repo, sorted(nodes.values(), key=lambda n: n.name))


def list_node(repo: Repository, name: str, lines: Iterable[str], progress: Progress) -> Node:
    from medark.engine.backup_stdin import backup_stream  # writers only: forget reads

    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    node, _counts = backup_stream(repo, io.BytesIO(data), name, progress=progress)
    return node


def read_list(repo: SnapshotRepo, group_tree: bytes, name: str) -> list[str]:
    node = next((n for n in load_tree(repo, group_tree) if n.name == name), None)
    if node is None:
        raise RepositoryCorrupt(f"the group's tree has no {name!r} list")
    data = b"".join(repo.load_blob(blob) for blob in node.content)
    return [line for line in data.decode("utf-8").split("\n") if line]


def files_tree(repo: SnapshotRepo, group_tree: bytes) -> bytes:
    node = next((n for n in load_tree(repo, group_tree) if n.name == FILES), None)
    if node is None or node.subtree is None:
        raise RepositoryCorrupt("the group's tree has no files directory")
    return node.subtree


def database_node(repo: Repository, copy: str, name: str, progress: Progress) -> Node:
    """`database/NAME` holding the file `copy`, streamed (an index of gigabytes is never
    read into memory)."""
    from medark.engine.backup_stdin import backup_stream  # writers only: forget reads

    with open(copy, "rb") as stream:
        node, _counts = backup_stream(repo, stream, name, progress=progress)
    return Node(name=DATABASE, type="dir", mode=DIR_MODE, subtree=save_tree(repo, [node]))


def database_file(repo: SnapshotRepo, group_tree: bytes) -> Node:
    """The copied index of a point on SQLite (the one file under database/)."""
    node = next((n for n in load_tree(repo, group_tree) if n.name == DATABASE), None)
    files = [] if node is None or node.subtree is None else [
        n for n in load_tree(repo, node.subtree) if n.type == "file"]
    if len(files) != 1:
        raise RepositoryCorrupt("the group's tree has no database/ file (the copy of its "
                                "SQLite index)")
    return files[0]
