"""The rules hospitals are audited against, as data (docs/compliance.md#the-rules, one
profile per section). Each requirement names the check that evaluates it
(policy/compliance.py), its limit, and whether the standard says "must reach" (必须达到)
or "recommended" (推荐达到); where the source does not say, local backup is "must" and
the rest "recommended" (docs/compliance.md#hospital-tiers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from medark.config.plans import ProfileConf

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Requirement:
    id: str
    source: str
    title: str
    check: str
    """local_rpo, local_rto, offsite_rpo, offsite_rto, dr_rpo, dr_rto, local_backup,
    offsite_backup, offsite_realtime, hot_redundancy, app_switch, switch_time,
    offsite_frequency, device_configs, record_retention, residency."""
    must: bool
    limit: timedelta | None = None
    systems: tuple[str, ...] = ()
    """Only these systems (a custom requirement may name them); empty: every system."""
    custom: bool = False
    """From a custom profile of the configuration: its title is the configuration's own
    words, never translated (policy/compliance_text.py)."""

    def applies_to(self, system: str) -> bool:
        return not self.systems or system in self.systems


def _tier(name: str, local: tuple[int, int], dr: tuple[int, int],
          dr_must: bool = False) -> list[Requirement]:
    """One row of the national informatization standard's table: (RTO, RPO) minutes for
    local backup and local application-level DR; offsite is 1 h / 30 min for all tiers.
    三甲's 等保 cell names local application-level DR itself, so there it is a must."""
    src = f"全国医院信息化建设标准与规范 {name}"
    return [
        Requirement(f"{name}.local.rto", src, f"local backup RTO ≤ {local[0]} min",
                    "local_rto", True, local[0] * MIN),
        Requirement(f"{name}.local.rpo", src, f"local backup RPO ≤ {local[1]} min",
                    "local_rpo", True, local[1] * MIN),
        Requirement(f"{name}.offsite.rto", src, "offsite backup RTO ≤ 1 h",
                    "offsite_rto", False, HOUR),
        Requirement(f"{name}.offsite.rpo", src, "offsite backup RPO ≤ 30 min",
                    "offsite_rpo", False, 30 * MIN),
        Requirement(f"{name}.dr.rto", src, f"local application-level DR RTO ≤ {dr[0]} min",
                    "dr_rto", dr_must, dr[0] * MIN),
        Requirement(f"{name}.dr.rpo", src, f"local application-level DR RPO ≤ {dr[1]} min",
                    "dr_rpo", dr_must, dr[1] * MIN),
    ]


TIERS: dict[str, list[Requirement]] = {
    "二级": _tier("二级", (30, 15), (30, 15)),
    "三乙": _tier("三乙", (20, 15), (20, 15)),
    "三甲": _tier("三甲", (15, 10), (15, 15), dr_must=True),
}
TIER_ALIASES = {"secondary": "二级", "tertiary-b": "三乙", "tertiary-a": "三甲",
                "2": "二级", "3b": "三乙", "3a": "三甲"}

_DJBH = "等保 2.0"
LEVELS: dict[int, list[Requirement]] = {
    1: [Requirement("djbh.1.local", f"{_DJBH} 6.1.4.7", "local backup and recovery of "
                    "important data", "local_backup", True)],
    2: [Requirement("djbh.2.offsite", f"{_DJBH} 7.1.4.8", "offsite backup in scheduled "
                    "batches over the network", "offsite_backup", True)],
    3: [Requirement("djbh.3.realtime", f"{_DJBH} 8.1.4.9", "offsite real-time backup",
                    "offsite_realtime", True),
        Requirement("djbh.3.hot", f"{_DJBH} 8.1.4.9", "hot redundancy of important "
                    "data-processing systems", "hot_redundancy", True)],
    4: [Requirement("djbh.4.switch", f"{_DJBH} 9.1.4.9", "offsite DR center with real-time "
                    "switch-over of business applications", "app_switch", True)],
}

COMMON: list[Requirement] = [
    Requirement("records.retention", "互联网医院/智慧医院 数据安全", "medical records kept "
                "15 years (outpatient) / 30 years (inpatient)", "record_retention", True),
    Requirement("residency", "互联网医院/智慧医院", "medical data stored inside mainland "
                "China", "residency", True),
]

SICHUAN: list[Requirement] = [
    Requirement("sichuan.1.4.2", "四川省智慧医院评审 1.4.2", "DR switch-over of main systems "
                "≤ 3 min", "switch_time", False, 3 * MIN),
    Requirement("sichuan.1.4.3", "四川省智慧医院评审 1.4.3", "offsite backup at least every "
                "24 h", "offsite_frequency", False, 24 * HOUR),
    Requirement("sichuan.1.5.2", "四川省智慧医院评审 1.5.2", "database audit collected and "
                "analysed in a monthly report", "db_audit", False),
    Requirement("sichuan.1.4.1", "四川省智慧医院评审 1.4.1", "network device configurations "
                "keep ≥ 3 versions", "device_configs", False),
]


def profile(tier: str, level: int, sichuan: bool = False,
            custom: dict[str, ProfileConf] | None = None) -> list[Requirement]:
    """Every requirement of a hospital tier (built in, or a custom profile of the
    configuration) at a 等保 level (levels are cumulative)."""
    if level not in LEVELS:
        raise ValueError(f"unknown 等保 level {level}: use 1 to 4")
    if custom and tier in custom:
        found = _custom(tier, custom[tier])
    else:
        name = TIER_ALIASES.get(tier.lower(), tier)
        if name not in TIERS:
            known = ", ".join(["二级", "三乙", "三甲", *sorted(custom or {})])
            raise ValueError(f"unknown hospital tier or profile {tier!r}: use {known}")
        found = [*TIERS[name]]
    for at in range(1, level + 1):
        found += LEVELS[at]
    found += COMMON
    if sichuan:
        found += SICHUAN
    return found


def _custom(name: str, conf: ProfileConf) -> list[Requirement]:
    """The base tier's requirements, those with a custom requirement's id replaced in
    place, then the new ones."""
    own = {req.id: Requirement(req.id, f"profile {name}", req.title, req.check, req.must,
                               req.limit, tuple(req.systems), custom=True)
           for req in conf.requirements}
    base = TIERS[conf.base] if conf.base else []
    found = [own.pop(req.id, req) for req in base]
    return found + list(own.values())
