"""Exclusion rules with restic's meaning: a pattern without '/' matches a name at any
depth; a pattern with '/' matches the absolute path (or a parent of it); '**' spans
directories; a leading '!' re-includes."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from medark.errors import UsageError


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern.rstrip("/")))


@dataclass
class Excluder:
    rules: list[tuple[bool, bool, re.Pattern[str]]] = field(default_factory=list)
    """(negated, matches full path, regex)."""

    @classmethod
    def from_options(cls, patterns: list[str], files: list[str]) -> Excluder:
        all_patterns = list(patterns)
        for name in files:
            try:
                lines = Path(name).read_text().splitlines()
            except OSError as exc:
                raise UsageError(f"cannot read exclude file {name}: {exc.strerror}") from None
            all_patterns += [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        ex = cls()
        for pattern in all_patterns:
            negated = pattern.startswith("!")
            body = pattern[1:] if negated else pattern
            ex.rules.append((negated, "/" in body.rstrip("/"), _compile(body)))
        return ex

    def excluded(self, path: str) -> bool:
        if not self.rules:
            return False
        name = path.rsplit("/", 1)[-1]
        result = False
        for negated, full, regex in self.rules:
            if regex.match(path if full else name):
                result = not negated
        return result
