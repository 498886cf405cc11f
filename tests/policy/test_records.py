"""Medical-record minimums: whatever the policy, the newest snapshot of each year of a
system holding records stays for 15 (outpatient) or 30 (inpatient) years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medark.policy.records import record_holds
from medark.policy.retention import RetentionPolicy, apply_policy
from medark.snapshot.model import Snapshot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def snap(days_ago: float, tags: list[str], host: str = "his") -> Snapshot:
    return Snapshot(time=NOW - timedelta(days=days_ago), tree=bytes(32), paths=["/data"],
                    hostname=host, username="", tags=tags, id=f"{days_ago:064.0f}")


def test_a_short_policy_keeps_the_newest_of_each_year_within_the_minimum() -> None:
    inpatient = [snap(d, ["records=inpatient"]) for d in (1, 2, 400, 401, 365 * 29, 365 * 31)]
    result = apply_policy(inpatient, RetentionPolicy(last=1), NOW)
    kept = {d.snapshot.id: d.reasons for d in result.keep}
    by_age = {round((NOW - s.time).days): s.id for s in inpatient}
    assert by_age[1] in kept and "last snapshot" in kept[by_age[1]]
    assert by_age[400] in kept and "medical records" in kept[by_age[400]][0]  # 2025's newest
    assert by_age[365 * 29] in kept and "kept 30 years" in kept[by_age[365 * 29]][0]
    assert by_age[2] not in kept  # same year as a newer one
    assert by_age[401] not in kept
    assert by_age[365 * 31] not in kept  # beyond 30 years: the law no longer asks


def test_outpatient_records_fifteen_years_and_untagged_snapshots_are_untouched() -> None:
    outpatient = [snap(365 * 14, ["records=outpatient"]), snap(365 * 16, ["records=outpatient"])]
    held = record_holds(outpatient, NOW)
    assert list(held) == [outpatient[0].id] and "kept 15 years" in held[outpatient[0].id]
    assert record_holds([snap(30, []), snap(30, ["records=bogus"])], NOW) == {}
