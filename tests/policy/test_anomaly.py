"""Ransomware detection policy: verdicts against the source's own baseline, and what
retention and `snapshots --clean` derive from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from medark.errors import UsageError
from medark.policy.anomaly import (
    SUMMARY_KEY,
    Thresholds,
    assess,
    is_flagged,
    parse_share,
    recovery_candidates,
    retention_holds,
    thresholds_from,
)
from medark.policy.retention import RetentionPolicy, apply_policy
from medark.snapshot.model import Snapshot

DEFAULT = Thresholds()


def stats(files: int = 1000, changed: int = 0, deleted: int = 0, new: int = 0,
          changed_enc: int = 0, new_enc: int = 0, renamed: int = 0,
          unseen: int = 0, flagged: bool | None = None) -> dict[str, Any]:
    """A summary of a backup of `files` files the parent had."""
    doc: dict[str, Any] = {
        "files_new": new, "files_changed": changed, "files_deleted": deleted,
        "files_unmodified": files - changed - deleted,
        "files_changed_encrypted": changed_enc, "files_new_encrypted": new_enc,
        "files_ext_renamed": renamed, "files_unseen_ext": unseen,
    }
    if flagged is not None:
        doc[SUMMARY_KEY] = {"suspicious": flagged}
    return doc


DAILY = [stats(changed=10, changed_enc=3, new=5, new_enc=5) for _ in range(7)]


def test_one_percent_daily_change_is_quiet() -> None:
    verdict = assess(stats(changed=10, changed_enc=4, new=20, new_enc=20), DAILY, DEFAULT)
    assert not verdict.suspicious and verdict.reasons == ()
    assert verdict.history == 7


def test_thirty_percent_encrypted_in_place_flags() -> None:
    verdict = assess(stats(changed=300, changed_enc=300), DAILY, DEFAULT)
    assert verdict.suspicious
    assert "300 files rewritten with encrypted-looking content" in verdict.reasons[0]
    assert "30%" in verdict.reasons[0]
    doc = verdict.to_dict()
    assert doc["suspicious"] and doc["encrypted_rewrites"]["files"] == 300


def test_encrypted_copies_replacing_deleted_originals_flag() -> None:
    current = stats(deleted=300, new=300, new_enc=300, renamed=300, unseen=300)
    verdict = assess(current, DAILY, DEFAULT)
    assert verdict.suspicious
    joined = " ".join(verdict.reasons)
    assert "rewritten" in joined and "renamed to another extension" in joined
    assert "300 new files with extensions this source never had" in joined


def test_new_compressed_files_alone_never_flag() -> None:
    """A PACS adding 40% more compressed studies in a day: new files do not count."""
    assert not assess(stats(new=400, new_enc=400), DAILY, DEFAULT).suspicious


def test_plain_text_rewrite_does_not_flag() -> None:
    """A bulk edit of text files changes many files, but nothing looks encrypted."""
    assert not assess(stats(changed=500, changed_enc=0), DAILY, DEFAULT).suspicious


def test_baseline_of_a_busy_source_raises_the_bar() -> None:
    """A source that routinely rewrites 8% of its files with compressed content: 20% is
    not 5 times its baseline, 45% is."""
    busy = [stats(changed=80, changed_enc=80) for _ in range(10)]
    assert not assess(stats(changed=200, changed_enc=200), busy, DEFAULT).suspicious
    verdict = assess(stats(changed=450, changed_enc=450), busy, DEFAULT)
    assert verdict.suspicious and "baseline 8.0%" in verdict.reasons[0]


def test_flagged_snapshots_do_not_enter_the_baseline() -> None:
    history = [*DAILY, stats(changed=900, changed_enc=900, flagged=True)]
    verdict = assess(stats(changed=300, changed_enc=300), history, DEFAULT)
    assert verdict.suspicious and verdict.history == 7


def test_history_is_limited_to_the_newest_n() -> None:
    old_busy = [stats(changed=500, changed_enc=500) for _ in range(10)]
    quiet = [stats() for _ in range(3)]
    current = stats(changed=300, changed_enc=300)
    assert not assess(current, old_busy + quiet, DEFAULT).suspicious  # median is busy
    assert assess(current, old_busy + quiet, Thresholds(history=3)).suspicious


def test_no_history_uses_the_absolute_floors() -> None:
    assert assess(stats(changed=300, changed_enc=300), [], DEFAULT).suspicious
    assert not assess(stats(changed=50, changed_enc=50), [], DEFAULT).suspicious


def test_first_backup_is_never_flagged() -> None:
    first = stats(files=0, new=1000, new_enc=1000)
    verdict = assess(first, [], DEFAULT)
    assert not verdict.suspicious and verdict.reasons == ("no earlier files to compare with",)


def test_small_trees_need_min_files() -> None:
    assert not assess(stats(files=20, changed=8, changed_enc=8), [], DEFAULT).suspicious
    assert assess(stats(files=20, changed=8, changed_enc=8), [],
                  Thresholds(min_files=5)).suspicious


def test_summaries_without_change_statistics_are_ignored() -> None:
    history = [{"files_new": 3}, *DAILY]
    assert assess(stats(changed=300, changed_enc=300), history, DEFAULT).history == 7
    assert not assess({"files_new": 1}, DAILY, DEFAULT).suspicious


def test_mass_deletion_flags_beyond_its_own_floor() -> None:
    verdict = assess(stats(deleted=400), DAILY, DEFAULT)
    assert verdict.suspicious and verdict.reasons[0].startswith("400 files deleted (40%")
    assert verdict.to_dict()["mass_deletions"]["files"] == 400
    assert not assess(stats(deleted=200), DAILY, DEFAULT).suspicious  # archiving 20 %
    assert assess(stats(deleted=200), DAILY, Thresholds(deletion_share=0.15)).suspicious
    busy = [stats(deleted=150) for _ in range(5)]  # a store that purges a lot each day
    assert not assess(stats(deleted=400), busy, DEFAULT).suspicious


def test_deletions_explained_by_encryption_or_renames_count_once() -> None:
    into_new_files = assess(stats(deleted=400, new=400, new_enc=400), DAILY, DEFAULT)
    signals = {s.name: s for s in into_new_files.signals}
    assert signals["encrypted_rewrites"].tripped and signals["mass_deletions"].count == 0
    renamed = assess(stats(deleted=400, new=400, renamed=400), DAILY, DEFAULT)
    assert {s.name: s.count for s in renamed.signals}["mass_deletions"] == 0


def test_thresholds_from_strings() -> None:
    assert thresholds_from({}) == Thresholds()
    got = thresholds_from({"min_share": "25%", "factor": "3", "min_files": "4",
                           "history": None, "deletion_share": "50%"})
    assert got == Thresholds(min_share=0.25, factor=3.0, min_files=4, history=10,
                             deletion_share=0.5)
    assert parse_share("0.2") == 0.2
    for bad in ({"min_share": "lots"}, {"min_share": "0"}, {"factor": "0.5"},
                {"min_files": "x"}, {"history": "0"}, {"deletion_share": "0"}):
        with pytest.raises(UsageError):
            thresholds_from(bad)


# ---- snapshots: recovery candidates and retention holds ------------------------------

T0 = datetime(2026, 11, 1, 2, tzinfo=UTC)


def snap(day: int, flagged: bool = False, host: str = "pacs1") -> Snapshot:
    summary: dict[str, Any] = {SUMMARY_KEY: {"suspicious": flagged}} if flagged else {}
    return Snapshot(time=T0 + timedelta(days=day), tree=bytes(32), paths=["/srv/pacs"],
                    hostname=host, summary=summary, id=f"{host}-{day:02d}-".ljust(64, "0"))


def test_recovery_candidates_stop_at_the_newest_flagged_snapshot() -> None:
    snaps = [snap(0), snap(1), snap(2, flagged=True), snap(3), snap(4, flagged=True),
             snap(5), snap(0, host="ris1"), snap(1, host="ris1")]
    got = ["-".join(s.id.split("-")[:2]) for s in recovery_candidates(snaps)]
    assert got == ["pacs1-00", "ris1-00", "pacs1-01", "ris1-01", "pacs1-03"]
    assert is_flagged(snaps[2].summary) and not is_flagged(snaps[3].summary)


def test_retention_holds_name_the_clean_predecessor_and_the_flagged() -> None:
    snaps = [snap(0), snap(1), snap(2, flagged=True), snap(3, flagged=True), snap(4)]
    holds = retention_holds(snaps)
    assert holds == {
        snaps[1].id: f"last clean before suspicious {snaps[2].short_id}",
        snaps[2].id: "flagged as suspicious (forget it by id once resolved)",
        snaps[3].id: "flagged as suspicious (forget it by id once resolved)",
    }


def test_forget_policy_never_removes_the_last_clean_snapshot() -> None:
    snaps = [snap(d) for d in range(5)] + [snap(5, flagged=True), snap(6), snap(7)]
    result = apply_policy(snaps, RetentionPolicy(last=2), T0 + timedelta(days=30))
    kept = {d.snapshot.id[:8]: d.reasons for d in result.keep}
    assert kept == {
        "pacs1-07": ("last snapshot",), "pacs1-06": ("last snapshot",),
        "pacs1-05": ("flagged as suspicious (forget it by id once resolved)",),
        "pacs1-04": (f"last clean before suspicious {snaps[5].short_id}",),
    }
    assert [d.snapshot.id[:8] for d in result.keep] == [
        "pacs1-07", "pacs1-06", "pacs1-05", "pacs1-04"]  # newest first
    assert [d.snapshot.id[:8] for d in result.remove] == [
        "pacs1-03", "pacs1-02", "pacs1-01", "pacs1-00"]


def test_forget_without_flagged_snapshots_is_restic_unchanged() -> None:
    snaps = [snap(d) for d in range(5)]
    result = apply_policy(snaps, RetentionPolicy(last=1), T0 + timedelta(days=30))
    assert [d.snapshot.id[:8] for d in result.keep] == ["pacs1-04"]
