"""The throwaway Orthanc of tests/orthanc_server.py, with each index: it starts, takes an
instance by REST, gives it back byte-identical, and leaves no process or database."""

from __future__ import annotations

import io

import psycopg
import pytest
from orthanc_server import PG_HOST, PG_PORT, can_run_orthanc, running_orthanc
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def minimal_ct(study_uid: str) -> tuple[str, bytes]:
    """One small CT instance of `study_uid`: (SOPInstanceUID, file bytes)."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.PatientID, ds.PatientName = "000123", "张^三"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.Modality, ds.StudyDate = "CT", "20261103"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(32)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return sop_uid, out.getvalue()


@pytest.mark.parametrize("index", ["sqlite", "postgresql"])
def test_orthanc_starts_takes_an_instance_and_is_gone_after(index: str) -> None:
    reason = can_run_orthanc(index)
    if reason:
        pytest.skip(reason)
    study = generate_uid()
    sop_uid, data = minimal_ct(study)
    with running_orthanc(index=index) as pacs:
        assert pacs.studies() == []
        assert pacs.upload(data)["Status"] == "Success"
        assert pacs.study_uids() == [study]
        assert pacs.sop_instance_uids() == [sop_uid]
        assert pacs.instance_file(sop_uid) == data
        assert any(pacs.storage_dir.rglob("*")), "the file is in the server's own storage"
        assert pacs.get("/system")["DicomPort"] == pacs.dicom_port
        database, proc, base = pacs.pg_database, pacs._proc, pacs.base
        assert proc is not None
        if index == "postgresql":
            assert database is not None and pacs.index_dsn is not None
            with psycopg.connect(pacs.index_dsn) as conn:
                assert conn.execute("SELECT count(*) FROM resources").fetchone() == (4,)
        else:
            assert database is None
            assert (pacs.storage_dir / "index").exists()
    assert proc.poll() is not None, "Orthanc still runs after the block"
    assert not base.exists()
    if database is not None:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres",
                             dbname="postgres") as conn:
            left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (database,)).fetchall()
        assert left == [], "the throwaway index database was not dropped"
