"""User accounts: the security administrator's (accounts.py decides who may do what).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Any

from fastapi import APIRouter

from medark.server.deps import Ctx, Who
from medark.server.schemas import (
    NewUser,
    UserChange,
    UserCreated,
    UserList,
    UserReply,
    UserUpdated,
)
from medark.util import clock

router = APIRouter(tags=["users"])


@router.get("/api/users", response_model=UserList)
def users(who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"users": ctx.accounts.users(who)}


@router.post("/api/users", status_code=201, response_model=UserCreated)
def create_user(body: NewUser, who: Who, ctx: Ctx) -> dict[str, Any]:
    """The user and its one-time password (shown once; changed at first login)."""
    view, password = ctx.accounts.create_user(who, body.name, body.institution,
                                              body.roles, clock.now())
    return {"user": view, "one_time_password": password}


@router.get("/api/users/{name}", response_model=UserReply)
def user(name: str, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"user": ctx.accounts.user(who, name)}


@router.patch("/api/users/{name}", response_model=UserUpdated,
              response_model_exclude_unset=True)
def update_user(name: str, body: UserChange, who: Who, ctx: Ctx) -> dict[str, Any]:
    view, password = ctx.accounts.update_user(
        who, name, clock.now(), roles=body.roles, disabled=body.disabled,
        reset_password=body.reset_password, reset_totp=body.reset_totp)
    return {"user": view, **({"one_time_password": password} if password else {})}


@router.delete("/api/users/{name}", response_model=UserReply)
def disable_user(name: str, who: Who, ctx: Ctx) -> dict[str, Any]:
    """Disables the account: users are never deleted (the audit trail names them)."""
    view, _password = ctx.accounts.update_user(who, name, clock.now(), disabled=True)
    return {"user": view}
