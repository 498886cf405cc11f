"""Institutions' configurations (versioned medark.toml documents) and the read views of
their sites, systems, repositories and plans (server/configs.py, server/config_views.py).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from medark.errors import ObjectNotFound
from medark.server import configs as C
from medark.server.accounts import Principal
from medark.server.config_listing import listing_json
from medark.server.deps import ApiContext, Ctx, Who
from medark.server.schemas_configs import (
    MAX_VERSION,
    ConfigChange,
    ConfigDiff,
    ConfigReply,
    PlanList,
    RepositoryList,
    SiteList,
    SystemList,
    VersionList,
)
from medark.util import clock

router = APIRouter(tags=["configurations"])

Version = Annotated[int, Path(ge=1, le=MAX_VERSION)]
VersionQuery = Annotated[int, Query(ge=1, le=MAX_VERSION)]
InstitutionFilter = Annotated[str | None, Query(max_length=64)]
CONFIG = "/api/institutions/{name}/config"


def _time(value: datetime) -> str:
    return clock.format_time(value)


def _view(info: C.VersionInfo) -> dict[str, Any]:
    return {"institution": info.institution, "version": info.version,
            "sha256": info.sha256, "author": info.author,
            "created_at": _time(info.created_at), "comment": info.comment}


def _stored(found: tuple[C.VersionInfo, str]) -> dict[str, Any]:
    return {"config": {**_view(found[0]), "document": found[1]}}


@router.get(CONFIG, response_model=ConfigReply)
def current(name: str, who: Who, ctx: Ctx) -> dict[str, Any]:
    """The institution's current configuration (404 `not_found` before its first)."""
    C.require_reader(ctx.catalog, who, name)
    found = C.stored(ctx.catalog, name)
    if found is None:
        raise ObjectNotFound(f"{name} has no configuration yet (a PUT saves the first)")
    return _stored(found)


@router.put(CONFIG, response_model=ConfigReply)
def save(name: str, body: ConfigChange, who: Who, ctx: Ctx) -> dict[str, Any]:
    """Save a new version: checked as `medark config check` checks a file (422
    `invalid_config` naming each problem's line), made from the current version (409
    `config_changed` otherwise)."""
    saved = C.save_config(ctx.catalog, who, name, body.document, body.comment,
                          body.base_version)
    info = C.VersionInfo(saved.institution, saved.version, saved.sha256, saved.author,
                         saved.created_at, saved.comment)
    return _stored((info, saved.document))


@router.get(CONFIG + "/versions", response_model=VersionList)
def versions(name: str, who: Who, ctx: Ctx) -> dict[str, Any]:
    """Every version, newest first (without the documents)."""
    C.require_reader(ctx.catalog, who, name)
    return {"versions": [_view(v) for v in C.config_versions(ctx.catalog, name)]}


@router.get(CONFIG + "/versions/{version}", response_model=ConfigReply)
def version(name: str, version: Version, who: Who, ctx: Ctx) -> dict[str, Any]:
    C.require_reader(ctx.catalog, who, name)
    found = C.stored(ctx.catalog, name, version)
    if found is None:
        raise ObjectNotFound(f"{name} has no configuration version {version}")
    return _stored(found)


@router.get(CONFIG + "/diff", response_model=ConfigDiff)
def diff(name: str, who: Who, ctx: Ctx,
         from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_VERSION)],
         to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_VERSION)]
         ) -> dict[str, Any]:
    """A unified diff between two versions."""
    C.require_reader(ctx.catalog, who, name)
    return {"institution": name, "from_version": from_version, "to_version": to_version,
            "diff": C.config_diff(ctx.catalog, name, from_version, to_version)}


@router.get("/api/sites", response_model=SiteList)
def sites(who: Who, ctx: Ctx, institution: InstitutionFilter = None) -> Response:
    """The sites of every institution in scope (or of `institution`)."""
    return _listing(ctx, who, institution, "sites")


@router.get("/api/systems", response_model=SystemList)
def systems(who: Who, ctx: Ctx, institution: InstitutionFilter = None) -> Response:
    return _listing(ctx, who, institution, "systems")


@router.get("/api/repositories", response_model=RepositoryList)
def repositories(who: Who, ctx: Ctx, institution: InstitutionFilter = None) -> Response:
    """Without credentials: a URL's password (none is saved) would show as ***."""
    return _listing(ctx, who, institution, "repositories")


@router.get("/api/plans", response_model=PlanList)
def plans(who: Who, ctx: Ctx, institution: InstitutionFilter = None) -> Response:
    return _listing(ctx, who, institution, "plans")


def _listing(ctx: ApiContext, who: Principal, institution: str | None, what: str
             ) -> Response:
    """The list's JSON as its response model makes it, from parts kept by their
    configuration's hash (server/config_listing.py)."""
    return Response(listing_json(ctx.catalog, who, institution, what),
                    media_type="application/json")
