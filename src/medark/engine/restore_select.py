"""Which nodes of a snapshot a restore takes: restic's --include/--exclude rules.

A pattern is matched against the full path in the snapshot, component by component
with fnmatch semantics (`*` never crosses a `/`, `**` spans any number of components).
A pattern that starts with `/` is anchored at the root; any other pattern may match at
any depth. A pattern matches a path when it matches the path or one of its ancestors,
so an included or excluded directory takes its whole subtree along (as in restic).
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from medark.errors import UsageError
from medark.snapshot.model import Node
from medark.snapshot.store import SnapshotRepo, load_tree


@dataclass(frozen=True)
class Pattern:
    text: str
    parts: tuple[str, ...]
    anchored: bool

    @classmethod
    def parse(cls, text: str) -> Pattern:
        if not text or "\0" in text:
            raise UsageError(f"invalid pattern {text!r}: empty or contains a NUL byte")
        parts = tuple(p for p in text.split("/") if p and p != ".")
        return cls(text, parts, text.startswith("/"))

    def matches(self, comps: Sequence[str]) -> bool:
        """Whether the pattern matches the path (given as components) or an ancestor."""
        if not self.parts:
            return True  # "/" matches everything
        if self.anchored:
            return _match_prefix(self.parts, comps, 0)
        return any(_match_prefix(self.parts, comps, i) for i in range(len(comps)))

    def may_match_below(self, comps: Sequence[str]) -> bool:
        """Whether some path below directory `comps` could match (to prune the walk)."""
        if not self.anchored:
            return True
        for i, part in enumerate(self.parts):
            if part == "**":
                return True
            if i >= len(comps):
                return True
            if not fnmatchcase(comps[i], part):
                return False
        return False  # the pattern is no longer than comps and did not match


def _match_prefix(parts: tuple[str, ...], comps: Sequence[str], start: int) -> bool:
    """Whether `parts` match comps[start:start+k] for some k (trailing components free)."""
    if not parts:
        return True
    head = parts[0]
    if head == "**":
        rest = parts[1:]
        return any(_match_prefix(rest, comps, i) for i in range(start, len(comps) + 1))
    if start >= len(comps) or not fnmatchcase(comps[start], head):
        return False
    return _match_prefix(parts[1:], comps, start + 1)


class PathFilter:
    """Include and exclude patterns; with no includes everything not excluded is taken."""

    def __init__(self, includes: Sequence[str] = (), excludes: Sequence[str] = ()) -> None:
        self.includes = [Pattern.parse(p) for p in includes]
        self.excludes = [Pattern.parse(p) for p in excludes]

    @property
    def selective(self) -> bool:
        return bool(self.includes or self.excludes)

    def excluded(self, comps: Sequence[str]) -> bool:
        return any(p.matches(comps) for p in self.excludes)

    def included(self, comps: Sequence[str]) -> bool:
        return not self.includes or any(p.matches(comps) for p in self.includes)

    def may_include_below(self, comps: Sequence[str]) -> bool:
        return any(p.may_match_below(comps) for p in self.includes)


@dataclass
class Selected:
    path: str
    """Absolute path in the snapshot ('/data/pacs/x.dcm')."""
    node: Node
    depth: int
    """1 for a node of the root tree."""


def valid_name(name: str) -> bool:
    """A node name that cannot escape its directory (a damaged or hostile tree)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def select(repo: SnapshotRepo, tree_id: bytes, flt: PathFilter,
           bad_name: list[str] | None = None, skip: Container[str] = ()
           ) -> Iterator[Selected]:
    """Selected nodes, parents before children. A directory that is not itself selected
    is yielded just before the first selected node below it (so it gets created), or not
    at all. Nodes with unsafe names, and a name's repeats in one directory, are skipped
    (with everything below them) and listed in `bad_name`. Paths in `skip` are left out
    with everything below them (another process restores them)."""
    yield from _select(repo, tree_id, (), flt, False, [], bad_name, skip)


def select_below(repo: SnapshotRepo, top: Selected, flt: PathFilter,
                 bad_name: list[str] | None = None) -> Iterator[Selected]:
    """A selected directory, then every selected node below it."""
    yield top
    if top.node.subtree is not None:
        comps = tuple(top.path.strip("/").split("/"))
        yield from _select(repo, top.node.subtree, comps, flt, True, [], bad_name, ())


def _select(repo: SnapshotRepo, tree_id: bytes, comps: tuple[str, ...], flt: PathFilter,
            inside: bool, pending: list[Selected],
            bad_name: list[str] | None, skip: Container[str]) -> Iterator[Selected]:
    seen: set[str] = set()
    for node in load_tree(repo, tree_id):
        if not valid_name(node.name) or node.name in seen:
            # A repeated name is how a tree would put a symlink and a directory (with
            # entries to write through the link) at one path: the first one wins.
            if bad_name is not None:
                bad_name.append("/" + "/".join((*comps, repr(node.name))))
            continue
        seen.add(node.name)
        here = (*comps, node.name)
        if flt.excluded(here):
            continue
        chosen = inside or flt.included(here)
        entry = Selected("/" + "/".join(here), node, len(here))
        if skip and entry.path in skip:
            continue
        if chosen:
            yield from pending
            pending.clear()
            yield entry
        if node.type != "dir" or node.subtree is None:
            continue
        if chosen:
            yield from _select(repo, node.subtree, here, flt, True, pending, bad_name, skip)
        elif flt.may_include_below(here):
            pending.append(entry)
            yield from _select(repo, node.subtree, here, flt, False, pending, bad_name, skip)
            if pending and pending[-1] is entry:
                pending.pop()
