"""Sichuan 1.4.1 (network devices' configurations kept automatically, at least the last
3 changes), judged from facts gathered by service/netconfig_facts.py: `[netconfig]`
names at least one device (design), and every device has 3 or more stored versions, or
has at least one and its newest fetch did not fail (measured: a device whose
configuration has not changed 3 times yet is still kept as asked). docs/netconfig.md.

Pure; returns (status, evidence key, values) pairs that policy/compliance.py turns into
its checks, with the words below (merged into compliance_text.EVIDENCE). The verdict is
the hospital's: each system shows the same one."""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_VERSIONS = 3

Judged = tuple[str, str, dict[str, object]]


@dataclass(frozen=True)
class DeviceFacts:
    name: str
    versions: int
    keep: int
    failure: str | None = None
    """The open `netconfig_unreachable` alert's error: its newest fetch failed."""


@dataclass(frozen=True)
class NetconfigFacts:
    schedule: str
    devices: list[DeviceFacts] = field(default_factory=list)
    unreadable: str | None = None
    """Why the versions could not be counted (the repository would not open)."""


def judge(f: NetconfigFacts | None) -> tuple[Judged, Judged]:
    if f is None or not f.devices:
        none: Judged = ("fail", "netconfig.none", {})
        return none, none
    names = ", ".join(d.name for d in f.devices)
    design: Judged = ("pass", "netconfig.configured",
                      {"count": str(len(f.devices)), "devices": names,
                       "schedule": f.schedule})
    if f.unreadable is not None:
        return design, ("fail", "netconfig.problems", {"problems": f.unreadable})
    problems = []
    for d in f.devices:
        if d.versions >= MIN_VERSIONS:
            continue
        if d.versions == 0:
            why = d.failure or "never fetched (medark netconfig fetch)"
            problems.append(f"{d.name}: no version stored; {why}")
        elif d.failure is not None:
            problems.append(f"{d.name}: {d.versions} version(s), and its newest fetch "
                            f"failed: {d.failure}")
    if problems:
        return design, ("fail", "netconfig.problems", {"problems": "; ".join(problems)})
    counts = ", ".join(f"{d.name} {d.versions}" for d in f.devices)
    return design, ("pass", "netconfig.ok", {"counts": counts})


EVIDENCE = {
    "en": {
        "netconfig.none": "no network device configured ([netconfig] devices, "
                          "docs/netconfig.md)",
        "netconfig.configured": "{count} device(s) fetched on \"{schedule}\", each keeping "
                                "at least 3 versions: {devices}",
        "netconfig.problems": "{problems}",
        "netconfig.ok": "stored versions per device: {counts}; no fetch failing",
    },
    "zh": {
        "netconfig.none": "未配置网络设备（[netconfig] devices，docs/netconfig.md）",
        "netconfig.configured": "{count} 台设备按 \"{schedule}\" 自动获取配置，每台至少保留 "
                                "3 个版本：{devices}",
        "netconfig.problems": "{problems}",
        "netconfig.ok": "各设备已保存的配置版本数：{counts}；无获取失败",
    },
}
