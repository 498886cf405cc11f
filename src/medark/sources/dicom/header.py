"""The header of a DICOM Part-10 file: the fields the DICOM catalog records, parsed with
pydicom from the bytes the backup already read, never the pixel data.

A DICOM file is recognised by "DICM" at offset 128 (Orthanc stores files without an
extension). Parsing stops after (0020,000E) Series Instance UID, the last field needed,
so large private elements or the pixel data that follow are never decoded. When the
bytes given end before the header does (a large file's first 64 KiB held only part of
it), the file's start is read again from disk, up to the header's end.

Malformed input is never an error of the backup: `parse_header` raises `Malformed` with
a one-line reason, which the catalog records for the file.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from pydicom import config as pydicom_config
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.filereader import data_element_generator
from pydicom.tag import BaseTag
from pydicom.valuerep import TEXT_VR_DELIMS, PersonName

from medark.sources.dicom import MAGIC, MAGIC_OFFSET

LAST_TAG = 0x0020000E
"""Series Instance UID: every field the catalog keeps has a smaller tag."""
REREAD_LIMIT = 16 * 1024 * 1024
"""How far into a file a header is looked for when the head given did not hold it."""

# The catalog reads what PACS wrote, valid or not; a value that breaks a VR's rules is
# kept as it is rather than warned about once per file.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE


class Malformed(Exception):
    """The file starts like DICOM but its header does not parse, or lacks a UID."""


@dataclass(frozen=True, slots=True)
class DicomHeader:
    patient_id: str
    patient_name: str
    accession: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    transfer_syntax: str
    modality: str
    study_date: str
    study_description: str


_META = 0x0002FFFF
_TS = 0x00020010
_CHARSET = 0x00080005
_FIELDS = {
    0x00100020: "patient_id", 0x00100010: "patient_name", 0x00080050: "accession",
    0x0020000D: "study_uid", 0x0020000E: "series_uid", 0x00080018: "sop_uid",
    0x00080016: "sop_class", 0x00080060: "modality", 0x00080020: "study_date",
    0x00081030: "study_description", 0x00020003: "meta_sop_uid",
    0x00020002: "meta_sop_class",
}
_CHARSET_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC"}
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")


def _meta_end(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return int(tag) > _META


def _header_end(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return int(tag) > LAST_TAG


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", "replace").replace("\x00", "").strip()


def parse_header(data: bytes | BinaryIO) -> DicomHeader:
    """The catalog's fields of one Part-10 file; `Malformed` when they cannot be had.

    pydicom's element reader, without building a Dataset: values are decoded only for
    the fields kept (a Dataset converts each element it is asked for at about ten times
    the cost, which a backup of millions of files would feel)."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        values = _raw_fields(stream)
        charsets = values.pop("charset", ("CS", b""))[1]
        encodings = convert_encodings(_ascii(charsets).split("\\") if charsets else [])
        text: dict[str, str] = {}
        for name, (vr, raw) in values.items():
            if vr == "PN":
                text[name] = str(PersonName(raw, encodings)).replace("\x00", "").strip()
            elif vr in _CHARSET_VRS:
                text[name] = decode_bytes(raw, encodings, TEXT_VR_DELIMS).replace(
                    "\x00", "").strip()
            else:
                text[name] = _ascii(raw)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Malformed(f"header does not parse: {reason[:200]}") from None
    header = DicomHeader(
        patient_id=text.get("patient_id", ""),
        patient_name=text.get("patient_name", ""),
        accession=text.get("accession", ""),
        study_uid=text.get("study_uid", ""),
        series_uid=text.get("series_uid", ""),
        sop_uid=text.get("sop_uid") or text.get("meta_sop_uid", ""),
        sop_class=text.get("sop_class") or text.get("meta_sop_class", ""),
        transfer_syntax=text.get("transfer_syntax", ""),
        modality=text.get("modality", ""),
        study_date=text.get("study_date", ""),
        study_description=text.get("study_description", ""),
    )
    missing = [name for name, value in (("StudyInstanceUID", header.study_uid),
                                        ("SeriesInstanceUID", header.series_uid),
                                        ("SOPInstanceUID", header.sop_uid)) if not value]
    if missing:
        raise Malformed(f"header lacks {', '.join(missing)}")
    return header


def _raw_fields(stream: BinaryIO) -> dict[str, tuple[str, bytes]]:
    """(VR, raw bytes) of the kept fields, the character set and the transfer syntax."""
    preamble = stream.read(MAGIC_OFFSET + 4)
    if preamble[MAGIC_OFFSET:] != MAGIC:
        raise ValueError("no DICM prefix")
    values: dict[str, tuple[str, bytes]] = {}
    syntax = ""
    for elem in data_element_generator(stream, False, True, stop_when=_meta_end):
        tag = int(elem.tag)
        raw = elem.value if isinstance(elem.value, bytes) else b""
        if tag == _TS:
            syntax = _ascii(raw)
        elif tag in _FIELDS:
            values[_FIELDS[tag]] = ("UI", raw)
    values["transfer_syntax"] = ("UI", syntax.encode())
    if syntax in DEFLATED:
        stream = io.BytesIO(zlib.decompress(stream.read(), -zlib.MAX_WBITS))
    implicit, little = syntax == IMPLICIT_LE, syntax != EXPLICIT_BE
    implicit_vrs = {"patient_name": "PN", "patient_id": "LO", "accession": "SH",
                    "study_description": "LO"}
    for elem in data_element_generator(stream, implicit, little, stop_when=_header_end):
        tag = int(elem.tag)
        raw = elem.value if isinstance(elem.value, bytes) else b""
        if tag == _CHARSET:
            values["charset"] = ("CS", raw)
        elif tag in _FIELDS:
            name = _FIELDS[tag]
            vr = elem.VR if elem.VR is not None and not implicit else implicit_vrs.get(name,
                                                                                       "UI")
            values[name] = (str(vr), raw)
    return values


def read_header(path: str, head: bytes, size: int) -> DicomHeader:
    """From the first bytes of a file (the whole file when `len(head) >= size`), reading
    the file's start again only when those bytes end inside the header."""
    try:
        return parse_header(head)
    except Malformed:
        if len(head) >= size:
            raise
    try:
        with open(path, "rb") as f:
            return parse_header(io.BytesIO(f.read(REREAD_LIMIT)))
    except OSError as exc:
        raise Malformed(f"header cannot be read again: {exc.strerror or exc}") from None
