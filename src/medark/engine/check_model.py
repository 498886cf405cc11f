"""What `check` is asked and what it answers: options, problems, damage, the summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from medark.errors import UsageError

# ---- options ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSubset:
    """Which packs to read in full: all, group n of t (by pack id), or a random percentage."""

    n: int = 1
    t: int = 1
    percent: float | None = None

    def describe(self) -> str:
        if self.percent is not None:
            return f"read {self.percent:g}% of data packs"
        if self.t == 1:
            return "read all data"
        return f"read group #{self.n} of {self.t} data packs"

    def in_group(self, pack_id: bytes) -> bool:
        return int.from_bytes(pack_id[:4], "big") % self.t == self.n - 1


ALL_DATA = DataSubset()


def parse_subset(text: str) -> DataSubset:
    """'N%' (a random N percent of the packs) or 'n/t' (group n of t, by pack id)."""
    text = text.strip()
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            percent = math.nan
        if not 0 < percent <= 100:
            raise UsageError(f"--read-data-subset {text!r}: the percentage must be in (0, 100]")
        return DataSubset(percent=percent)
    n, sep, t = text.partition("/")
    if sep and n.isdigit() and t.isdigit() and 1 <= int(n) <= int(t):
        return DataSubset(n=int(n), t=int(t))
    raise UsageError(f"--read-data-subset {text!r}: use N% or n/t (e.g. 10% or 2/5)")


@dataclass(frozen=True)
class CheckOptions:
    read_data: DataSubset | None = None
    """None: structure only (pack headers from their tails)."""
    workers: int = 0
    """Threads reading packs; 0 picks one per core (at least 2)."""


# ---- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str
    """config, key, index, pack, snapshot, tree, blob, hold (marker) or lock."""
    object: str
    """The damaged object: a storage name (data/…, index/…, snapshots/…, keys/…) or a blob id."""
    message: str
    error: bool = True
    """False for a note: harmless (an unindexed pack left by an interrupted backup)."""

    def public(self) -> dict[str, Any]:
        return {"kind": self.kind, "object": self.object, "message": self.message}


@dataclass(frozen=True)
class Damage:
    """One damaged or missing blob and one place that uses it."""

    pack: str | None
    """Hex pack id; None when no index file lists the blob."""
    blob: str
    snapshot: str | None
    """Short id of an affected snapshot; None when no snapshot uses the blob."""
    path: str | None

    def public(self) -> dict[str, Any]:
        return {"pack": self.pack, "blob": self.blob, "snapshot": self.snapshot,
                "path": self.path}


@dataclass
class CheckStats:
    index_files: int = 0
    packs: int = 0
    blobs: int = 0
    snapshots: int = 0
    trees: int = 0
    packs_read: int = 0
    bytes_read: int = 0


@dataclass
class CheckResult:
    errors: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    broken_packs: list[str] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)
    stats: CheckStats = field(default_factory=CheckStats)
    read_data: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        """The --json document; restic's field names where restic has them."""
        s = self.stats
        return {
            "message_type": "summary",
            "num_errors": len(self.errors),
            "broken_packs": self.broken_packs,
            "damaged": [d.public() for d in self.damaged],
            "unreferenced_packs": self.unreferenced_packs,
            "suggest_prune": bool(self.unreferenced_packs)
            and not any(p.kind == "index" for p in self.errors),
            "errors": [p.public() for p in self.errors],
            "notes": [p.public() for p in self.notes],
            "read_data": self.read_data,
            "index_files": s.index_files,
            "packs": s.packs,
            "blobs": s.blobs,
            "snapshots": s.snapshots,
            "trees": s.trees,
            "packs_read": s.packs_read,
            "bytes_read": s.bytes_read,
        }
