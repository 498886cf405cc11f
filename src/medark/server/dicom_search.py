"""A snapshot's DICOM studies for the API (the console's restore wizard): the engine's
own catalog query (engine/dicom_query.py `find`, as `medark dicom find` runs it) over
one snapshot of a system, opened as the snapshot routes open it (server/snapshots.py).

Patient data: the route asks server/grants.py first and audits each search as
`dicom.find` (the filters, the counts, the study UIDs returned), as the CLI does. Patient
names and IDs go to the client that asked and to the audit trail, never to the server's
log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medark.config.plans import MedarkConfig
from medark.engine.dicom_query import DicomFilter, StudyHit, date_range, find
from medark.errors import UsageError
from medark.server import snapshots as S

MAX_STUDIES = 500
"""The most studies one reply lists (`truncated` says there were more)."""
AUDIT_UIDS = 100
"""Study UIDs named in one audit record at most (as the CLI's; the count is always
there)."""


@dataclass
class Search:
    """One snapshot's catalog searched."""

    found: S.Found
    catalog: bool
    """The snapshot has a DICOM catalog (its backup made one)."""
    instances: int
    """Instances the catalog holds (0 without one)."""
    studies: list[StudyHit] = field(default_factory=list)
    """Every matching study (the reply lists the first `limit`)."""
    unreadable: str | None = None
    """Why the catalog could not be read (its blobs pruned by an older Medark, damaged)."""


def dicom_filter(patient_id: str | None, name: str | None, accession: str | None,
                 study_uid: str | None, modality: str | None, date_from: str | None,
                 date_to: str | None) -> DicomFilter:
    """The engine's filter from the query's parameters (empty ones left out); dates
    YYYYMMDD or YYYY-MM-DD (UsageError otherwise)."""
    def given(value: str | None) -> str | None:
        value = value.strip() if value is not None else None
        return value or None

    low_text, high_text = given(date_from), given(date_to)
    low = high = None
    if low_text or high_text:
        try:
            low, high = date_range(f"{low_text or ''}..{high_text or ''}")
        except UsageError:
            raise UsageError("date_from and date_to: give dates as YYYYMMDD or YYYY-MM-DD"
                             ) from None
    return DicomFilter(given(patient_id), given(name), given(accession), given(study_uid),
                       given(modality), low, high)


def search(config: MedarkConfig, system: str, ref: str, flt: DicomFilter) -> Search:
    """The system's snapshot `ref` searched: its matching studies, newest figures, sorted
    by patient, date and UID (ObjectNotFound when it is not the system's)."""
    with S.opened_snapshot(config, system, ref) as (repo, found):
        snap = found.snapshot
        doc = snap.dicom_catalog
        instances = doc.get("instances") if doc else 0
        result = Search(found, bool(doc), instances if isinstance(instances, int) else 0)
        if snap.catalog_tree is None:
            return result
        hits = find(repo, [snap], flt)
    result.studies = hits.studies
    result.unreadable = hits.unreadable.get(snap.id)
    return result


def study_view(study: StudyHit) -> dict[str, Any]:
    series = sorted(study.series.values(), key=lambda s: s.series_uid)
    return {"study_uid": study.study_uid, "patient_id": study.patient_id,
            "patient_name": study.patient_name, "accession": study.accession,
            "study_date": study.study_date, "study_description": study.study_description,
            "modalities": sorted({s.modality for s in series if s.modality}),
            "series_count": len(series), "instances": study.instances,
            "size": sum(s.size for s in series),
            "series": [{"series_uid": s.series_uid, "modality": s.modality,
                        "instances": s.instances, "size": s.size} for s in series]}


def reply(result: Search, flt: DicomFilter, limit: int) -> dict[str, Any]:
    shown = result.studies[:limit]
    return {"snapshot": result.found.snapshot.id, "catalog": result.catalog,
            "catalog_instances": result.instances, "unreadable": result.unreadable,
            "filters": flt.public(), "total": len(result.studies),
            "truncated": len(result.studies) > limit,
            "studies": [study_view(s) for s in shown]}


def audit_detail(result: Search, limit: int) -> dict[str, Any]:
    """What the audit record says of the result: counts and study UIDs, as the CLI's."""
    shown = result.studies[:limit]
    uids = [s.study_uid for s in shown]
    return {"catalog": result.catalog, "studies": len(result.studies),
            "shown": len(shown), "instances": sum(s.instances for s in shown),
            "study_uids": uids[:AUDIT_UIDS],
            "study_uids_truncated": len(uids) > AUDIT_UIDS,
            **({"unreadable": True} if result.unreadable else {})}
