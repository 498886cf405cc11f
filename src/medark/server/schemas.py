"""The API's request and response bodies and its error body, shared by every route
module: requests are strict (no unknown field, no coercion), responses declare exactly
their fields (schemathesis checks both against the OpenAPI document).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from medark.server import roles as R
from medark.server.accounts import TITLE_CHARACTERS


class Strict(BaseModel):
    """A request body: no unknown field, no coercion (0 is not false, 1 is not "1")."""

    model_config = ConfigDict(extra="forbid", strict=True)


NAMED: dict[str, Any] = {"pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}
"""A name's form in the OpenAPI document; the code checks it (accounts.NAME) with a
message that says what a name may hold."""


RoleName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(R.ROLES)})]
"""A role, its values in the OpenAPI document; the code checks it (roles.checked_roles),
so that a refusal is audited."""


def _whole(value: Any) -> Any:
    """JSON Schema's integer includes 7.0; strict pydantic would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Days = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=3650),
                 WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 3650})]
"""(pydantic would write the bounds as `ge`/`le`, which JSON Schema does not know.)"""


class LoginBody(Strict):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)


class PasswordBody(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=256)  # the policy's longest


class CodeBody(Strict):
    code: str = Field(min_length=1, max_length=16)


class NewUser(Strict):
    name: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    institution: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    roles: list[RoleName] = Field(min_length=1, max_length=5)


class UserChange(Strict):
    roles: list[RoleName] | None = Field(default=None, min_length=1, max_length=5)
    disabled: bool | None = None
    reset_password: bool = False
    reset_totp: bool = False


class NewInstitution(Strict):
    name: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    title: str = Field(default="", max_length=200,
                       json_schema_extra={"pattern": f"^{TITLE_CHARACTERS}*$"})


class NewToken(Strict):
    name: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    role: str = Field(min_length=1, max_length=20,
                      json_schema_extra={"enum": list(R.TOKEN_ROLES)})
    institution: str = Field(min_length=1, max_length=64, json_schema_extra=NAMED)
    days: Days | None = None


class Reply(BaseModel):
    """A response body: its fields are exactly those declared (schemathesis checks)."""

    model_config = ConfigDict(extra="forbid")


class Problem(Reply):
    field: str
    """Where: a request's field as a dotted path (`body.roles.0`), a configuration's
    key (`plans.his.schedule`), or `document`."""
    message: str


class ErrorDetail(Reply):
    code: str
    message: str
    problems: list[Problem] | None = None
    """A 422's problems one by one (only there, and only when known): never a value."""


class ErrorBody(Reply):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "bad request"), (401, "not signed in, or the sign-in failed"),
        (403, "not allowed (role, scope, CSRF, pending password change or enrolment)"),
        (404, "no such object"), (405, "method not allowed"),
        (409, "conflict (separation of duties, exists already, ...)"),
        (422, "invalid request (the fields named, never their values)"),
        (423, "account locked"), (429, "too many login attempts"),
        (503, "the catalog cannot be reached or its key is wrong"))}
"""Every error response, on every route: `{"error": {"code", "message"}}`."""


class Status(Reply):
    status: str


class MeView(Reply):
    name: str
    kind: str
    institution: str
    regional_center: bool
    roles: list[str]
    password_change_required: bool
    totp_enrolment_required: bool
    timezone: str
    """The IANA zone the console shows times in: the institution's configuration's
    `timezone` (server/institution_zone.py)."""


class MeReply(Reply):
    user: MeView


class LoginReply(Reply):
    user: MeView
    csrf_token: str


class TotpReply(Reply):
    otpauth_uri: str


class UserView(Reply):
    name: str
    institution: str
    roles: list[str]
    disabled: bool
    must_change_password: bool
    totp_enrolled: bool
    locked_until: str | None
    created_at: str


class UserReply(Reply):
    user: UserView


class UserCreated(Reply):
    user: UserView
    one_time_password: str


class UserUpdated(Reply):
    user: UserView
    one_time_password: str | None = None
    """Only after a password reset."""


class UserList(Reply):
    users: list[UserView]


class InstitutionView(Reply):
    name: str
    title: str
    kind: str
    created_at: str


class InstitutionReply(Reply):
    institution: InstitutionView


class InstitutionList(Reply):
    institutions: list[InstitutionView]


class TokenView(Reply):
    name: str
    role: str
    institution: str
    created_by: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used: str | None


class TokenReply(Reply):
    token: TokenView


class TokenCreated(Reply):
    token: TokenView
    secret: str


class TokenList(Reply):
    tokens: list[TokenView]
