"""The jobs of a local catalog in id order after a mark: what `medark agent` has still to
report to the management server (its offline queue, agent/outbox.py)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select

from medark.catalog.models import Job
from medark.catalog.store import Catalog, JobRecord, _record


def jobs_after(catalog: Catalog, after_id: int, also: Iterable[int] = (),
               limit: int = 200) -> list[JobRecord]:
    """The jobs with an id above `after_id`, and those of `also` (ids kept back earlier),
    oldest first."""
    held = sorted(set(also))
    condition = or_(Job.id > after_id, Job.id.in_(held)) if held else Job.id > after_id
    query = select(Job).where(condition).order_by(Job.id).limit(limit)
    with catalog._session() as session:
        return [_record(job) for job in session.scalars(query)]
