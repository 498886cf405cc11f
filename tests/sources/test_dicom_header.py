"""The DICOM header reader (sources/dicom/header.py) on files pydicom wrote: every field
the catalog keeps, Chinese names in UTF-8 and GB18030, implicit VR and deflated data
sets, a header longer than the bytes the backup hands over, and malformed input that
is reported as such and never raises anything else."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from dicom_samples import (
    CHINESE_NAME,
    CHINESE_NAME_GB,
    Instance,
    dataset,
    encode,
    malformed_bytes,
    sample_instances,
    uid,
)
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medark.engine.dicom_catalog import record_of
from medark.sources.dicom import is_dicom
from medark.sources.dicom.header import Malformed, parse_header, read_header


def _fields(instance: Instance) -> tuple[str, ...]:
    return (instance.patient_id, instance.patient_name, instance.accession,
            instance.study_uid, instance.series_uid, instance.sop_uid, instance.sop_class,
            instance.transfer_syntax, instance.modality, instance.study_date,
            instance.study_description)


def test_every_sample_instance_reads_back_its_fields() -> None:
    instances = sample_instances()
    names = {i.patient_name for i in instances}
    assert CHINESE_NAME in names and CHINESE_NAME_GB in names  # UTF-8 and GB18030
    assert {i.charset for i in instances} == {"ISO_IR 192", "ISO_IR 100", "GB18030"}
    for instance in instances:
        raw = encode(instance)
        assert is_dicom(raw)
        header = parse_header(raw)
        assert (header.patient_id, header.patient_name, header.accession, header.study_uid,
                header.series_uid, header.sop_uid, header.sop_class,
                header.transfer_syntax, header.modality, header.study_date,
                header.study_description) == _fields(instance)


def test_a_deflated_data_set_is_read() -> None:
    instance = Instance("x.dcm", "P1", CHINESE_NAME, uid(90), uid(90, 1), uid(90, 1, 1),
                        transfer_syntax=DeflatedExplicitVRLittleEndian)
    header = parse_header(encode(instance))
    assert (header.patient_name, header.sop_uid) == (CHINESE_NAME, instance.sop_uid)


def test_a_header_past_the_head_is_read_from_the_file(tmp_path: Path) -> None:
    """A 100 KiB private element before the patient module: the first 64 KiB the backup
    hands over end inside the header, so the file's start is read again."""
    instance = Instance("big.dcm", "P2", "Wang^Wei", uid(91), uid(91, 1), uid(91, 1, 1))
    ds = dataset(instance)
    ds.private_block(0x0009, "MEDARK TEST", create=True).add_new(0x10, "OB",
                                                                 bytes(100_000))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    path = tmp_path / "big.dcm"
    path.write_bytes(raw)
    head = raw[:64 * 1024]
    with pytest.raises(Malformed):
        parse_header(head)
    assert read_header(str(path), head, len(raw)).series_uid == instance.series_uid
    with pytest.raises(Malformed, match="lacks"):  # the whole file, and still no UIDs
        read_header(str(path), head, len(head))


def test_malformed_and_foreign_bytes() -> None:
    with pytest.raises(Malformed, match="lacks StudyInstanceUID"):
        parse_header(malformed_bytes())
    record = record_of("/pacs/broken.dcm", 40, malformed_bytes())
    assert record is not None and record.malformed and record.study_uid == ""
    assert record_of("/docs/readme.txt", 5, b"hello" * 40) is None
    assert not is_dicom(b"DICM" + bytes(200)) and not is_dicom(b"short")


def test_random_damage_is_reported_as_malformed_never_raised() -> None:
    """Random bytes after the magic, and valid files with bytes flipped or cut: each
    parses or raises Malformed (the backup records it), nothing else."""
    rng = random.Random(18)
    good = encode(sample_instances()[0])
    samples = [bytes(128) + b"DICM" + rng.randbytes(rng.randrange(0, 400))
               for _ in range(150)]
    for _ in range(150):
        damaged = bytearray(good)
        for _flip in range(rng.randrange(1, 6)):
            damaged[rng.randrange(132, len(damaged))] = rng.randrange(256)
        samples.append(bytes(damaged[:rng.randrange(133, len(damaged) + 1)]))
    outcomes = set()
    for data in samples:
        try:
            parse_header(data)
            outcomes.add("parsed")
        except Malformed:
            outcomes.add("malformed")
    assert "malformed" in outcomes
