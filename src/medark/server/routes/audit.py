"""The audit trail for the audit administrator: search, export, verify
(server/audit_api.py). Read only: no route here changes or deletes a record.

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from medark.server import audit_api as A
from medark.server.deps import Ctx, Who
from medark.server.schemas_audit import AuditPage, VerifyReply
from medark.util import clock

router = APIRouter(tags=["audit"])

TEXT = "^[^\\x00-\\x1f\\x7f]*$"
"""No control characters (PostgreSQL refuses a NUL in a parameter)."""
Start = Annotated[str | None, Query(alias="from", min_length=10, max_length=40,
                                    pattern=TEXT,
                                    description="ISO 8601 with its zone, or a date "
                                                "(its midnight UTC)")]
End = Annotated[str | None, Query(alias="to", min_length=10, max_length=40, pattern=TEXT,
                                  description="excluded; a date: through that day")]
Actor = Annotated[str | None, Query(min_length=1, max_length=200, pattern=TEXT)]
Action = Annotated[str | None, Query(min_length=1, max_length=100, pattern=TEXT,
                                     description="a name, or a family: user.*")]
Institution = Annotated[str | None, Query(min_length=1, max_length=200, pattern=TEXT)]
Result = Annotated[str | None, Query(json_schema_extra={"enum": list(A.RESULTS)})]
Target = Annotated[str | None, Query(min_length=1, max_length=500, pattern=TEXT)]
EXPORT_DOC: dict[int | str, dict[str, Any]] = {200: {
    "description": "the records in sequence order, as `medark audit export` writes them",
    "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}}}}


@router.get("/api/audit", response_model=AuditPage)
def search(who: Who, ctx: Ctx, start: Start = None, end: End = None,
           actor: Actor = None, action: Action = None, institution: Institution = None,
           result: Result = None, target: Target = None,
           limit: Annotated[int, Query(ge=1, le=A.MAX_LIMIT)] = 100,
           before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None
           ) -> dict[str, Any]:
    """Audit records, newest first (the audit administrator; a hospital's sees its own
    institution's). Page back with `before_seq`. The search is itself audited."""
    wanted = A.request_filter(ctx.catalog, who, A.SEARCH, start=start, end=end,
                              actor=actor, action=action, institution=institution,
                              result=result, target=target)
    found, more = A.search(ctx.catalog, who, wanted, limit, before_seq)
    return {"records": [A.record_view(r) for r in found], "next_before_seq": more}


@router.get("/api/audit/export", responses=EXPORT_DOC, response_class=StreamingResponse)
def export(who: Who, ctx: Ctx, start: Start = None, end: End = None,
           actor: Actor = None, action: Action = None, institution: Institution = None,
           result: Result = None, target: Target = None,
           format: Annotated[str, Query(json_schema_extra={"enum": list(A.FORMATS)})
                             ] = "jsonl") -> StreamingResponse:
    """A download of the records in sequence order: JSON lines or CSV, the form of
    `medark audit export`. Audited when it ends, with how many records it held."""
    wanted = A.request_filter(ctx.catalog, who, A.EXPORT, start=start, end=end,
                              actor=actor, action=action, institution=institution,
                              result=result, target=target)
    lines = A.export(ctx.catalog, who, wanted, format)
    name = A.export_name(format, clock.now())
    return StreamingResponse(lines, media_type=A.MEDIA[format],
                             headers={"Content-Disposition":
                                      f'attachment; filename="{name}"'})


@router.get("/api/audit/verify", response_model=VerifyReply)
def verify(who: Who, ctx: Ctx) -> dict[str, Any]:
    """The chain checked as `medark audit verify` does (without a repository's anchors):
    each edited, deleted, inserted or reordered record named. Audited."""
    report = A.check(ctx.catalog, who)
    return {"intact": report.intact, "records": report.records, "head": report.head,
            "chain": report.chain,
            "problems": [f.public() for f in report.findings]}
