"""The PostgreSQL WAL archive inside a repository: push, fetch, list.

Each WAL file (segment, timeline history, backup history, or a version of the segment
being streamed) is stored as fixed-size data blobs plus one sealed record named
``wal/<system id>/<dir>/<file name>``. These are the only objects named by meaning rather
than content, because PostgreSQL asks for a WAL file by its name; the record repeats the
name and the system id inside its authenticated plaintext, and a read checks both, so a
record cannot be moved to another name unnoticed. Records are written once: pushing a file
that is already archived succeeds only if the content is identical (PostgreSQL's rule for
archive_command), so retries are safe and a diverged server is refused.

Fixed-size blocks rather than content-defined chunks: WAL only grows at its end, so a
newer version of a streamed segment shares every block but the last with the older one,
and the all-zero tail of a preallocated segment is one blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medark.errors import (
    AlreadyExists,
    IntegrityError,
    ObjectNotFound,
    RepositoryCorrupt,
    UsageError,
    WalConflict,
)
from medark.repo.pack import BlobType, SaveResult
from medark.sources.postgres.wal import PARTIAL_RE, SEGMENT_RE, wal_file_kind
from medark.util import clock, jsondoc
from medark.util.files import atomic_write

WAL_PREFIX = "wal/"
BLOCK = 256 * 1024
RECORD_VERSION = 1


class WalRepo(Protocol):
    """What the archive needs from a repository (docs/architecture.md, convention 4)."""

    def save_blob(self, blob_type: BlobType, data: bytes | memoryview,
                  blob_id: bytes | None = None, indexed: bool | None = None) -> SaveResult: ...

    def load_blob(self, blob_id: bytes) -> bytes: ...

    def flush(self) -> None: ...

    def seal(self, plaintext: bytes) -> bytes: ...

    def unseal(self, sealed: bytes) -> bytes: ...

    def save_object(self, name: str, data: bytes, needs: Iterable[bytes] = ()) -> None: ...

    def load_object(self, name: str) -> bytes: ...

    def object_exists(self, name: str) -> bool: ...

    def list_names(self, prefix: str) -> Iterator[str]: ...

    def remove_object(self, name: str) -> None: ...

    def sync_index(self) -> None: ...


@dataclass
class WalRecord:
    name: str
    """The WAL file name as PostgreSQL knows it (for a streamed version: `<seg>.partial`)."""
    system_id: str
    size: int
    sha256: str
    blobs: list[bytes]
    archived: str
    via: str
    version: str = ""
    """For streamed versions of a partial segment: a sortable stamp; newest wins."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps({
            "v": RECORD_VERSION, "name": self.name, "system_id": self.system_id,
            "size": self.size, "sha256": self.sha256, "blobs": [b.hex() for b in self.blobs],
            "archived": self.archived, "via": self.via, "version": self.version,
            "extra": self.extra,
        }, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> WalRecord:
        """RepositoryCorrupt unless every field has the writer's type (a name, a size,
        a SHA-256, blob ids, a time): a record that parsed must not fail in a restore."""
        try:
            doc = jsondoc.load_object(raw)
            record = cls(jsondoc.text(doc, "name", None), jsondoc.text(doc, "system_id", None),
                         jsondoc.integer(doc, "size"), jsondoc.text(doc, "sha256", None),
                         jsondoc.hex_ids(doc, "blobs"), jsondoc.text(doc, "archived", None),
                         jsondoc.text(doc, "via", None), jsondoc.text(doc, "version"),
                         doc.get("extra") or {})
            if not isinstance(record.extra, dict):
                raise TypeError("extra is not an object")
            clock.parse_time(record.archived)
            return record
        except KeyError as exc:
            raise RepositoryCorrupt(f"{where}: malformed WAL record: field {exc} is missing") \
                from None
        except jsondoc.MALFORMED as exc:
            raise RepositoryCorrupt(f"{where}: malformed WAL record: {exc}") from None


def _check_system_id(system_id: str) -> str:
    if not system_id.isdigit():
        raise UsageError(f"not a PostgreSQL system identifier: {system_id!r}")
    return system_id


def record_name(system_id: str, wal_name: str, version: str = "") -> str:
    """wal/<system id>/<timeline+log id>/<file>, history files under `timelines`."""
    kind = wal_file_kind(wal_name)
    if kind is None:
        raise UsageError(f"{wal_name!r} is not a WAL file name PostgreSQL archives")
    directory = "timelines" if kind == "history" else wal_name[:16]
    suffix = f"-{version}" if version else ""
    return f"{WAL_PREFIX}{_check_system_id(system_id)}/{directory}/{wal_name}{suffix}"


def _blocks(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    for offset in range(0, len(view), BLOCK):
        yield view[offset : offset + BLOCK]


@dataclass
class PushResult:
    name: str
    stored: bool
    """False when an identical copy was already archived."""
    bytes_added: int


class WalArchive:
    """One database cluster's WAL in one repository."""

    def __init__(self, repo: WalRepo, system_id: str) -> None:
        self.repo = repo
        self.system_id = _check_system_id(system_id)

    # ---- push ----------------------------------------------------------------------

    def push(self, wal_name: str, data: bytes, via: str) -> PushResult:
        """Archive a complete WAL file (archive_command, or a segment the stream closed)."""
        name = record_name(self.system_id, wal_name)
        digest = hashlib.sha256(data).hexdigest()
        if self.repo.object_exists(name):
            return self._already(name, wal_name, digest)
        record, added = self._store(wal_name, data, digest, via, "")
        try:
            self.repo.save_object(name, self.repo.seal(record.to_json()), record.blobs)
        except AlreadyExists:  # another pusher won the race: same rule as above
            return self._already(name, wal_name, digest)
        return PushResult(wal_name, True, added)

    def push_partial(self, segment: str, data: bytes, extra: dict[str, Any]) -> PushResult:
        """Archive a version of the segment being streamed (RPO of seconds); the newest
        version is what wal-fetch serves until the complete segment lands."""
        if not SEGMENT_RE.match(segment):
            raise UsageError(f"not a WAL segment name: {segment!r}")
        wal_name = f"{segment}.partial"
        version = f"{clock.now().timestamp() * 1e6:017.0f}"
        digest = hashlib.sha256(data).hexdigest()
        record, added = self._store(wal_name, data, digest, "stream", version, extra)
        self.repo.save_object(record_name(self.system_id, wal_name, version),
                              self.repo.seal(record.to_json()), record.blobs)
        return PushResult(wal_name, True, added)

    def _store(self, wal_name: str, data: bytes, digest: str, via: str, version: str,
               extra: dict[str, Any] | None = None) -> tuple[WalRecord, int]:
        ids = []
        added = 0
        for block in _blocks(data):
            result = self.repo.save_blob(BlobType.DATA, block)
            ids.append(result.id)
            added += result.stored
        self.repo.flush()  # packs and index before the record that refers to them
        record = WalRecord(wal_name, self.system_id, len(data), digest, ids,
                           clock.format_time(clock.now()), via, version, dict(extra or {}))
        return record, added

    def _already(self, name: str, wal_name: str, digest: str) -> PushResult:
        """Success only if the archived copy is identical and still intact: PostgreSQL
        deletes its own copy once archive_command succeeds."""
        existing = self.read_record(name)
        if existing.sha256 != digest:
            raise WalConflict(
                f"{wal_name} is already archived with different content (another server "
                "with the same system identifier, or a restored copy archiving into the "
                "same place?); refusing to overwrite it")
        self.content(existing)  # raises IntegrityError if the stored copy is damaged
        return PushResult(wal_name, False, 0)

    # ---- read ----------------------------------------------------------------------

    def read_record(self, name: str) -> WalRecord:
        raw = self.repo.load_object(name)
        try:
            record = WalRecord.from_json(self.repo.unseal(raw), name)
        except IntegrityError as exc:
            raise IntegrityError(f"{name}: {exc}") from None
        try:
            expected = record_name(record.system_id, record.name, record.version)
        except UsageError:
            raise IntegrityError(f"{name}: the record names no WAL file") from None
        if expected != name or record.system_id != self.system_id:
            raise IntegrityError(f"{name}: the record names {expected}, not itself")
        return record

    def find(self, wal_name: str) -> WalRecord | None:
        """The record PostgreSQL's restore_command should get for `wal_name`: the complete
        file, else (for a segment) the newest streamed version of it."""
        name = record_name(self.system_id, wal_name)
        with contextlib.suppress(ObjectNotFound):
            return self.read_record(name)
        if not SEGMENT_RE.match(wal_name):
            return None
        prefix = record_name(self.system_id, f"{wal_name}.partial") + "-"
        versions = sorted(self.repo.list_names(prefix))
        return self.read_record(versions[-1]) if versions else None

    def content(self, record: WalRecord) -> bytes:
        return record_content(self.repo, record.blobs, record.size, record.sha256,
                              f"WAL file {record.name}")

    def fetch_to(self, wal_name: str, destination: str) -> WalRecord | None:
        """Write `wal_name` to `destination` (temp file, fsync, rename); None if absent."""
        record = self.find(wal_name)
        if record is None:
            return None
        data = self.content(record)
        write_file_atomically(destination, data)
        return record

    def names(self) -> list[str]:
        """Every archived record name of this cluster (full and streamed versions)."""
        return sorted(self.repo.list_names(f"{WAL_PREFIX}{self.system_id}/"))

    def inventory(self) -> Inventory:
        return Inventory.from_names(
            n.rsplit("/", 1)[-1] for n in self.names()
        )


def record_content(repo: WalRepo, blobs: list[bytes], size: int, sha256: str,
                   what: str) -> bytes:
    """A record's file, verified against the record. A record written after this
    repository was opened (by a stream still running) names blobs of index files written
    since: its writer indexes them before it writes the record, so one refresh of the
    index finds them; a blob still missing after it is missing."""
    try:
        data = b"".join(repo.load_blob(blob_id) for blob_id in blobs)
    except ObjectNotFound:
        repo.sync_index()
        data = b"".join(repo.load_blob(blob_id) for blob_id in blobs)
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(f"{what}: content does not match its record")
    return data


def write_file_atomically(destination: str, data: bytes) -> None:
    """A WAL or binlog record into a spool directory the database's OS user owns: a new
    temporary name with O_EXCL|O_NOFOLLOW (a link planted there is never written
    through), renamed over `destination`; the server fsyncs what it restores itself."""
    atomic_write(Path(destination), data, 0o600, sync_dir=False)


@dataclass
class Inventory:
    """What the archive holds, by kind, from record names alone (no reads)."""

    segments: set[str] = field(default_factory=set)
    partial: dict[str, list[str]] = field(default_factory=dict)
    """segment → its streamed versions, oldest first."""
    histories: set[str] = field(default_factory=set)
    backups: set[str] = field(default_factory=set)

    @classmethod
    def from_names(cls, names: Iterator[str] | list[str]) -> Inventory:
        inv = cls()
        for base in names:
            stem, _, version = base.partition("-")
            kind = wal_file_kind(stem)
            if kind == "segment":
                inv.segments.add(stem)
            elif kind == "partial":
                match = PARTIAL_RE.match(stem)
                assert match is not None
                inv.partial.setdefault(match.group(1), []).append(version)
            elif kind == "history":
                inv.histories.add(stem)
            elif kind == "backup":
                inv.backups.add(stem)
        for versions in inv.partial.values():
            versions.sort()
        return inv


def wal_record_blobs(repo: WalRepo) -> Iterator[tuple[str, list[bytes]]]:
    """(record name, blob ids) of every WAL record of every cluster, for prune and check."""
    for name in repo.list_names(WAL_PREFIX):
        try:
            raw = repo.unseal(repo.load_object(name))
        except ObjectNotFound:
            continue  # expired by a concurrent forget
        except IntegrityError as exc:
            raise RepositoryCorrupt(f"WAL record {name}: {exc}") from None
        yield name, WalRecord.from_json(raw, name).blobs
