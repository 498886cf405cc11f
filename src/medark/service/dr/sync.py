"""Keeping a `synchronous = true` system synchronous, and what happens when its standby
is lost (`on_sync_loss`).

Run by `dr supervise` (the daemon's periodic look) and after every switch: the primary
as found names the standby streaming on the DR slot in `synchronous_standby_names`. When
no standby streams there, `degrade` turns replication asynchronous so the hospital keeps
writing (the problem is returned, for an alert, until the standby is back and named
again); `block` leaves the setting, so commits wait and nothing acknowledged can be lost,
and reports that they wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from medark.config.dr import DrConf
from medark.errors import MedarkError
from medark.service.dr.nodes import members, one_line

COST = "every commit waits until the DR standby has flushed it"


@dataclass(frozen=True)
class SyncOutcome:
    state: str
    """off (not configured), synchronous, set (just named), not set (status only),
    degraded, blocked, unknown."""
    detail: str
    problem: str | None = None
    """Why replication is not synchronous although configured (an alert), else None."""

    def public(self) -> dict[str, object]:
        return {"state": self.state, "detail": self.detail, "problem": self.problem}


def enforce(system: str, conf: DrConf, apply: bool = True) -> SyncOutcome:
    """Make the primary's setting match the standby's presence and `on_sync_loss`;
    `apply` False only says what it would find (`dr status` changes nothing)."""
    if not conf.synchronous:
        return SyncOutcome("off", "asynchronous (synchronous = false)")
    from medark.sources.postgres.sync import set_synchronous, sync_state, wanted_setting

    primary = next((m for m in members(conf, 5) if m.role == "primary"), None)
    if primary is None:
        return SyncOutcome("unknown", "no reachable primary",
                           f"{system}: synchronous replication cannot be checked: no "
                           "reachable primary")
    slot = str(conf.slot_name(system))
    try:
        found = sync_state(primary.dsn, slot)
        if found.standby_name is not None:
            want = wanted_setting(found.standby_name)
            if found.setting != want and not apply:
                return SyncOutcome("not set", f"synchronous_standby_names is "
                                   f"{found.setting!r}, not {want!r}",
                                   f"{system}: configured synchronous, but the primary does "
                                   "not wait for the standby (medark dr supervise sets it)")
            if found.setting != want:
                set_synchronous(primary.dsn, found.standby_name)
                return SyncOutcome("set", f"{primary.address} waits for standby "
                                   f"{found.standby_name!r} on every commit")
            return SyncOutcome("synchronous", f"standby {found.standby_name!r} is "
                               f"{found.standby_sync_state}; {COST}")
        if conf.on_sync_loss == "block":
            return SyncOutcome("blocked", f"{primary.address} keeps "
                               f"synchronous_standby_names = {found.setting!r}",
                               f"{system}: the synchronous standby is not streaming; "
                               "commits on the primary wait for it (on_sync_loss = block)")
        if found.setting and apply:
            set_synchronous(primary.dsn, None)
        return SyncOutcome("degraded", f"{primary.address} replicates asynchronously",
                           f"{system}: the synchronous standby is not streaming; replication "
                           "degraded to asynchronous (on_sync_loss = degrade): a failover "
                           "now may lose the commits since")
    except MedarkError as exc:
        return SyncOutcome("unknown", one_line(exc),
                           f"{system}: synchronous replication: {one_line(exc)}")
