"""Which node is the primary and which the standby now, and whether the standby can take
over: the preflight every action starts with.

Each refusal is one line that says what was found, so nobody is left guessing why a
switch was refused (a complaint about other tools): a primary that cannot be reached
(20; a failover is what that calls for), a standby that is not one (two primaries), or
does not stream from this primary (26).
"""

from __future__ import annotations

from dataclasses import dataclass

from medark.config.dr import DrConf, Health
from medark.errors import DatabaseUnavailable, StandbyNotReady
from medark.service.dr.nodes import Member, members


@dataclass(frozen=True)
class Pair:
    primary: Member
    standby: Member


def _describe(m: Member) -> str:
    if m.error is not None:
        return f"{m.configured} {m.address} unreachable ({m.error})"
    return f"{m.configured} {m.address} is a {m.role}"


def find_pair(system: str, conf: DrConf, connect_timeout: int | None = None) -> Pair:
    """Both nodes reachable, one primary and one standby; else the refusal."""
    a, b = members(conf, connect_timeout)
    roles = {a.role, b.role}
    found = f"{_describe(a)}, {_describe(b)}"
    if roles == {"primary"}:
        raise StandbyNotReady(f"{system}: no standby, two primaries ({found}): a switch "
                              "would leave both writable; check the configuration, or "
                              "resolve the split by hand")
    if roles == {"primary", "standby"}:
        primary, standby = (a, b) if a.role == "primary" else (b, a)
        return Pair(primary, standby)
    if "primary" in roles:
        raise StandbyNotReady(f"{system}: no standby to switch to: {found}")
    if "standby" in roles:
        raise DatabaseUnavailable(f"{system}: no reachable primary: {found} (when the "
                                  f"primary site is down: medark dr failover {system})")
    raise DatabaseUnavailable(f"{system}: neither node can be reached: {found}")


def require_streaming(system: str, pair: Pair, feed: str = "stream") -> str:
    """The standby follows this primary on its timeline and its WAL receiver streams (a
    repository-fed standby has no receiver: it fetches from the repository)."""
    primary, standby = pair.primary.pg, pair.standby.pg
    if standby.timeline != primary.timeline:
        raise StandbyNotReady(
            f"{system}: the standby {pair.standby.address} is on timeline "
            f"{standby.timeline}, the primary on {primary.timeline}: it does not follow "
            "this primary (reinstate it: medark dr failback)")
    if feed == "repository":
        return (f"{pair.primary.address} (site {pair.primary.node.site}) -> "
                f"{pair.standby.address} (site {pair.standby.node.site}), timeline "
                f"{primary.timeline}, replaying the repository")
    if standby.receiver_status != "streaming":
        raise StandbyNotReady(
            f"{system}: the standby {pair.standby.address} is not streaming (WAL receiver: "
            f"{standby.receiver_status or 'not running'})")
    return (f"{pair.primary.address} (site {pair.primary.node.site}) -> "
            f"{pair.standby.address} (site {pair.standby.node.site}), timeline "
            f"{primary.timeline}, streaming")


def checks_for(conf: DrConf, primary_site: str) -> list[Health]:
    """The health checks that apply while `primary_site` holds the primary."""
    return [c for c in conf.health if c.site is None or c.site == primary_site]
