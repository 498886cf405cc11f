"""Where a key lives in a TOML file, so a message can say file:line.

tomllib returns values without positions. This scans the text the way a reader looks for
a key: table headers (`[plans.his]`, `[[systems.pacs.sources]]`, counting array tables),
then `key = ...` and dotted `a.b = ...` lines inside them. A path inside an inline table
or a multi-line value resolves to the line of the nearest key that encloses it; a key
that is absent (a missing required field) to its table's header.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
                  r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _parts(dotted: str) -> list[str]:
    return [p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(dotted)]


class KeyLines:
    def __init__(self, text: str) -> None:
        self._lines: dict[Path, int] = {}
        arrays: dict[Path, int] = {}
        table: Path = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                path: Path = tuple(_parts(header.group(2)))
                if header.group(1) == "[[":
                    index = arrays.get(path, -1) + 1
                    arrays[path] = index
                    self._lines.setdefault(path, number)
                    path = (*path, index)
                table = path
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self._lines.setdefault((*table, *_parts(key.group(1))), number)

    def line(self, path: Path) -> int | None:
        """The line of the longest prefix of `path` that the file spells out."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None
