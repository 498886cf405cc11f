"""The throwaway Orthanc of tests/orthanc_server.py, with each index: it starts, takes an
instance by REST, gives it back byte-identical, and leaves no process or database."""

from __future__ import annotations

import psycopg
import pytest
from dicom_samples import encode, sample_instances
from orthanc_server import PG_HOST, PG_PORT, can_run_orthanc, running_orthanc


@pytest.mark.parametrize("index", ["sqlite", "postgresql"])
def test_orthanc_starts_takes_an_instance_and_is_gone_after(index: str) -> None:
    reason = can_run_orthanc(index)
    if reason:
        pytest.skip(reason)
    instance = sample_instances()[0]  # Chinese name, ISO_IR 192
    study, sop_uid, data = instance.study_uid, instance.sop_uid, encode(instance)
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
