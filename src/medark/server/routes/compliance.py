"""An institution's compliance, judged as `medark compliance` judges (server/oversight.py).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from medark.errors import UsageError
from medark.server import oversight as O
from medark.server.deps import Ctx, Who
from medark.server.schemas_oversight import ComplianceReply
from medark.util import clock

router = APIRouter(tags=["compliance"])
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"
Institution = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
MOMENT = "^(19[7-9][0-9]|2[0-9]{3})-"
"""An RFC 3339 time (without a zone: UTC) of this era: the schedules and ages a
verdict computes need no year 1 or 9999."""


@router.get("/api/institutions/{institution}/compliance", response_model=ComplianceReply)
def compliance(institution: Institution, who: Who, ctx: Ctx,
               profile: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
               level: Annotated[int | None, Query(ge=1, le=4)] = None,
               sichuan: bool | None = None,
               at: Annotated[str | None, Query(
                   min_length=1, max_length=40, pattern=MOMENT,
                   json_schema_extra={"format": "date-time"})] = None,
               lang: Literal["zh", "en"] = "en") -> dict[str, Any]:
    """Every system x requirement of the institution's current configuration, by design
    and by its measured jobs, as of `at` (default now); the profile, 等保 level and
    Sichuan items default to the configuration's [hospital] table. 409
    `no_configuration` before the institution has one."""
    try:
        moment = clock.parse_time(at) if at is not None else None
    except (TypeError, ValueError, OverflowError):
        raise UsageError("at: not an RFC 3339 time") from None
    return O.institution_compliance(ctx.catalog, who, institution, O.Judging(
        profile, level, sichuan, moment, lang))
