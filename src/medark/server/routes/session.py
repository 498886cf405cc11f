"""Sign-in, sign-out, and the signed-in user's own account: password and second factor.

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Any

from fastapi import APIRouter, Request, Response

from medark.errors import MedarkError
from medark.server.accounts import Principal
from medark.server.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    ApiContext,
    ChangingPassword,
    Ctx,
    Enrolling,
    address,
    user_session,
)
from medark.server.institution_zone import institution_zone
from medark.server.schemas import (
    CodeBody,
    LoginBody,
    LoginReply,
    MeReply,
    PasswordBody,
    Status,
    TotpReply,
)
from medark.util import clock

router = APIRouter(tags=["session"])


class RateLimited(MedarkError):
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many login attempts from this address; retry in "
                         f"{retry_after:.0f} s")
        self.retry_after = retry_after


@router.post("/api/login", response_model=LoginReply)
def login(body: LoginBody, request: Request, response: Response, ctx: Ctx
          ) -> dict[str, Any]:
    where = address(request)
    wait = ctx.limiter.retry_after(where)
    if wait:
        raise RateLimited(wait)
    signed = ctx.auth.login(body.username, body.password, body.totp, where, clock.now())
    tls = ctx.settings.tls
    response.set_cookie(SESSION_COOKIE, signed.session_token, path="/api",
                        httponly=True, samesite="strict", secure=tls)
    response.set_cookie(CSRF_COOKIE, signed.csrf_token, path="/", samesite="strict",
                        secure=tls)
    return {"user": me_view(signed.principal, ctx), "csrf_token": signed.csrf_token}


@router.post("/api/logout", response_model=Status)
def logout(who: ChangingPassword, response: Response, ctx: Ctx) -> dict[str, str]:
    if who.kind == "session":
        ctx.auth.logout(who)
    response.delete_cookie(SESSION_COOKIE, path="/api")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"status": "signed out"}


@router.get("/api/me", response_model=MeReply)
def me(who: Enrolling, ctx: Ctx) -> dict[str, Any]:
    return {"user": me_view(who, ctx)}


@router.post("/api/me/password", response_model=Status)
def change_password(body: PasswordBody, who: ChangingPassword, ctx: Ctx) -> dict[str, str]:
    ctx.auth.change_password(user_session(who), body.current_password, body.new_password,
                             clock.now())
    return {"status": "password changed"}


@router.post("/api/me/totp", response_model=TotpReply)
def enrol_totp(who: Enrolling, ctx: Ctx) -> dict[str, str]:
    """A new TOTP secret as an otpauth:// URI, shown this once; confirm with a code."""
    return {"otpauth_uri": ctx.auth.enrol_totp(user_session(who))}


@router.post("/api/me/totp/confirm", response_model=Status)
def confirm_totp(body: CodeBody, who: Enrolling, ctx: Ctx) -> dict[str, str]:
    ctx.auth.confirm_totp(user_session(who), body.code, clock.now())
    return {"status": "second factor enrolled"}


def me_view(who: Principal, ctx: ApiContext) -> dict[str, Any]:
    return {"name": who.name, "kind": who.kind, "institution": who.institution,
            "regional_center": who.center, "roles": list(who.roles),
            "password_change_required": who.must_change_password,
            "totp_enrolment_required": who.totp_enrolment_required,
            "timezone": institution_zone(ctx.catalog, who.institution)}
