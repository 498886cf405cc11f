"""The progress interface engines report to; the CLI draws it, tests count it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    @property
    def wants_total(self) -> bool:
        """True when totals are shown (an ETA), so engines may estimate them."""
        ...

    def set_total(self, files: int | None, nbytes: int | None) -> None: ...

    def advance(self, files: int = 0, nbytes: int = 0) -> None: ...

    def warn(self, text: str) -> None:
        """A problem that does not stop the command (an unreadable file, a stale lock)."""
        ...


class NullProgress:
    wants_total = False

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def set_total(self, files: int | None, nbytes: int | None) -> None:
        return None

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        return None

    def warn(self, text: str) -> None:
        self.warnings.append(text)
