"""A small, deterministic sample of hospital data for `medark demo` (and `make run`).

DICOM Part-10 files (preamble, 'DICM', a tiny explicit-VR header, 16-bit pixel data with
a smooth body and noise, like CT/MR images), some studies re-sent with new headers
but identical pixels (as PACS do), and an HIS database dump in pg_dump style.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SampleStats:
    files: int = 0
    nbytes: int = 0


def _element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in (b"UI", b"OB") else b" "
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _pixels(rng: random.Random, rows: int, cols: int) -> bytes:
    base = rng.randint(200, 900)
    row_values = []
    cy, cx = rows / 2, cols / 2
    for y in range(rows):
        dy = (y - cy) / cy
        line = bytearray()
        for x in range(cols):
            dx = (x - cx) / cx
            inside = dx * dx + dy * dy < 0.8
            value = base + int(300 * dy) + rng.randint(0, 15) if inside else 0
            line += struct.pack("<H", value & 0x0FFF)
        row_values.append(bytes(line))
    return b"".join(row_values)


def dicom_file(rng: random.Random, patient: str, study_uid: str, sop_uid: str,
               pixels: bytes, rows: int, cols: int) -> bytes:
    meta = _element(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1")
    header = b"\0" * 128 + b"DICM"
    header += _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta))) + meta
    data = b"".join([
        _element(0x0008, 0x0018, b"UI", sop_uid.encode()),
        _element(0x0008, 0x0060, b"CS", rng.choice([b"CT", b"MR", b"CR"])),
        _element(0x0010, 0x0010, b"PN", patient.encode()),
        _element(0x0020, 0x000D, b"UI", study_uid.encode()),
        _element(0x0028, 0x0010, b"US", struct.pack("<H", rows)),
        _element(0x0028, 0x0011, b"US", struct.pack("<H", cols)),
        _element(0x0028, 0x0100, b"US", struct.pack("<H", 16)),
        _element(0x7FE0, 0x0010, b"OW", pixels),
    ])
    return header + data


Writer = Callable[[Path, bytes], None]


def _write_study(write: Writer, rng: random.Random, day_dir: Path, uid_suffix: str,
                 kept_pixels: list[tuple[bytes, int, int]]) -> None:
    """One study of 3-6 images; one in five re-sends earlier pixels with new headers."""
    patient = f"PATIENT^{rng.randint(10000, 99999)}"
    study_uid = f"1.2.826.0.1.3680043.10.{uid_suffix}"
    resend = bool(kept_pixels) and rng.random() < 0.2
    for image in range(rng.randint(3, 6)):
        if resend:
            pixels, rows, cols = kept_pixels[image % len(kept_pixels)]
        else:
            rows, cols = rng.choice([(256, 256), (384, 384), (512, 512)])
            pixels = _pixels(rng, rows, cols)
            kept_pixels.append((pixels, rows, cols))
        sop = f"{study_uid}.{image}"
        write(day_dir / study_uid / f"{sop}.dcm",
              dicom_file(rng, patient, study_uid, sop, pixels, rows, cols))


def add_study(day_dir: Path, seed: int) -> int:
    """A newly arrived study under `day_dir`; returns the bytes written."""
    written = 0

    def write(path: Path, data: bytes) -> None:
        nonlocal written
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += len(data)

    _write_study(write, random.Random(seed), day_dir, f"{seed}.new", [])
    return written


def generate(target: Path, studies: int = 12, seed: int = 7) -> SampleStats:
    """Write the sample tree under `target` (created); returns what was written."""
    rng = random.Random(seed)
    stats = SampleStats()

    def write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stats.files += 1
        stats.nbytes += len(data)

    kept_pixels: list[tuple[bytes, int, int]] = []
    for study in range(studies):
        day = f"2026/11/{1 + study % 20:02d}"
        _write_study(write, rng, target / "PACS" / day, f"{seed}.{study}", kept_pixels)
    lines = ["-- HIS database dump (sample)", "BEGIN;"]
    for row in range(20000):
        lines.append(
            f"INSERT INTO lab_result VALUES ({row}, {rng.randint(1, 5000)}, "
            f"'{rng.choice(['GLU', 'HB', 'WBC', 'CRP', 'NA', 'K'])}', "
            f"{rng.uniform(0.1, 200):.2f}, '{rng.choice(['final', 'preliminary'])}');"
        )
    lines.append("COMMIT;")
    write(target / "DB" / "his_dump.sql", ("\n".join(lines) + "\n").encode())
    write(target / "DB" / "README.txt", b"Nightly HIS dump; restored by the DBA on request.\n")
    (target / "PACS" / "incoming").mkdir(parents=True, exist_ok=True)
    link = target / "DB" / "latest.sql"
    if not link.is_symlink():
        os.symlink("his_dump.sql", link)
    return stats
