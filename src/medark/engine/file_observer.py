"""What a file backup tells an observer (the DICOM catalog, engine/dicom_catalog.py)
about the files it stores, so the observer needs no second read of them.

Kept apart from the observer's code so that a backup imports no parser (pydicom) unless
an observer is given. The backup calls, in this order:

- `start(parent)` once, with the parent snapshot (None for a first or `--force` backup);
- `read(path, size, head)` for each file it read (new or changed), from its file threads,
  `path` being the file's path in the snapshot, `head` the first bytes it read (the whole
  file for small files) and `size` the bytes stored; `fd` is open on the file when given;
- `unchanged(path)` for each file it reused from the parent without reading it;
- `directory(path, unchanged)` once every file of a directory was told (and its
  subdirectories' own calls were made): `unchanged` when its whole tree is the parent's
  (the same tree id). Directories above the backed-up paths get no call;
- `finish(snapshot)` once, after the data is flushed and before the snapshot is saved: the
  observer stores what it gathered and notes it in the snapshot.
"""

from __future__ import annotations

from typing import Protocol

from medark.snapshot.model import Snapshot

HEAD_BYTES = 64 * 1024
"""How much of a large file's start the backup hands over (one pread, from the page
cache: the file was just read)."""


class FileObserver(Protocol):
    def start(self, parent: Snapshot | None) -> None: ...

    def read(self, path: str, size: int, head: bytes) -> None: ...

    def unchanged(self, path: str) -> None: ...

    def directory(self, path: str, unchanged: bool) -> None: ...

    def finish(self, snapshot: Snapshot) -> None: ...
