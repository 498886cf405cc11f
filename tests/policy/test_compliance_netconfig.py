"""Sichuan 1.4.1 judged from the devices' stored versions and fetch failures
(policy/compliance_netconfig.py)."""

from __future__ import annotations

from medark.policy.compliance_netconfig import DeviceFacts, NetconfigFacts, judge
from medark.policy.compliance_text import evidence


def test_no_devices_fails_with_the_way_to_configure_them() -> None:
    design, measured = judge(None)
    assert design[0] == measured[0] == "fail"
    assert "[netconfig]" in evidence(design[1], design[2], "en")


def test_three_versions_or_fewer_without_failure_pass() -> None:
    facts = NetconfigFacts("0 */4 * * *", [DeviceFacts("core", 5, 10),
                                           DeviceFacts("edge", 1, 10)])
    design, measured = judge(facts)
    assert design[0] == "pass" and measured[0] == "pass"
    assert "core 5, edge 1" in evidence(measured[1], measured[2], "en")
    assert "各设备" in evidence(measured[1], measured[2], "zh")


def test_failing_or_never_fetched_devices_are_named() -> None:
    facts = NetconfigFacts("daily", [
        DeviceFacts("core", 3, 10, failure="refused"),  # 3 kept: passes even failing now
        DeviceFacts("edge", 2, 10, failure="device edge did not answer"),
        DeviceFacts("wan", 0, 10)])
    _design, measured = judge(facts)
    assert measured[0] == "fail"
    text = evidence(measured[1], measured[2], "en")
    assert "core" not in text
    assert "edge: 2 version(s), and its newest fetch failed: device edge did not answer" in text
    assert "wan: no version stored; never fetched" in text
