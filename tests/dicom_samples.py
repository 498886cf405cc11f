"""Small synthetic DICOM files for the tests, written with pydicom (shared: the catalog's,
the DICOM restore's and the PACS tests use it).

    from dicom_samples import write_sample_tree, write_instance, Instance

`write_sample_tree(root)` writes a fixed PACS-like tree and returns a `SampleTree`
describing it: four patients (one with a Chinese name in UTF-8, `ISO_IR 192`, one in
`GB18030`), five studies, eight series, some files named `<SOP UID>.dcm`, others without
extension as Orthanc stores them, one malformed DICOM file and one file that is not DICOM.
Every instance has 8x8 16-bit pixels (128 bytes), so the tree stays tiny.
`write_instance(path, Instance(...))` writes one more (a new study, a changed file).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)

ROOT_UID = "1.2.826.0.1.3680043.8.498.7"
"""An arbitrary root below pydicom's for the synthetic UIDs (stable across runs)."""

CHINESE_NAME = "张^三"
CHINESE_NAME_GB = "李^四"


@dataclass(frozen=True)
class Instance:
    """One DICOM instance as written (and as the catalog must report it)."""

    relpath: str
    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str = "CT"
    study_date: str = "20261103"
    accession: str = ""
    study_description: str = ""
    charset: str = "ISO_IR 192"
    transfer_syntax: str = ExplicitVRLittleEndian
    sop_class: str = CTImageStorage
    pixels: bytes = field(default=bytes(range(128)), repr=False)


@dataclass
class SampleTree:
    root: Path
    instances: list[Instance]
    malformed: list[str]
    """Relative paths of files with a DICOM preamble whose header does not parse."""
    not_dicom: list[str]

    def path(self, instance: Instance) -> Path:
        return self.root / instance.relpath

    def study(self, study_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.study_uid == study_uid]

    def studies(self) -> list[str]:
        return sorted({i.study_uid for i in self.instances})

    def series(self, series_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.series_uid == series_uid]


def uid(*parts: int) -> str:
    return ".".join([ROOT_UID, *(str(p) for p in parts)])


def dataset(instance: Instance) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = instance.sop_class
    meta.MediaStorageSOPInstanceUID = instance.sop_uid
    meta.TransferSyntaxUID = instance.transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = instance.charset
    ds.SOPClassUID = instance.sop_class
    ds.SOPInstanceUID = instance.sop_uid
    ds.StudyDate = instance.study_date
    ds.AccessionNumber = instance.accession
    ds.Modality = instance.modality
    ds.StudyDescription = instance.study_description
    ds.PatientName = instance.patient_name
    ds.PatientID = instance.patient_id
    ds.StudyInstanceUID = instance.study_uid
    ds.SeriesInstanceUID = instance.series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = int(instance.sop_uid.rsplit(".", 1)[-1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = instance.pixels
    return ds


def encode(instance: Instance) -> bytes:
    """The Part-10 file's bytes (preamble, "DICM", meta group, data set)."""
    from io import BytesIO

    buffer = BytesIO()
    dataset(instance).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_instance(root: Path, instance: Instance) -> Path:
    path = root / instance.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(instance))
    return path


def malformed_bytes() -> bytes:
    """A preamble and "DICM", then a meta group element whose length runs past the end."""
    return (b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x10\x00\x00\x00"
            + b"\x02\x00\x01\x00OB\x00\x00\xff\xff\xff\x7f" + b"\x01")


def sample_instances() -> list[Instance]:
    """The fixed set `write_sample_tree` writes (see the module's docstring)."""
    out: list[Instance] = []

    def study(n: int, patient_id: str, name: str, accession: str, date: str,
              description: str, series: list[tuple[str, int]], charset: str = "ISO_IR 192",
              orthanc: bool = False, syntax: str = ExplicitVRLittleEndian) -> None:
        study_uid = uid(n)
        for s, (modality, count) in enumerate(series, start=1):
            series_uid = uid(n, s)
            for i in range(1, count + 1):
                sop = uid(n, s, i)
                rel = (f"{sop[-2:]}/{sop}" if orthanc else
                       f"{date[:4]}/{date[4:6]}/{study_uid}/{series_uid}/{sop}.dcm")
                out.append(Instance(
                    rel, patient_id, name, study_uid, series_uid, sop, modality, date,
                    accession, description, charset, syntax,
                    MRImageStorage if modality == "MR" else CTImageStorage))

    study(1, "P000123", CHINESE_NAME, "ACC1001", "20261103", "胸部CT平扫",
          [("CT", 3), ("CT", 2)])
    study(2, "P000123", CHINESE_NAME, "ACC1002", "20261110", "头颅MR", [("MR", 2)])
    study(3, "P000456", "Smith^John", "ACC2001", "20261001", "Chest CT", [("CT", 2)],
          charset="ISO_IR 100", orthanc=True)
    study(4, "P000789", CHINESE_NAME_GB, "ACC3001", "20260915", "腹部超声",
          [("US", 1), ("CT", 2)], charset="GB18030", syntax=ImplicitVRLittleEndian)
    study(5, "P000999", "Doe^Jane", "ACC4001", "20261201", "Knee MR",
          [("MR", 1), ("MR", 1)], charset="ISO_IR 100", orthanc=True)
    return out


def write_sample_tree(root: Path) -> SampleTree:
    instances = sample_instances()
    for instance in instances:
        write_instance(root, instance)
    (root / "broken").mkdir(parents=True, exist_ok=True)
    (root / "broken" / "truncated.dcm").write_bytes(malformed_bytes())
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports" / "readme.txt").write_text("not an image\n" * 20)
    return SampleTree(root, instances, ["broken/truncated.dcm"], ["reports/readme.txt"])


def new_study(n: int = 6, patient_id: str = "P000123", name: str = CHINESE_NAME,
              count: int = 2) -> list[Instance]:
    """A study not in the sample tree (added between two backups)."""
    return [Instance(f"2026/12/{uid(n)}/{uid(n, 1)}/{uid(n, 1, i)}.dcm", patient_id, name,
                     uid(n), uid(n, 1), uid(n, 1, i), "CT", "20261205", f"ACC{n}001",
                     "复查", "ISO_IR 192") for i in range(1, count + 1)]


def changed(instance: Instance, **fields: str) -> Instance:
    """The same file with other header values (a corrected patient name...)."""
    return replace(instance, **fields)  # type: ignore[arg-type]
