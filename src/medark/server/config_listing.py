"""The JSON answers of GET /api/sites, /api/systems, /api/repositories and /api/plans,
put together from each institution's part, and each part kept by the SHA-256 of the
configuration it was made from.

Every such request showed every institution in scope: it read each current document
(the regional center's 17 of them), built its items and had pydantic validate and dump
them, though the documents change a few times a month. A part depends only on the view,
the institution's name and the document's text, so keeping it by (view, institution,
document SHA-256) is exact whichever server process saved the document: a request reads
only the current versions' hashes, and a document only when its part is not kept yet. A
version that no longer passes the checks (a rule a newer Medark added) is not kept: it
is listed under `invalid` with its first problem each time, as config_views does.

The answer is byte for byte what FastAPI makes of config_views' dicts under the route's
response model (tests/server/test_config_listing.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import and_, func, or_, select

from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.server import config_views as views
from medark.server.accounts import Principal
from medark.server.configs import ConfigRejected, check_document, checked_read, in_scope
from medark.server.db import transaction
from medark.server.schemas_configs import Invalid, PlanView, RepositoryView, SiteView, SystemView
from medark.server.tables import Institution
from medark.server.tables_configs import ConfigVersionRow

VIEWS: dict[str, tuple[Callable[[views.Current], list[dict[str, Any]]], type[BaseModel]]] = {
    "sites": (views.sites, SiteView), "systems": (views.systems, SystemView),
    "repositories": (views.repositories, RepositoryView), "plans": (views.plans, PlanView)}
"""Each list: how its items are made, and the model of one."""
PARTS_KEPT = 1024
"""Parts kept (four views of a few hundred institutions; each a few to some tens of
kilobytes)."""
_PARTS: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
_LOCK = threading.Lock()
_INVALID = TypeAdapter(list[Invalid])
_ITEMS = {what: TypeAdapter(list[model]) for what, (_view, model) in  # type: ignore[valid-type]
          VIEWS.items()}


def _kept(key: tuple[str, str, str]) -> bytes | None:
    with _LOCK:
        found = _PARTS.get(key)
        if found is not None:
            _PARTS.move_to_end(key)
        return found


def _keep(key: tuple[str, str, str], part: bytes) -> None:
    with _LOCK:
        _PARTS[key] = part
        while len(_PARTS) > PARTS_KEPT:
            _PARTS.popitem(last=False)


def _part(what: str, institution: str, config: MedarkConfig) -> bytes:
    """The institution's items as JSON, without the list's brackets (empty: none)."""
    make, _model = VIEWS[what]
    adapter = _ITEMS[what]
    dumped = adapter.dump_json(adapter.validate_python(make([(institution, config)])),
                               by_alias=True)
    return dumped[1:-1]


def listing_json(catalog: Catalog, principal: Principal, institution: str | None,
                 what: str) -> bytes:
    """The `what` list (sites, systems, repositories, plans) of the institutions in
    scope as the route's JSON body: `{"<what>": [...], "invalid": [...]}`, each
    institution's items in name order. Refusals as config_views.current_configs."""
    checked_read(catalog, principal, what, institution)
    latest = (select(ConfigVersionRow.institution_id,
                     func.max(ConfigVersionRow.version).label("version"))
              .group_by(ConfigVersionRow.institution_id).subquery())
    query = (select(Institution.id, Institution.name, ConfigVersionRow.version,
                    ConfigVersionRow.sha256)
             .join(latest, latest.c.institution_id == Institution.id)
             .join(ConfigVersionRow, (ConfigVersionRow.institution_id == Institution.id)
                   & (ConfigVersionRow.version == latest.c.version))
             .order_by(Institution.name))
    with transaction(catalog) as session:
        if institution is not None:
            row = in_scope(catalog, session, principal, institution, "config.read", what)
            query = query.where(Institution.id == row.id)
        elif not principal.center:
            query = query.where(Institution.id == principal.institution_id)
        rows = [(inst_id, name, version, sha, _kept((what, name, sha)))
                for inst_id, name, version, sha in session.execute(query)]
        wanted = [and_(ConfigVersionRow.institution_id == inst_id,
                       ConfigVersionRow.version == version)
                  for inst_id, _name, version, _sha, part in rows if part is None]
        documents: dict[tuple[int, int], str] = {} if not wanted else {
            (inst_id, version): document for inst_id, version, document in session.execute(
                select(ConfigVersionRow.institution_id, ConfigVersionRow.version,
                       ConfigVersionRow.document).where(or_(*wanted)))}
    parts: list[bytes] = []
    invalid: list[dict[str, Any]] = []
    for inst_id, name, version, sha, part in rows:
        if part is None:
            document = documents.get((inst_id, version))
            if document is None:  # its institution was deleted between the two reads
                continue
            try:
                config = check_document(document)
            except ConfigRejected as exc:
                invalid.append({"institution": name, "version": version,
                                "message": exc.problems[0]})
                continue
            part = _part(what, name, config)
            _keep((what, name, sha), part)
        if part:
            parts.append(part)
    return b"".join((b'{"', what.encode(), b'":[', b",".join(parts), b'],"invalid":',
                     _INVALID.dump_json(_INVALID.validate_python(invalid), by_alias=True),
                     b"}"))
