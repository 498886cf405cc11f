"""Cross-institution grants: request, decide, revoke (server/grants.py decides who may).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from medark.errors import UsageError
from medark.server import grants as G
from medark.server.deps import Ctx, Who
from medark.server.schemas_grants import Decision, GrantList, GrantReply, NewGrant
from medark.util import clock

router = APIRouter(tags=["grants"])
GrantId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _time(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        return clock.parse_time(text)
    except (TypeError, ValueError):
        raise UsageError(f"{field}: not an RFC 3339 time") from None


@router.post("/api/grants", status_code=201, response_model=GrantReply)
def request_grant(body: NewGrant, who: Who, ctx: Ctx) -> dict[str, Any]:
    """Ask for another institution's data: a scope, a purpose, a window of at most 30
    days; its security administrator approves or denies."""
    now = clock.now()
    ends_at = _time(body.ends_at, "ends_at")
    assert ends_at is not None
    grant = G.request_grant(ctx.catalog, who, body.institution, body.scope.model_dump(),
                            body.purpose, _time(body.starts_at, "starts_at"), ends_at, now)
    return {"grant": grant.view(now)}


@router.get("/api/grants", response_model=GrantList)
def grants(who: Who, ctx: Ctx,
           state: Annotated[Literal["requested", "approved", "denied", "revoked",
                                    "expired"] | None, Query()] = None) -> dict[str, Any]:
    """The account's own requests, those awaiting its decision and the rest of its
    institution's (every institution's for a regional center account), newest first."""
    now = clock.now()
    return {"grants": [g.view(now) for g in G.list_grants(ctx.catalog, who, now, state)]}


@router.get("/api/grants/{grant_id}", response_model=GrantReply)
def grant(grant_id: GrantId, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"grant": G.get_grant(ctx.catalog, who, grant_id).view(clock.now())}


@router.post("/api/grants/{grant_id}/approve", response_model=GrantReply)
def approve(grant_id: GrantId, who: Who, ctx: Ctx, body: Decision | None = None
            ) -> dict[str, Any]:
    now = clock.now()
    done = G.decide(ctx.catalog, who, grant_id, True, body.note if body else None, now)
    return {"grant": done.view(now)}


@router.post("/api/grants/{grant_id}/deny", response_model=GrantReply)
def deny(grant_id: GrantId, who: Who, ctx: Ctx, body: Decision | None = None
         ) -> dict[str, Any]:
    now = clock.now()
    done = G.decide(ctx.catalog, who, grant_id, False, body.note if body else None, now)
    return {"grant": done.view(now)}


@router.post("/api/grants/{grant_id}/revoke", response_model=GrantReply)
def revoke(grant_id: GrantId, who: Who, ctx: Ctx, body: Decision | None = None
           ) -> dict[str, Any]:
    now = clock.now()
    done = G.revoke(ctx.catalog, who, grant_id, body.note if body else None, now)
    return {"grant": done.view(now)}
