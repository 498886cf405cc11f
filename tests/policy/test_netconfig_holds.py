"""Network-device configuration versions: whatever forget's policy, each device's newest
max(3, keep) versions stay (policy/netconfig.py, docs/netconfig.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medark.policy.netconfig import netconfig_holds
from medark.policy.retention import RetentionPolicy, apply_policy
from medark.snapshot.model import Snapshot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def version(device: str, hours_ago: int, keep: int | None = 10) -> Snapshot:
    tags = ["netconfig", "netconfig-sha256=" + "0" * 64]
    if keep is not None:
        tags.append(f"netconfig-keep={keep}")
    return Snapshot(time=NOW - timedelta(hours=hours_ago), tree=bytes(32),
                    paths=[f"/netconfig/{device}.cfg"], hostname=device, username="",
                    tags=tags, id=f"{device}{hours_ago:060d}"[:64].ljust(64, "0"))


def test_forget_keeps_each_devices_newest_versions() -> None:
    core = [version("core", h, keep=3) for h in range(1, 8)]
    edge = [version("edge", h, keep=5) for h in range(1, 8)]
    other = Snapshot(time=NOW, tree=bytes(32), paths=["/data"], hostname="his",
                     username="", tags=[], id="f" * 64)
    result = apply_policy([*core, *edge, other], RetentionPolicy(last=1), NOW)
    kept = {d.snapshot.id: d.reasons for d in result.keep}
    assert {s.id for s in core[:3]} <= set(kept) and not {s.id for s in core[3:]} & set(kept)
    assert {s.id for s in edge[:5]} <= set(kept) and not {s.id for s in edge[5:]} & set(kept)
    assert "one of core's newest 3 versions" in kept[core[1].id][0]
    assert other.id in kept  # the policy itself still applies to everything else


def test_keep_never_below_three_and_defaults_to_ten() -> None:
    low = [version("sw", h, keep=1) for h in range(1, 6)]
    assert set(netconfig_holds(low)) == {s.id for s in low[:3]}
    untagged = [version("sw2", h, keep=None) for h in range(1, 13)]
    assert set(netconfig_holds(untagged)) == {s.id for s in untagged[:10]}
    assert netconfig_holds([Snapshot(time=NOW, tree=bytes(32), paths=["/x"], hostname="h",
                                     username="", tags=["daily"], id="a" * 64)]) == {}
