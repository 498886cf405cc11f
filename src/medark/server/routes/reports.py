"""Monthly and quarterly reports of an institution: request one (made in the background),
follow it, download its PDF (server/reports.py).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response

from medark.server import reports as M
from medark.server.deps import Ctx, Who
from medark.server.schemas_oversight import NewReport, ReportList, ReportReply
from medark.util import clock

router = APIRouter(tags=["reports"])
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"
Institution = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
ReportId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PDF_SCHEMA = {"schema": {"type": "string", "format": "binary"}}
PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": PDF_SCHEMA}, "description": "the report's PDF"}}


@router.post("/api/institutions/{institution}/reports", status_code=202,
             response_model=ReportReply)
def request_report(institution: Institution, body: NewReport, who: Who, ctx: Ctx
                   ) -> dict[str, Any]:
    """Queue the institution's report of a month or quarter (default the last whole
    one), from its current configuration; follow it with GET /api/reports/{id}."""
    info = M.request_report(ctx.catalog, who, institution, body.kind, body.period,
                            body.language, clock.now())
    M.start(ctx.catalog, info.id)
    return {"report": info.view()}


@router.get("/api/reports", response_model=ReportList)
def reports(who: Who, ctx: Ctx,
            institution: Annotated[str | None, Query(min_length=1, max_length=64,
                                                     pattern=NAME_PATTERN)] = None,
            limit: Annotated[int, Query(ge=1, le=M.MAX_LIST)] = 100) -> dict[str, Any]:
    """Newest first: every institution's for a regional center account, else the
    caller's institution's."""
    return {"reports": [r.view() for r in M.list_reports(ctx.catalog, who, institution,
                                                         limit)]}


@router.get("/api/reports/{report_id}", response_model=ReportReply)
def report(report_id: ReportId, who: Who, ctx: Ctx) -> dict[str, Any]:
    return {"report": M.get_report(ctx.catalog, who, report_id).view()}


@router.get("/api/reports/{report_id}/download", response_class=Response, responses=PDF)
def download(report_id: ReportId, who: Who, ctx: Ctx) -> Response:
    """The PDF (409 `report_not_ready` while queued or running, or after it failed)."""
    info, data = M.download(ctx.catalog, who, report_id)
    disposition = (f'attachment; filename="{M.ascii_name(info)}"; '
                   f"filename*=UTF-8''{quote(info.file_name, safe='')}")
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": disposition,
                             "X-Content-SHA256": info.sha256 or ""})
