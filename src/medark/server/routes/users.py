"""User accounts: the security administrator's (accounts.py decides who may do what).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from medark.server import approvals as A
from medark.server.deps import Ctx, Who
from medark.server.replies import json_reply
from medark.server.schemas import (
    NewUser,
    UserChange,
    UserCreated,
    UserList,
    UserReply,
    UserUpdated,
)
from medark.server.schemas_approvals import PENDING_RESPONSE
from medark.util import clock

router = APIRouter(tags=["users"])


@router.get("/api/users", response_model=UserList)
def users(who: Who, ctx: Ctx) -> Response:
    return json_reply(UserList, {"users": ctx.accounts.users(who)})


def _pending(outcome: A.Outcome) -> JSONResponse | None:
    """202 and the request, when the change awaits a second security administrator."""
    if outcome.approval is None:
        return None
    return JSONResponse({"approval": outcome.approval}, status_code=202)


@router.post("/api/users", status_code=201, response_model=UserCreated,
             responses=PENDING_RESPONSE)
def create_user(body: NewUser, who: Who, ctx: Ctx) -> Any:
    """The user and its one-time password (shown once; changed at first login). An
    account with an administrator role is made only once a second security
    administrator approves (202: the request; docs/server.md, "Four-eyes approvals")."""
    outcome = A.create_user(ctx.accounts, who, body.name, body.institution, body.roles,
                            clock.now(), waive=ctx.settings.single_security_admin)
    return _pending(outcome) or {"user": outcome.user,
                                 "one_time_password": outcome.password}


@router.get("/api/users/{name}", response_model=UserReply)
def user(name: str, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"user": ctx.accounts.user(who, name)}


@router.patch("/api/users/{name}", response_model=UserUpdated,
              response_model_exclude_unset=True, responses=PENDING_RESPONSE)
def update_user(name: str, body: UserChange, who: Who, ctx: Ctx) -> Any:
    """Roles, disabling, a reset of the password (the new one-time password is in the
    answer) or of the second factor. Resetting, disabling or promoting an administrator
    account, or taking its administrator role, awaits a second security administrator
    (202: the request)."""
    outcome = A.update_user(ctx.accounts, who, name, clock.now(), roles=body.roles,
                            disabled=body.disabled, reset_password=body.reset_password,
                            reset_totp=body.reset_totp,
                            waive=ctx.settings.single_security_admin)
    password = outcome.password
    return _pending(outcome) or {"user": outcome.user,
                                 **({"one_time_password": password} if password else {})}


@router.delete("/api/users/{name}", response_model=UserReply, responses=PENDING_RESPONSE)
def disable_user(name: str, who: Who, ctx: Ctx) -> Any:
    """Disables the account: users are never deleted (the audit trail names them). An
    administrator account's awaits a second security administrator (202)."""
    outcome = A.update_user(ctx.accounts, who, name, clock.now(), disabled=True,
                            waive=ctx.settings.single_security_admin)
    return _pending(outcome) or {"user": outcome.user}
