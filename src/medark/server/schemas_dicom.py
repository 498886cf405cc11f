"""The reply of the DICOM study search (server/dicom_search.py, routes/dicom.py).

No `from __future__ import annotations`: pydantic and FastAPI read these annotations.
"""

from medark.server.schemas import Reply


class DicomSeries(Reply):
    series_uid: str
    modality: str
    instances: int
    size: int
    """Bytes of its instances' files."""


class DicomStudy(Reply):
    study_uid: str
    patient_id: str
    patient_name: str
    accession: str
    study_date: str
    """YYYYMMDD as the header says (may be empty)."""
    study_description: str
    modalities: list[str]
    series_count: int
    instances: int
    size: int
    series: list[DicomSeries]


class DicomReply(Reply):
    snapshot: str
    grant: int | None
    catalog: bool
    """The snapshot has a DICOM catalog (false: its backup made none; search nothing)."""
    catalog_instances: int
    unreadable: str | None
    """Why its catalog cannot be read, when it cannot."""
    filters: dict[str, str]
    total: int
    """Studies matching; `studies` lists the first `limit`."""
    truncated: bool
    studies: list[DicomStudy]
