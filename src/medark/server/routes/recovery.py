"""What a system can be restored from and to, for the console's restore wizard:
`GET /api/institutions/INST/systems/SYSTEM/recovery` (server/recovery.py). It lists the
system's snapshots, so it is patient data as the snapshot listing: `snapshots.read`,
another institution's with a grant, audited `recovery.read`.

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Any

from fastapi import APIRouter

from medark.config.plans import MedarkConfig
from medark.server import recovery as V
from medark.server import snapshots as S
from medark.server.deps import Ctx, Who
from medark.server.grants import Grant
from medark.server.routes.snapshots import BASE, Institution, System, _read
from medark.server.schemas_recovery import RecoveryReply

router = APIRouter(tags=["snapshots", "restores"])


@router.get(BASE.removesuffix("/snapshots") + "/recovery", response_model=RecoveryReply)
def recovery(institution: Institution, system: System, who: Who, ctx: Ctx
             ) -> dict[str, Any]:
    """The system's recoverable points (its snapshots), the windows of continuous log
    capture its agents reported (any second inside one can be restored to), and the
    restore targets its agents declare (names)."""
    def read(config: MedarkConfig, grant: Grant | None) -> dict[str, Any]:
        found = S.list_snapshots(config, system)
        plans = V.system_plans(config, system)
        known, windows = V.known_windows(ctx.catalog, institution, plans, grant)
        return {"institution": institution, "system": system,
                "grant": grant.id if grant else None, "plans": plans,
                **V.source_facts(config, system), "windows_known": known,
                "windows": [w.view() for w in windows],
                "points": [S.snapshot_view(f) for f in found
                           if grant is None or grant.allows_snapshot(f.snapshot.id)],
                "agents": V.restore_targets(ctx.catalog, institution, plans)}

    return _read(ctx, who, institution, system, "recovery.read", None, {}, read)
