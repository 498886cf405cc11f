"""Ransomware detection: is a backup's change far outside its source's own baseline?

Pure (docs/architecture.md, conventions 7 and 8): the backup engine hands in the change
statistics it recorded and the summaries of earlier snapshots of the same host and paths;
this module returns the verdict and the reasons. docs/ransomware-detection.md states the
rule for operators.

Three signals, each a share of the files the parent snapshot had (`files_before` =
unmodified + changed + deleted):

* **encrypted rewrites**: changed files whose new content looks encrypted, plus deleted
  files replaced by new files that look encrypted (min(deleted, new encrypted-looking
  files)), i.e. encryption in place and encryption into a new file;
* **extension renames**: new files whose name is a deleted sibling's name with another
  extension (``report.pdf`` -> ``report.pdf.locked`` or ``report.enc``);
* **mass deletions**: deleted files that neither signal above explains (a wiper, an
  attacker or a script deleting the data, or a storage mount gone empty under a backup).

A signal trips when its file count reaches `min_files`, its share reaches `min_share`
(`deletion_share` for mass deletions: archiving old files is ordinary work), and its
share is at least `factor` times the median of the same share over the last `history`
unflagged snapshots of the source. Hospital data has naturally high-entropy
content (DICOM with JPEG 2000, zip, media), so new files alone never count: a PACS that
adds compressed studies every day stays quiet; one that rewrites its existing files does
not. A snapshot without a parent has no change to judge and is never flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medark.errors import UsageError
from medark.snapshot.model import Snapshot

SUMMARY_KEY = "anomaly"
"""Where a snapshot's verdict lives in its summary."""


@dataclass(frozen=True)
class Thresholds:
    min_share: float = 0.10
    """A signal must reach this share of the source's files (0..1)."""
    factor: float = 5.0
    """... and this multiple of its baseline (the median over recent snapshots)."""
    min_files: int = 10
    """... and involve at least this many files."""
    history: int = 10
    """How many recent unflagged snapshots form the baseline."""
    deletion_share: float = 0.30
    """The mass-deletion signal's own floor, instead of `min_share` (0..1)."""

    def __post_init__(self) -> None:
        if self.min_share <= 0 or self.deletion_share <= 0:
            raise UsageError("the anomaly share threshold must be above 0 (e.g. 0.1 or 10%)")
        if self.factor < 1:
            raise UsageError("the anomaly factor must be at least 1")
        if self.min_files < 1:
            raise UsageError("the anomaly minimum file count must be at least 1")
        if self.history < 1:
            raise UsageError("the anomaly history must be at least 1 snapshot")


def parse_share(text: str) -> float:
    """'0.1' or '10%' -> 0.1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"invalid share {text!r}: use a fraction (0.1) or a percentage "
                         "(10%)") from None
    if value <= 0:
        raise UsageError(f"invalid share {text!r}: must be above 0")
    return value


def thresholds_from(values: Mapping[str, str | None]) -> Thresholds:
    """Thresholds from option/environment strings (None: the default)."""
    base = Thresholds()

    def number(key: str, kind: type[int] | type[float], default: float) -> Any:
        text = values.get(key)
        if text is None:
            return default
        try:
            return kind(text)
        except ValueError:
            raise UsageError(f"invalid anomaly {key.replace('_', '-')} {text!r}") from None

    share = values.get("min_share")
    deletions = values.get("deletion_share")
    return Thresholds(
        min_share=parse_share(share) if share is not None else base.min_share,
        deletion_share=(parse_share(deletions) if deletions is not None
                        else base.deletion_share),
        factor=number("factor", float, base.factor),
        min_files=number("min_files", int, base.min_files),
        history=number("history", int, base.history),
    )


@dataclass(frozen=True)
class Signal:
    name: str
    label: str
    count: int
    share: float
    baseline: float
    tripped: bool


@dataclass(frozen=True)
class Verdict:
    suspicious: bool
    reasons: tuple[str, ...]
    signals: tuple[Signal, ...]
    history: int
    """How many earlier snapshots formed the baseline."""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"suspicious": self.suspicious, "reasons": list(self.reasons),
                               "history": self.history}
        for s in self.signals:
            doc[s.name] = {"files": s.count, "share": round(s.share, 4),
                           "baseline": round(s.baseline, 4)}
        return doc


def _int(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key, 0)
    return value if isinstance(value, int) else 0


def files_before(stats: Mapping[str, Any]) -> int:
    return sum(_int(stats, k) for k in ("files_unmodified", "files_changed", "files_deleted"))


def signal_counts(stats: Mapping[str, Any]) -> dict[str, int]:
    """File counts of each signal, from a snapshot summary with change statistics."""
    deleted = _int(stats, "files_deleted")
    replaced = min(deleted, _int(stats, "files_new_encrypted"))
    renamed = _int(stats, "files_ext_renamed")
    return {
        "encrypted_rewrites": _int(stats, "files_changed_encrypted") + replaced,
        "extension_renames": renamed,
        "mass_deletions": max(0, deleted - replaced - renamed),
    }


_LABELS = {"encrypted_rewrites": "files rewritten with encrypted-looking content",
           "extension_renames": "files renamed to another extension",
           "mass_deletions": "files deleted"}


def has_change_stats(stats: Mapping[str, Any]) -> bool:
    return "files_deleted" in stats and "files_changed_encrypted" in stats


def shares(stats: Mapping[str, Any]) -> dict[str, float] | None:
    """Each signal as a share of the files before; None when there was nothing before."""
    before = files_before(stats)
    if not has_change_stats(stats) or before == 0:
        return None
    return {name: count / before for name, count in signal_counts(stats).items()}


def is_flagged(summary: Mapping[str, Any]) -> bool:
    verdict = summary.get(SUMMARY_KEY)
    return isinstance(verdict, Mapping) and bool(verdict.get("suspicious"))


def assess(current: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
           thresholds: Thresholds) -> Verdict:
    """The verdict on `current` (a backup's change statistics) given the summaries of
    earlier snapshots of the same source, oldest first."""
    from statistics import median  # here: 2 ms of every command's start otherwise

    now = shares(current)
    if now is None:
        return Verdict(False, ("no earlier files to compare with",), (), 0)
    baseline_rows = [s for s in (shares(h) for h in history if not is_flagged(h))
                     if s is not None][-thresholds.history:]
    counts = signal_counts(current)
    signals = []
    reasons = []
    for name, share in now.items():
        base = median(r[name] for r in baseline_rows) if baseline_rows else 0.0
        floor = (thresholds.deletion_share if name == "mass_deletions"
                 else thresholds.min_share)
        tripped = (counts[name] >= thresholds.min_files and share >= floor
                   and share >= thresholds.factor * base)
        signals.append(Signal(name, _LABELS[name], counts[name], share, base, tripped))
        if tripped:
            reasons.append(f"{counts[name]} {_LABELS[name]} ({share:.0%} of "
                           f"{files_before(current)} files; baseline {base:.1%})")
    if reasons:
        unseen = _int(current, "files_unseen_ext")
        if unseen:
            reasons.append(f"{unseen} new files with extensions this source never had")
    return Verdict(bool(reasons), tuple(reasons), tuple(signals), len(baseline_rows))


# ---- what retention and `snapshots --clean` need -------------------------------------

def _group_key(snap: Snapshot) -> tuple[str, tuple[str, ...]]:
    return (snap.hostname, tuple(sorted(snap.paths)))


def _by_group(snaps: Iterable[Snapshot]) -> dict[tuple[str, tuple[str, ...]], list[Snapshot]]:
    groups: dict[tuple[str, tuple[str, ...]], list[Snapshot]] = {}
    for snap in sorted(snaps, key=lambda s: (s.time, s.id)):
        groups.setdefault(_group_key(snap), []).append(snap)
    return groups


def recovery_candidates(snaps: Iterable[Snapshot]) -> list[Snapshot]:
    """Per host and paths, the unflagged snapshots a restore can trust, oldest first.

    Snapshots taken after a flagged one build on its (possibly encrypted) files and would
    look normal, so once a source has a flagged snapshot only the unflagged snapshots
    older than its newest flagged one are candidates."""
    out: list[Snapshot] = []
    for members in _by_group(snaps).values():
        flagged = [i for i, s in enumerate(members) if is_flagged(s.summary)]
        usable = members[:flagged[-1]] if flagged else members
        out.extend(s for s in usable if not is_flagged(s.summary))
    return sorted(out, key=lambda s: (s.time, s.id))


def retention_holds(snaps: Iterable[Snapshot]) -> dict[str, str]:
    """Snapshot id -> keep reason, for retention: each flagged snapshot (the evidence, and
    what keeps the protection in place) and, per flagged snapshot, the newest unflagged
    snapshot of the same host and paths older than it (the last known-good state). Both
    stay until the flagged snapshot is forgotten by id."""
    keep: dict[str, str] = {}
    for members in _by_group(snaps).values():
        clean: Snapshot | None = None
        for snap in members:
            if not is_flagged(snap.summary):
                clean = snap
                continue
            keep[snap.id] = "flagged as suspicious (forget it by id once resolved)"
            if clean is not None:
                keep.setdefault(clean.id, f"last clean before suspicious {snap.short_id}")
    return keep
