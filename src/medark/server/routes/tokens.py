"""API tokens for automation, each scoped to one role and one institution.

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Any

from fastapi import APIRouter

from medark.server.deps import Ctx, Who
from medark.server.schemas import NewToken, TokenCreated, TokenList, TokenReply
from medark.util import clock

router = APIRouter(tags=["tokens"])


@router.get("/api/tokens", response_model=TokenList)
def tokens(who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"tokens": ctx.accounts.tokens(who)}


@router.post("/api/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: NewToken, who: Who, ctx: Ctx) -> dict[str, Any]:
    """The token's record and the token itself (shown once; only its hash is kept)."""
    view, secret = ctx.accounts.create_token(who, body.name, body.role, body.institution,
                                             body.days, clock.now())
    return {"token": view, "secret": secret}


@router.delete("/api/tokens/{name}", response_model=TokenReply)
def revoke_token(name: str, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"token": ctx.accounts.revoke_token(who, name, clock.now())}
