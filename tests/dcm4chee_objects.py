"""dcm4chee-arc 5's stored objects, for the end-to-end tests of a dcm4chee group on either
index database (test_group_dcm4chee_cli on PostgreSQL, test_group_mariadb_cli on
MariaDB): a real DICOM file at dcm4chee's default storage path
(`{now,date,yyyy/MM/dd}/{0020000D,hash}/{0020000E,hash}/{00080018,hash}`), written and
synced before the test commits its rows (as dcm4chee stores), and the check that a
restored index's OK rows each have their file, byte-identical, except on the storage the
group does not map."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dicom_samples import Instance, encode, new_study


def java_hash(text: str) -> str:
    """dcm4che's `{tag,hash}`: Java's String.hashCode() as 8 upper-case hex digits."""
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return f"{h:08X}"


@dataclass
class Stored:
    """What the test remembers of an object whose rows committed."""

    storage: str
    path: str
    sha256: str


@dataclass
class Written:
    """An object's file on its storage, before its rows: its instance, its
    `storage_path` (relative to the storage's directory) and its bytes."""

    instance: Instance
    rel: str
    data: bytes

    def stored(self, storage: str) -> Stored:
        return Stored(storage, self.rel, hashlib.sha256(self.data).hexdigest())

    @property
    def md5(self) -> str:
        """location.digest as dcm4chee writes it."""
        return hashlib.md5(self.data).hexdigest()


def write_object(directory: Path, n: int) -> Written:
    """The n-th instance of the test (a one-instance study) written and synced under a
    storage's directory at dcm4chee's default path."""
    instance = new_study(5000 + n, count=1)[0]
    data = encode(instance)
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    rel = "/".join([day, java_hash(instance.study_uid), java_hash(instance.series_uid),
                    java_hash(instance.sop_uid)])
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Written(instance, rel, data)


def assert_restored(rows: Iterable[tuple[str, str, str, int]], stored: dict[str, Stored],
                    root: Path, unmapped: str) -> int:
    """Each OK row of a restored index (SOP Instance UID, storage_id, storage_path,
    object_size) is the object the test stored, and its file under the restored root's
    storage directory is that object, byte for byte; a row on the `unmapped` storage
    has no file there (not covered: not restored, not missing). Returns how many rows
    are on `unmapped`."""
    on_unmapped = 0
    for sop, storage, path, size in rows:
        source = stored[sop]
        assert (storage, path) == (source.storage, source.path)
        if storage == unmapped:
            on_unmapped += 1
            assert not (root / storage / path).exists()
            continue
        data = (root / storage / path).read_bytes()  # every row has its file...
        assert len(data) == size
        assert hashlib.sha256(data).hexdigest() == source.sha256, path  # ...the same
    return on_unmapped
