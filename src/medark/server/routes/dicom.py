"""The DICOM study search of one snapshot (server/dicom_search.py), for the restore
wizard: `GET …/snapshots/ID/dicom?patient_id=&name=&accession=&study_uid=&modality=
&date_from=&date_to=`. Patient data, as browsing the snapshot: `snapshots.read`,
another institution's with a grant, and each search audited `dicom.find` with its
filters, counts and study UIDs (as `medark dicom find` records it).

No `from __future__ import annotations`: FastAPI reads the routes' annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from medark.errors import MedarkError, ObjectNotFound
from medark.server import dicom_search as D
from medark.server import roles as R
from medark.server import snapshots as S
from medark.server.configs import current_config
from medark.server.db import audit
from medark.server.deps import Ctx, Who
from medark.server.grants import grant_allows
from medark.server.routes.snapshots import BASE, Institution, SnapshotId, System
from medark.server.schemas_dicom import DicomReply

router = APIRouter(tags=["snapshots"])
ACTION = "dicom.find"
Key = Annotated[str | None, Query(max_length=64)]
"""A DICOM key (PatientID, AccessionNumber, a UID: at most 64 characters)."""
Day = Annotated[str | None, Query(max_length=10)]


@router.get(BASE + "/{snapshot_id}/dicom", response_model=DicomReply)
def dicom(institution: Institution, system: System, snapshot_id: SnapshotId, who: Who,
          ctx: Ctx, patient_id: Key = None,
          name: Annotated[str | None, Query(max_length=64)] = None,
          accession: Key = None, study_uid: Key = None,
          modality: Annotated[str | None, Query(max_length=16)] = None,
          date_from: Day = None, date_to: Day = None,
          limit: Annotated[int, Query(ge=1, le=D.MAX_STUDIES)] = D.MAX_STUDIES
          ) -> dict[str, Any]:
    """The snapshot's studies (with their series) whose instances match every filter
    given: `patient_id`, `accession`, `study_uid` exactly, `name` a part of the
    patient's name (any case, any script), `modality` a series' modality, `date_from`
    and `date_to` the study date (YYYYMMDD or YYYY-MM-DD, inclusive). At most `limit`
    (≤ 500), `truncated` when there were more; `catalog` false when the snapshot's
    backup made no DICOM catalog."""
    who.require(R.SNAPSHOTS_READ)
    grant = grant_allows(ctx.catalog, who, institution, system, snapshot=snapshot_id,
                         use=ACTION)
    target = f"{institution}/{system} snapshot:{snapshot_id}"
    record: dict[str, Any] = {"grant": grant.id if grant else None, "system": system}
    try:
        flt = D.dicom_filter(patient_id, name, accession, study_uid, modality, date_from,
                             date_to)
        record["filters"] = flt.public()
        version = current_config(ctx.catalog, institution)
        if version is None:
            raise ObjectNotFound(f"{institution} has no configuration yet")
        S.check_password_sources(version.config, system,
                                 S.password_directory(ctx.catalog.url))
        found = D.search(version.config, system, snapshot_id, flt)
    except MedarkError as exc:
        audit(ctx.catalog, who.actor, who.address, ACTION, target, "failed", institution,
              {**record, "error": exc.code})
        raise
    audit(ctx.catalog, who.actor, who.address, ACTION, target, "ok", institution,
          {**record, "snapshot": found.found.snapshot.id, **D.audit_detail(found, limit)})
    return {**D.reply(found, flt, limit), "grant": grant.id if grant else None}
