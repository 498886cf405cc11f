"""Retention policy: restic's ApplyPolicy semantics, in UTC, with reasons."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medark.errors import UsageError
from medark.policy.retention import (
    UNLIMITED,
    RetentionPolicy,
    Span,
    apply_policy,
    group_snapshots,
    parse_group_by,
    parse_taglist,
)
from medark.snapshot.model import Snapshot

NOW = datetime(2030, 1, 1, tzinfo=UTC)
_counter = iter(range(10**9))


def snap(when: str | datetime, tags: list[str] | None = None, host: str = "h",
         paths: list[str] | None = None) -> Snapshot:
    t = when if isinstance(when, datetime) else datetime.fromisoformat(when)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return Snapshot(time=t, tree=bytes(32), paths=paths or ["/data"], hostname=host,
                    tags=tags or [], id=f"{next(_counter):064x}")


def kept(snaps: list[Snapshot], policy: RetentionPolicy, now: datetime = NOW) -> list[str]:
    return [clock_text(d.snapshot) for d in apply_policy(snaps, policy, now).keep]


def clock_text(s: Snapshot) -> str:
    return s.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def reasons(snaps: list[Snapshot], policy: RetentionPolicy) -> dict[str, tuple[str, ...]]:
    return {clock_text(d.snapshot): d.reasons for d in apply_policy(snaps, policy, NOW).keep}


DAYS = [snap(f"2024-05-{d:02d}T{h:02d}:00:00") for d in range(1, 11) for h in (3, 15)]


def test_empty_policy_keeps_everything() -> None:
    result = apply_policy(DAYS, RetentionPolicy(), NOW)
    assert len(result.keep) == len(DAYS) and not result.remove
    assert all(d.reasons == ("policy is empty",) for d in result.keep)


def test_no_snapshots() -> None:
    result = apply_policy([], RetentionPolicy(last=3), NOW)
    assert result.keep == [] and result.remove == []


def test_keep_last_keeps_the_newest_n() -> None:
    assert kept(DAYS, RetentionPolicy(last=3)) == [
        "2024-05-10 15:00", "2024-05-10 03:00", "2024-05-09 15:00"]
    assert set(reasons(DAYS, RetentionPolicy(last=3)).values()) == {("last snapshot",)}


def test_unlimited_keeps_all() -> None:
    assert len(kept(DAYS, RetentionPolicy(last=UNLIMITED))) == len(DAYS)
    # one per day, plus the oldest (counts are never used up): restic's behaviour
    daily = kept(DAYS, RetentionPolicy(daily=UNLIMITED))
    assert len(daily) == 11 and daily[-2:] == ["2024-05-01 15:00", "2024-05-01 03:00"]


def test_keep_daily_keeps_newest_of_each_day() -> None:
    assert kept(DAYS, RetentionPolicy(daily=3)) == [
        "2024-05-10 15:00", "2024-05-09 15:00", "2024-05-08 15:00"]


def test_oldest_is_kept_while_counts_are_left() -> None:
    # restic: with too few buckets for the count, the oldest snapshot is kept too
    snaps = [snap("2024-05-01T03:00"), snap("2024-05-01T15:00"), snap("2024-05-02T10:00")]
    result = apply_policy(snaps, RetentionPolicy(daily=5), NOW)
    assert [clock_text(d.snapshot) for d in result.keep] == [
        "2024-05-02 10:00", "2024-05-01 15:00", "2024-05-01 03:00"]
    assert result.keep[-1].reasons == ("daily snapshot",)
    assert result.keep[-1].counters == {"daily": 2}


def test_oldest_is_not_kept_when_counts_are_used_up() -> None:
    snaps = [snap("2024-05-01T03:00"), snap("2024-05-01T15:00"), snap("2024-05-02T10:00")]
    assert kept(snaps, RetentionPolicy(daily=2)) == ["2024-05-02 10:00", "2024-05-01 15:00"]


def test_a_snapshot_counts_for_every_rule_it_satisfies() -> None:
    r = reasons(DAYS, RetentionPolicy(last=1, daily=2, weekly=1))
    assert r["2024-05-10 15:00"] == ("last snapshot", "daily snapshot", "weekly snapshot")
    assert r["2024-05-09 15:00"] == ("daily snapshot",)


def test_counters_report_what_is_left() -> None:
    result = apply_policy(DAYS, RetentionPolicy(last=2, daily=3), NOW)
    assert result.keep[0].counters == {"last": 1, "daily": 2}
    assert result.keep[1].counters == {"daily": 2}  # same day: only "last" counted


def test_hourly_buckets() -> None:
    snaps = [snap("2024-05-01T10:05"), snap("2024-05-01T10:55"), snap("2024-05-01T11:10")]
    assert kept(snaps, RetentionPolicy(hourly=2)) == ["2024-05-01 11:10", "2024-05-01 10:55"]


def test_weekly_uses_iso_weeks_across_the_year_boundary() -> None:
    # 2020-12-31 (Thu) and 2021-01-03 (Sun) are both in ISO week 2020-W53
    snaps = [snap("2020-12-28T12:00"), snap("2020-12-31T12:00"), snap("2021-01-03T12:00"),
             snap("2021-01-04T12:00")]
    assert kept(snaps, RetentionPolicy(weekly=2)) == ["2021-01-04 12:00", "2021-01-03 12:00"]


def test_monthly_and_yearly() -> None:
    snaps = [snap(f"{y}-{m:02d}-15T00:00") for y in (2022, 2023) for m in (1, 6, 12)]
    assert kept(snaps, RetentionPolicy(monthly=2)) == ["2023-12-15 00:00", "2023-06-15 00:00"]
    assert kept(snaps, RetentionPolicy(yearly=1)) == ["2023-12-15 00:00"]
    assert kept(snaps, RetentionPolicy(yearly=5)) == [
        "2023-12-15 00:00", "2022-12-15 00:00", "2022-01-15 00:00"]


def test_buckets_are_utc_days() -> None:
    east = timezone(timedelta(hours=8))
    # 01:00 at +08:00 on May 2 is 17:00 UTC on May 1: same UTC day as the 10:00Z snapshot
    snaps = [snap(datetime(2024, 5, 2, 1, 0, tzinfo=east)), snap("2024-05-01T10:00")]
    result = apply_policy(snaps, RetentionPolicy(daily=1), NOW)
    assert [clock_text(d.snapshot) for d in result.keep] == ["2024-05-01 17:00"]
    assert result.remove[0].reasons == ("daily: all 1 kept already",)


def test_keep_within_is_relative_to_the_newest_snapshot() -> None:
    policy = RetentionPolicy(within=Span.parse("2d"))
    # newest is 05-10 15:00; strictly newer than 05-08 15:00 stays
    assert kept(DAYS, policy) == [
        "2024-05-10 15:00", "2024-05-10 03:00", "2024-05-09 15:00", "2024-05-09 03:00"]
    assert set(reasons(DAYS, policy).values()) == {("within 2d",)}
    removed = apply_policy(DAYS, policy, NOW).remove
    assert removed[0].reasons == ("older than 2d before the newest snapshot",)


def test_keep_within_ignores_snapshots_from_the_future() -> None:
    future = snap("2024-06-01T00:00")
    snaps = [*DAYS, future]
    now = datetime(2024, 5, 20, tzinfo=UTC)
    got = kept(snaps, RetentionPolicy(within=Span.parse("1d")), now)
    assert got == ["2024-06-01 00:00", "2024-05-10 15:00", "2024-05-10 03:00"]


def test_keep_within_with_every_snapshot_in_the_future_keeps_all() -> None:
    now = datetime(2000, 1, 1, tzinfo=UTC)
    assert len(kept(DAYS, RetentionPolicy(within=Span.parse("1d")), now)) == len(DAYS)


def test_keep_within_daily() -> None:
    policy = RetentionPolicy(within_daily=Span.parse("3d"))
    r = reasons(DAYS, policy)
    assert list(r) == ["2024-05-10 15:00", "2024-05-09 15:00", "2024-05-08 15:00"]
    assert r["2024-05-09 15:00"] == ("daily within 3d",)


def test_keep_tag_needs_all_tags_of_one_list() -> None:
    snaps = [snap("2024-05-01T00:00", ["monthly", "audit"]), snap("2024-05-02T00:00", ["audit"]),
             snap("2024-05-03T00:00", ["daily"])]
    policy = RetentionPolicy(keep_tags=(("monthly", "audit"), ("daily",)))
    r = reasons(snaps, policy)
    assert r == {"2024-05-03 00:00": ("has tags [daily]",),
                 "2024-05-01 00:00": ("has tags [monthly, audit]",)}
    removed = apply_policy(snaps, policy, NOW).remove
    assert removed[0].reasons == ("has none of the kept tags",)


def test_tags_only_policy_may_remove_everything() -> None:
    result = apply_policy(DAYS, RetentionPolicy(keep_tags=(("x",),)), NOW)
    assert not result.keep and len(result.remove) == len(DAYS)


def test_removed_snapshots_explain_themselves() -> None:
    result = apply_policy(DAYS, RetentionPolicy(last=1, daily=2), NOW)
    why = {clock_text(d.snapshot): d.reasons for d in result.remove}
    assert why["2024-05-10 03:00"] == (
        "last: all 1 kept already", "daily: a newer snapshot of the same day is kept")


def test_input_order_does_not_matter() -> None:
    policy = RetentionPolicy(last=2, weekly=2)
    assert kept(list(reversed(DAYS)), policy) == kept(DAYS, policy)


def test_invalid_counts_are_rejected() -> None:
    with pytest.raises(UsageError, match="negative"):
        RetentionPolicy(daily=-2)


def test_durations_are_validated() -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        Span.parse("7 days")
    assert Span.parse("1y2m").delta == timedelta(days=425)
    assert not Span.parse("0d")


def test_describe() -> None:
    policy = RetentionPolicy(last=1, daily=7, monthly=UNLIMITED, within=Span.parse("2w"),
                             keep_tags=(("a", "b"),))
    assert policy.describe() == (
        "keep 1 latest, 7 daily, all monthly snapshots and all snapshots with tags [a, b] "
        "and all snapshots within 2w of the newest")
    assert RetentionPolicy(within_daily=Span.parse("7d")).describe() == (
        "keep daily snapshots within 7d")


def test_taglists() -> None:
    assert parse_taglist("a, b") == ("a", "b")
    with pytest.raises(UsageError):
        parse_taglist(",")


def test_group_by() -> None:
    assert parse_group_by("host,paths") == {"host", "paths"}
    assert parse_group_by("") == frozenset()
    assert parse_group_by("tag,path") == {"tags", "paths"}
    with pytest.raises(UsageError, match="unknown field"):
        parse_group_by("host,color")
    snaps = [snap("2024-01-01", host="b", paths=["/x", "/a"]),
             snap("2024-01-02", host="a", paths=["/a", "/x"]),
             snap("2024-01-03", host="a", paths=["/y"], tags=["t"])]
    groups = group_snapshots(snaps, parse_group_by("host,paths"))
    assert [(k.host, k.paths, k.tags) for k, _ in groups] == [
        ("a", ("/a", "/x"), None), ("a", ("/y",), None), ("b", ("/a", "/x"), None)]
    assert groups[0][0].describe() == "host [a], paths [/a, /x]"
    assert len(group_snapshots(snaps, frozenset())) == 1
    by_tags = group_snapshots(snaps, parse_group_by("tags"))
    assert [(k.tags, len(v)) for k, v in by_tags] == [((), 2), (("t",), 1)]


# ---- properties ----------------------------------------------------------------------

BASE = datetime(2023, 1, 1, tzinfo=UTC)
times = st.lists(st.integers(min_value=0, max_value=3 * 365 * 24 * 60), min_size=0,
                 max_size=40)
counts = st.sampled_from([0, 0, 1, 2, 3, 5, UNLIMITED])


@st.composite
def policies(draw: st.DrawFn) -> RetentionPolicy:
    within = draw(st.sampled_from([None, "1d", "2w", "3m"]))
    within_daily = draw(st.sampled_from([None, None, "10d"]))
    tags = draw(st.sampled_from([(), (("keep",),)]))
    return RetentionPolicy(
        last=draw(counts), hourly=draw(counts), daily=draw(counts), weekly=draw(counts),
        monthly=draw(counts), yearly=draw(counts),
        within=Span.parse(within) if within else None,
        within_daily=Span.parse(within_daily) if within_daily else None,
        keep_tags=tags,
    )


def make(minutes: list[int], tagged: set[int] | None = None) -> list[Snapshot]:
    return [snap(BASE + timedelta(minutes=m), ["keep"] if tagged and i in tagged else [])
            for i, m in enumerate(minutes)]


def _rule_count(p: RetentionPolicy) -> bool:
    return any(c != 0 for c in (p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly)) \
        or bool(p.within) or bool(p.within_daily)


@settings(max_examples=200, deadline=None)
@given(times, policies())
def test_property_partition_and_reasons(minutes: list[int], policy: RetentionPolicy) -> None:
    snaps = make(minutes, tagged={0})
    result = apply_policy(snaps, policy, NOW)
    kept_ids = [s.id for s in result.kept_snapshots]
    removed_ids = [s.id for s in result.removed_snapshots]
    assert sorted(kept_ids + removed_ids) == sorted(s.id for s in snaps)
    assert not set(kept_ids) & set(removed_ids)
    assert all(d.reasons for d in result.keep)
    assert all(d.reasons for d in result.remove)
    if snaps and _rule_count(policy):
        assert result.keep, "a policy with a keep rule never removes everything"
        newest = max(snaps, key=lambda s: (s.time, -int(s.id, 16)))
        assert newest.time in {s.time for s in result.kept_snapshots}


@settings(max_examples=200, deadline=None)
@given(times, st.integers(min_value=1, max_value=50))
def test_property_keep_last_keeps_exactly_the_newest(minutes: list[int], n: int) -> None:
    snaps = make(minutes)
    result = apply_policy(snaps, RetentionPolicy(last=n), NOW)
    assert len(result.keep) == min(n, len(snaps))
    if result.remove:
        assert min(s.time for s in result.kept_snapshots) >= max(
            s.time for s in result.removed_snapshots)


@settings(max_examples=200, deadline=None)
@given(times, policies(), st.randoms(use_true_random=False))
def test_property_order_and_now_do_not_matter(
    minutes: list[int], policy: RetentionPolicy, rnd: random.Random
) -> None:
    snaps = make(minutes)
    shuffled = list(snaps)
    rnd.shuffle(shuffled)
    a = apply_policy(snaps, policy, NOW)
    b = apply_policy(shuffled, policy, NOW + timedelta(days=999))
    assert [(d.snapshot.id, d.reasons) for d in a.keep] == [
        (d.snapshot.id, d.reasons) for d in b.keep]


@settings(max_examples=200, deadline=None)
@given(times, st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly"]),
       st.integers(min_value=1, max_value=6))
def test_property_more_counts_never_keep_less(minutes: list[int], rule: str, n: int) -> None:
    snaps = make(minutes)
    fewer = apply_policy(snaps, replace(RetentionPolicy(), **{rule: n}), NOW).kept_snapshots
    more = apply_policy(snaps, replace(RetentionPolicy(), **{rule: n + 1}), NOW).kept_snapshots
    everything = apply_policy(
        snaps, replace(RetentionPolicy(), **{rule: UNLIMITED}), NOW).kept_snapshots
    assert {s.id for s in fewer} <= {s.id for s in more} <= {s.id for s in everything}
    assert len(fewer) <= n + 1  # one per bucket, plus possibly the oldest
