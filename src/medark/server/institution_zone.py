"""The time zone an institution's people read times in: its current configuration's
`timezone` (docs/configuration.md), else the configuration's own default. The console
shows every time in it, whatever the browser's zone (a center's staff look at
hospitals that all keep Beijing time, and a PC's clock zone is often wrong)."""

from __future__ import annotations

import tomllib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from medark.catalog.store import Catalog
from medark.config.plans import MedarkConfig
from medark.server.db import transaction
from medark.server.tables import Institution
from medark.server.tables_configs import ConfigVersionRow

DEFAULT_ZONE: str = MedarkConfig.model_fields["timezone"].default


def zone_of(document: str) -> str:
    """The document's `timezone` when it names a known zone, else the default (a stored
    version is checked when saved; this only reads the one key, so it is cheap)."""
    try:
        named = tomllib.loads(document).get("timezone", DEFAULT_ZONE)
        if isinstance(named, str):
            ZoneInfo(named)
            return named
    except (tomllib.TOMLDecodeError, ZoneInfoNotFoundError, ValueError):
        pass
    return DEFAULT_ZONE


def institution_zone(catalog: Catalog, institution: str) -> str:
    """The zone of the institution's newest configuration version; the default before it
    has one."""
    with transaction(catalog) as session:
        document = session.scalars(
            select(ConfigVersionRow.document)
            .join(Institution, Institution.id == ConfigVersionRow.institution_id)
            .where(Institution.name == institution)
            .order_by(ConfigVersionRow.version.desc()).limit(1)).first()
    return DEFAULT_ZONE if document is None else zone_of(document)
