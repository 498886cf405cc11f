"""Alerts of the institutions in scope (server/oversight.py).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from medark.server import oversight as O
from medark.server.deps import Ctx, Who
from medark.server.replies import json_reply
from medark.server.schemas_oversight import AlertList

router = APIRouter(tags=["alerts"])
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"


@router.get("/api/alerts", response_model=AlertList)
def alerts(who: Who, ctx: Ctx,
           institution: Annotated[str | None, Query(min_length=1, max_length=64,
                                                    pattern=NAME_PATTERN)] = None,
           open_only: bool = False,
           limit: Annotated[int, Query(ge=1, le=O.MAX_ALERTS)] = 100) -> Response:
    """Newest first: every institution's for a regional center account (and those of
    the catalog's own daemon, institution null), else the caller's institution's."""
    found = O.alerts(ctx.catalog, who, institution, open_only, limit)
    return json_reply(AlertList, {"alerts": [O.alert_view(a) for a in found]})
