"""DICOM files: their headers, for the catalog (nothing here touches the repository).

Recognising a DICOM file needs no parser, so a backup that meets none never imports
pydicom (about 0.3 s): header.py is imported on the first file that starts like one.
"""

MAGIC = b"DICM"
MAGIC_OFFSET = 128


def is_dicom(head: bytes | memoryview) -> bool:
    """A DICOM Part-10 file: "DICM" after the 128-byte preamble (Orthanc's files have no
    extension, so the name cannot tell)."""
    return bytes(head[MAGIC_OFFSET:MAGIC_OFFSET + 4]) == MAGIC
