"""Snapshots of an institution's system: list, browse a directory, find files. Patient
data: another institution's need a grant (server/grants.py), and every read is audited
(`snapshot.list`, `snapshot.browse`, `snapshot.find`, with the grant used).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query

from medark.config.plans import MedarkConfig
from medark.errors import MedarkError, ObjectNotFound
from medark.server import roles as R
from medark.server import snapshots as S
from medark.server.accounts import Principal
from medark.server.configs import current_config
from medark.server.db import audit
from medark.server.deps import Ctx, Who
from medark.server.grants import Grant, grant_allows
from medark.server.schemas_grants import FindReply, SnapshotList, TreeReply

router = APIRouter(tags=["snapshots"])
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,63}$"
Institution = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
System = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
SnapshotId = Annotated[str, Path(min_length=8, max_length=64, pattern="^[0-9a-f]{8,64}$")]
BASE = "/api/institutions/{institution}/systems/{system}/snapshots"
T = TypeVar("T")


def _read(ctx: Ctx, who: Principal, institution: str, system: str, action: str,
          snapshot: str | None, detail: dict[str, Any],
          read: Callable[[MedarkConfig, Grant | None], T]) -> T:
    """Role, then grant (its use or refusal audited), then the institution's current
    configuration, then `read`; the read is audited with its result."""
    who.require(R.SNAPSHOTS_READ)
    grant = grant_allows(ctx.catalog, who, institution, system, snapshot=snapshot,
                         use=action)
    target = f"{institution}/{system}" + (f" snapshot:{snapshot}" if snapshot else "")
    record = {"grant": grant.id if grant else None, "system": system, **detail}
    try:
        version = current_config(ctx.catalog, institution)
        if version is None:
            raise ObjectNotFound(f"{institution} has no configuration yet")
        S.check_password_sources(version.config, system,
                                 S.password_directory(ctx.catalog.url))
        result = read(version.config, grant)
    except MedarkError as exc:
        audit(ctx.catalog, who.actor, who.address, action, target, "failed", institution,
              {**record, "error": exc.code})
        raise
    audit(ctx.catalog, who.actor, who.address, action, target, "ok", institution, record)
    return result


@router.get(BASE, response_model=SnapshotList)
def snapshots(institution: Institution, system: System, who: Who, ctx: Ctx
              ) -> dict[str, Any]:
    """The system's snapshots (id, time, host, tags, paths, size), oldest first; with a
    grant for some snapshots, only those."""
    def read(config: MedarkConfig, grant: Grant | None) -> dict[str, Any]:
        found = S.list_snapshots(config, system)
        return {"institution": institution, "system": system,
                "grant": grant.id if grant else None,
                "snapshots": [S.snapshot_view(f) for f in found
                              if grant is None or grant.allows_snapshot(f.snapshot.id)]}

    return _read(ctx, who, institution, system, "snapshot.list", None, {}, read)


@router.get(BASE + "/{snapshot_id}/tree", response_model=TreeReply)
def tree(institution: Institution, system: System, snapshot_id: SnapshotId, who: Who,
         ctx: Ctx, path: Annotated[str, Query(min_length=1, max_length=4096)] = "/"
         ) -> dict[str, Any]:
    """One directory level of the snapshot: name, type, size, mtime of each entry."""
    def read(config: MedarkConfig, grant: Grant | None) -> dict[str, Any]:
        found, directory, entries = S.browse(config, system, snapshot_id, path)
        return {"snapshot": found.snapshot.id, "path": directory, "entries": entries,
                "grant": grant.id if grant else None}

    return _read(ctx, who, institution, system, "snapshot.browse", snapshot_id,
                 {"path": path}, read)


@router.get(BASE + "/{snapshot_id}/find", response_model=FindReply)
def find(institution: Institution, system: System, snapshot_id: SnapshotId, who: Who,
         ctx: Ctx, pattern: Annotated[str, Query(min_length=1, max_length=1024)],
         limit: Annotated[int, Query(ge=1, le=S.MAX_FIND)] = 1000) -> dict[str, Any]:
    """Files of the snapshot matching a glob (`*.dcm`; with '/', a path pattern), as
    `medark find`; at most `limit`, `truncated` when there were more."""
    def read(config: MedarkConfig, grant: Grant | None) -> dict[str, Any]:
        found, matches, truncated = S.find(config, system, snapshot_id, pattern, limit)
        return {"snapshot": found.snapshot.id, "pattern": pattern, "matches": matches,
                "truncated": truncated, "grant": grant.id if grant else None}

    return _read(ctx, who, institution, system, "snapshot.find", snapshot_id,
                 {"pattern": pattern, "limit": limit}, read)
