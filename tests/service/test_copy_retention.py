"""The copy selection under a target's retention: copying what the retention keeps and then
forgetting at the target, pass after pass, never sends a snapshot twice; without the
selection, every point the target's forget removed would be sent again."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from medark.engine.copy import origin
from medark.policy.retention import RetentionPolicy, apply_policy, group_snapshots
from medark.service.copy import retained
from medark.snapshot.model import Snapshot

START = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
GROUPS = frozenset({"host", "paths"})


def _snap(n: int, host: str = "his-db") -> Snapshot:
    """The n-th hourly backup of a host, with a stable id."""
    return Snapshot(time=START + timedelta(hours=n), tree=b"", paths=["/data"],
                    hostname=host, tags=["plan=his"], id=f"{host}-{n:04d}")


def _copy_of(snap: Snapshot) -> Snapshot:
    return Snapshot(time=snap.time, tree=b"", paths=list(snap.paths), hostname=snap.hostname,
                    tags=list(snap.tags), original=origin(snap), id=f"copy-{snap.id}")


def _forget(there: list[Snapshot], policy: RetentionPolicy, now: datetime) -> list[Snapshot]:
    kept: list[Snapshot] = []
    for _key, group in group_snapshots(there, GROUPS):
        kept += apply_policy(group, policy, now).kept_snapshots
    return kept


def _passes(policy: RetentionPolicy, select: bool, hours: int = 72) -> tuple[Counter[str],
                                                                          list[Snapshot]]:
    """A local repository that keeps every hourly backup of two hosts, copied each hour
    and thinned at the target: how often each point was sent, and what the target holds."""
    source: list[Snapshot] = []
    there: list[Snapshot] = []
    sent: Counter[str] = Counter()
    for n in range(hours):
        source += [_snap(n), _snap(n, "pacs")]
        now = START + timedelta(hours=n, minutes=5)
        chosen = retained(source, there, policy, now) if select else list(source)
        have = {origin(s) for s in there}
        for snap in chosen:
            if origin(snap) not in have:
                there.append(_copy_of(snap))
                sent[snap.id] += 1
        there = _forget(there, policy, now)
    return sent, there


def test_a_point_the_targets_forget_removed_is_never_sent_again() -> None:
    policy = RetentionPolicy(daily=30, weekly=12)
    sent, there = _passes(policy, select=True)
    assert sent and max(sent.values()) == 1
    # the target holds what its retention keeps: the newest of each day per host, and the
    # oldest while counts are left
    days = {(s.hostname, s.time.date()) for s in there}
    assert len(there) == len(days) + 2
    assert {s.original for s in there} >= {_snap(71).id, _snap(71, "pacs").id}


def test_without_the_selection_forgotten_points_come_back() -> None:
    sent, _there = _passes(RetentionPolicy(daily=30, weekly=12), select=False, hours=6)
    assert max(sent.values()) > 1


def test_present_points_stay_chosen_and_missing_ones_follow_the_policy() -> None:
    source = [_snap(n) for n in range(5)]
    there = [_copy_of(source[0])]
    assert retained(source, there, RetentionPolicy(daily=1), START + timedelta(hours=6)) == \
        [source[0], source[4]]  # present, and the newest of the day
    assert [s.id for s in retained(source, there, RetentionPolicy(last=-1),
                                   START + timedelta(hours=6))] == [s.id for s in source]
