"""Reading parts of the audit trail for the periodic reports: the records of a period
whose action is one of a few names or families, and how many records the period has.
The filter runs in the database (a month of a regional center's logins is millions of
records; the report wants a few thousand of them). audit_trail.py writes and streams
the whole trail; audit_verify.py checks it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from medark.catalog.audit_trail import (
    AuditRecord,
    _reason,
    records,
    stored_record,
    stream_records,
)
from medark.errors import CatalogError

if TYPE_CHECKING:
    from medark.catalog.store import Catalog


def _matching(actions: Iterable[str]) -> ColumnElement[bool]:
    """`user.*` is the family (user.create, user.update, …); any other name is exact."""
    exact, families = [], []
    for name in actions:
        if name.endswith(".*"):
            prefix = name[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            families.append(records.c.action.like(prefix + "%", escape="\\"))
        else:
            exact.append(name)
    terms = [*families, *([records.c.action.in_(exact)] if exact else [])]
    return or_(*terms) if terms else false()


def _period(start: datetime, end: datetime, institution: str | None
            ) -> list[ColumnElement[bool]]:
    terms = [records.c.at >= start.astimezone(UTC), records.c.at < end.astimezone(UTC)]
    if institution is not None:
        terms.append(records.c.institution == institution)
    return terms


def records_between(catalog: Catalog, start: datetime, end: datetime,
                    actions: Iterable[str] | None = None, limit: int | None = None,
                    institution: str | None = None) -> Iterator[AuditRecord]:
    """Records with times in [start, end) in sequence order, only those whose action is
    in `actions` (names, or families as `user.*`) when given; at most `limit`; only
    those filed under `institution` when given (one hospital's report)."""
    query = (select(records).where(*_period(start, end, institution))
             .order_by(records.c.seq))
    if actions is not None:
        query = query.where(_matching(list(actions)))
    if limit is not None:
        query = query.limit(limit)
    return stream_records(catalog, query)


def count_between(catalog: Catalog, start: datetime, end: datetime,
                  institution: str | None = None) -> int:
    """How many records have times in [start, end) (filed under `institution`)."""
    query = select(func.count()).select_from(records).where(
        *_period(start, end, institution))
    try:
        with catalog._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: {_reason(exc)}") from None


def newest_record(catalog: Catalog) -> AuditRecord | None:
    """The record with the highest number, or None for an empty trail."""
    query = select(records).order_by(records.c.seq.desc()).limit(1)
    try:
        with catalog._engine.connect() as connection:
            row = connection.execute(query).first()
    except SQLAlchemyError as exc:
        raise CatalogError(f"catalog {catalog.public_url}: {_reason(exc)}") from None
    return stored_record(row) if row is not None else None
