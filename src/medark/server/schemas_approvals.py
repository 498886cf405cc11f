"""Request and response bodies of the four-eyes approvals (server/approvals.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from typing import Any

from pydantic import Field

from medark.server.accounts import TITLE_CHARACTERS
from medark.server.schemas import Reply, Strict, UserView


class ApprovalNote(Strict):
    note: str | None = Field(default=None, max_length=1000,
                             json_schema_extra={"pattern": f"^{TITLE_CHARACTERS}*$"})


class ApprovalChange(Reply):
    roles: list[str] | None
    disabled: bool | None
    reset_password: bool
    reset_totp: bool


class ApprovalView(Reply):
    id: int
    kind: str
    """user.create or user.update."""
    target: str
    institution: str
    change: ApprovalChange
    reasons: list[str]
    """admin_create, admin_role_given, admin_role_taken, admin_disable,
    admin_password_reset, admin_totp_reset."""
    requested_by: str
    state: str
    """pending, approved, rejected, expired or failed."""
    created_at: str | None
    expires_at: str | None
    decided_by: str | None
    decided_at: str | None
    note: str | None


class ApprovalReply(Reply):
    approval: ApprovalView


class ApprovalList(Reply):
    approvals: list[ApprovalView]


class ApprovalDecided(Reply):
    approval: ApprovalView
    user: UserView | None = None
    """The account as changed (an approval)."""
    one_time_password: str | None = None
    """After an approved password reset or creation: shown once, to the approver."""


PENDING_RESPONSE: dict[int | str, dict[str, Any]] = {202: {"model": ApprovalReply,
                          "description": "a change of an administrator account: it awaits "
                                         "a second security administrator's approval"}}
"""The 202 of the user routes whose change needs four eyes."""
