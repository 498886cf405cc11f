"""Institutions: the regional center and its member hospitals.

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Any

from fastapi import APIRouter

from medark.server.deps import Ctx, Who
from medark.server.schemas import InstitutionList, InstitutionReply, NewInstitution
from medark.util import clock

router = APIRouter(tags=["institutions"])


@router.get("/api/institutions", response_model=InstitutionList)
def institutions(who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"institutions": ctx.accounts.institutions(who)}


@router.post("/api/institutions", status_code=201, response_model=InstitutionReply)
def create_institution(body: NewInstitution, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"institution": ctx.accounts.create_institution(who, body.name, body.title,
                                                           clock.now())}
