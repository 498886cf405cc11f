"""Finding files by glob across snapshots (`find`).

Consecutive snapshots share most of their directories (same tree id), so the matches of
each tree are remembered by id: a directory that appears in a hundred snapshots is loaded
and searched once. Patterns that look at whole paths (they contain '/') depend on where a
tree sits, so for those the memo key is (tree id, path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from medark.engine.listing import TreeSource, join, load_nodes
from medark.errors import UsageError
from medark.snapshot.model import Node

_NONE: tuple[tuple[str, Node], ...] = ()


def _match_parts(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Component-wise glob: '*' stays inside one name, '**' spans any number of them."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match_parts(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _match_parts(
        pattern[1:], parts[1:]
    )


@dataclass(frozen=True)
class Pattern:
    """A glob matched against a node's name; with a '/', against its path (anchored at the
    root when it starts with '/', otherwise against the path's last components)."""

    text: str
    ignore_case: bool = False

    def __post_init__(self) -> None:
        if not self.text.strip("/"):
            raise UsageError(f"empty find pattern {self.text!r}")

    @property
    def uses_path(self) -> bool:
        return "/" in self.text

    def matches(self, name: str, path: str) -> bool:
        pattern = self.text.lower() if self.ignore_case else self.text
        if self.ignore_case:
            name, path = name.lower(), path.lower()
        if not self.uses_path:
            return fnmatchcase(name, pattern)
        parts = [p for p in path.split("/") if p]
        wanted = [p for p in pattern.split("/") if p]
        if not pattern.startswith("/"):
            wanted = ["**", *wanted]
        return _match_parts(wanted, parts)


class Finder:
    """Matches of `patterns` below a root tree; the memo lives as long as the Finder."""

    def __init__(self, repo: TreeSource, patterns: list[str], ignore_case: bool = False) -> None:
        if not patterns:
            raise UsageError("give at least one pattern to find")
        self.repo = repo
        self.patterns = [Pattern(p, ignore_case) for p in patterns]
        self._by_path = any(p.uses_path for p in self.patterns)
        self._memo: dict[bytes | tuple[bytes, str], tuple[tuple[str, Node], ...]] = {}
        self.trees_loaded = 0

    def find(self, root: bytes) -> list[tuple[str, Node]]:
        """(absolute path, node) of every match, parents before children."""
        return [("/" + rel, node) for rel, node in self._search(root, "/")]

    def _search(self, tree_id: bytes, prefix: str) -> tuple[tuple[str, Node], ...]:
        key: bytes | tuple[bytes, str] = (tree_id, prefix) if self._by_path else tree_id
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        self.trees_loaded += 1
        found: list[tuple[str, Node]] = []
        for node in load_nodes(self.repo, tree_id):
            path = join(prefix, node.name)
            if any(p.matches(node.name, path) for p in self.patterns):
                found.append((node.name, node))
            if node.type == "dir" and node.subtree is not None:
                found.extend(
                    (node.name + "/" + rel, n) for rel, n in self._search(node.subtree, path)
                )
        result = tuple(found) if found else _NONE
        self._memo[key] = result
        return result
