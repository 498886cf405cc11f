"""Four-eyes approvals of changes to administrator accounts: list, approve, reject
(server/approvals.py decides who may).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from medark.server import approvals as A
from medark.server.deps import Ctx, Who
from medark.server.schemas_approvals import (
    ApprovalDecided,
    ApprovalList,
    ApprovalNote,
    ApprovalReply,
)
from medark.util import clock

router = APIRouter(tags=["approvals"])
ApprovalId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/api/approvals", response_model=ApprovalList)
def approvals(who: Who, ctx: Ctx,
              state: Annotated[Literal["pending", "approved", "rejected", "expired",
                                       "failed"] | None, Query()] = None
              ) -> dict[str, Any]:
    """Requests for changes of administrator accounts, newest first: every
    institution's for a regional center account, else its institution's."""
    return {"approvals": A.list_approvals(ctx.catalog, who, clock.now(), state)}


@router.get("/api/approvals/{approval_id}", response_model=ApprovalReply)
def approval(approval_id: ApprovalId, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"approval": A.get_approval(ctx.catalog, who, approval_id, clock.now())}


def _decided(outcome: A.Outcome) -> dict[str, Any]:
    return {"approval": outcome.approval,
            **({"user": outcome.user} if outcome.user else {}),
            **({"one_time_password": outcome.password} if outcome.password else {})}


@router.post("/api/approvals/{approval_id}/approve", response_model=ApprovalDecided,
             response_model_exclude_unset=True)
def approve(approval_id: ApprovalId, who: Who, ctx: Ctx,
            body: ApprovalNote | None = None) -> dict[str, Any]:
    """A second security administrator (not the requester, not the account's holder)
    approves: the change takes effect now, as the approver's; an approved reset's or
    creation's one-time password is in this answer only."""
    return _decided(A.decide(ctx.accounts, who, approval_id, True,
                             body.note if body else None, clock.now()))


@router.post("/api/approvals/{approval_id}/reject", response_model=ApprovalDecided,
             response_model_exclude_unset=True)
def reject(approval_id: ApprovalId, who: Who, ctx: Ctx,
           body: ApprovalNote | None = None) -> dict[str, Any]:
    """Another security administrator rejects, or the requester withdraws."""
    return _decided(A.decide(ctx.accounts, who, approval_id, False,
                             body.note if body else None, clock.now()))
