"""Fuzz targets: every parser that reads repository or source bytes, one function each.

A target takes one input (bytes) and feeds it to the real parser. The contract checked by
`run_one`, for every input: the parser returns, or raises a MedarkError (one clear line,
an exit code) — never another exception, never a hang (a per-input alarm), never a large
allocation driven by a length field (tracemalloc's peak), and for the readers that
extract, never a write outside their temporary target (a canary beside it).

The same targets run under hypothesis in `make test` (tests/fuzz/test_fuzz_parsers.py)
and coverage-guided under atheris in `make fuzz` (tests/fuzz/run_atheris.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import tracemalloc
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import zstandard

from medark.config.loader import load_config
from medark.engine.dicom_catalog import decode_records, decode_segment
from medark.engine.mysql_binlog import BinlogArchive, BinlogRecord
from medark.engine.mysql_binlog import record_name as binlog_record_name
from medark.engine.pg_restore import restore_base
from medark.engine.pg_wal import WalArchive, WalRecord
from medark.engine.pg_wal import record_name as pg_wal_record_name
from medark.engine.worm import HOLDS_PREFIX, HoldRecord, survey_holds
from medark.errors import MedarkError, RepositoryLocked
from medark.repo import index_file
from medark.repo.chunker import Chunker
from medark.repo.compression import Compressor, decompress
from medark.repo.config import RepoConfig
from medark.repo.crypto import SUITES, Crypto, content_name
from medark.repo.keys import key_info, open_key_file, verify_key_file
from medark.repo.locks import LOCKS_PREFIX, LockManager, survey_locks
from medark.repo.pack import TRAILER, parse_header
from medark.snapshot.model import Snapshot, decode_tree
from medark.sources.dicom.header import Malformed
from medark.sources.dicom.header import parse_header as parse_dicom_header
from medark.sources.mysql.binlog import (
    parse_binlog_info,
    parse_dump_coordinates,
    parse_file_name,
    scan_events,
)
from medark.sources.mysql.xbstream import XbstreamGuard, XbstreamTap
from medark.sources.postgres.tar_tap import TarTap
from medark.storage.mem import MemoryBackend
from medark.util import clock

CORPUS = Path(__file__).parent / "corpus"
MASTER_KEY = bytes(range(64))
"""The fixed master key the corpus's sealed samples are sealed with (tests only)."""
PASSWORD = b"fuzz"
"""The password of the corpus's key files."""
SUITE = SUITES["aes-256-gcm"]
SECONDS = 10.0
"""A parser still busy with one small input after this long is taken to hang."""
SLOW_SECONDS = {"key_file": 30.0, "pg_base_tar": 30.0, "xbstream_guard": 30.0}
"""Targets that legitimately do more per input (scrypt, a filesystem, mbstream)."""
PEAK_BYTES = 256 * 1024 * 1024
"""More than any small input may make a parser allocate: past this, a length field was
believed (the largest legitimate expansion, zstd's, is about 32 000 times a KiB input)."""

Target = Callable[[bytes], None]
TARGETS: dict[str, Target] = {}


def target(fn: Target) -> Target:
    TARGETS[fn.__name__] = fn
    return fn


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` swallows it."""


class Violation(AssertionError):
    """An input broke the contract (too much memory, a write outside the target)."""


_crypto: Crypto | None = None


def crypto() -> Crypto:
    global _crypto
    if _crypto is None:
        _crypto = Crypto(SUITE, MASTER_KEY)
    return _crypto


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("the parser did not finish within its deadline")


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """SIGALRM after `seconds`; an alarm already set (pytest-timeout's) is put back with
    what remained of it. Not used under atheris, whose own -timeout owns SIGALRM."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    started = time.monotonic()
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
        if outer > 0:
            left = max(outer - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def run_one(name: str, data: bytes, deadline: bool = True) -> None:
    """Feed `data` to target `name`; returns when the contract holds, raises otherwise.
    deadline=False leaves hangs to the caller (atheris's -timeout)."""
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with _deadline(SLOW_SECONDS.get(name, SECONDS)) if deadline else \
                contextlib.nullcontext():
            TARGETS[name](data)
    except MedarkError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    if peak > PEAK_BYTES:
        raise Violation(f"{name}: {peak} bytes allocated for a {len(data)}-byte input")


def corpus(name: str) -> list[bytes]:
    folder = CORPUS / name
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


# ---- repository bytes -------------------------------------------------------------------

@target
def pack_sealed(data: bytes) -> None:
    """A whole pack as stored: its trailer names the sealed header (random ciphertext)."""
    parse_header(crypto(), data, len(data))


@target
def pack_header(data: bytes) -> None:
    """The decode step after decryption: u32 pack size, then the header's plaintext."""
    if len(data) < 4:
        return
    (pack_size,) = struct.unpack_from("<I", data)
    sealed = crypto().seal(data[4:])
    parse_header(crypto(), sealed + TRAILER.pack(len(sealed)), pack_size)


@target
def blob(data: bytes) -> None:
    """A blob's stored form after decryption: u32 length the index gives (the plaintext
    length), then the zstd frame, as Repository.open_blob decompresses it."""
    if len(data) < 4:
        return
    (raw_length,) = struct.unpack_from("<I", data)
    if raw_length:
        decompress(data[4:], raw_length)


def _index(plain_zstd: bytes) -> None:
    index_file.superseded_ids(plain_zstd)
    for _pack_id, blobs in index_file.iter_packs(plain_zstd):
        for blob in blobs:
            _ = blob.plain_length


@target
def index_sealed(data: bytes) -> None:
    """An index file as stored: sealed, then zstd, then the binary layout."""
    _index(crypto().open(data))


@target
def index_zstd(data: bytes) -> None:
    """The decode step: zstd frames (a frame may claim any content size)."""
    _index(data)


@target
def index_plain(data: bytes) -> None:
    """The binary layout itself (compressed here so the parser sees it whole)."""
    _index(zstandard.ZstdCompressor(level=1).compress(data))


def _typed(obj: object) -> None:
    """Violation unless every field of a decoded dataclass has its declared type: a
    decoder that lets `"name": 3` through only moves the crash into a restore."""
    hints = typing.get_type_hints(type(obj))
    for field in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, field.name)
        expected = hints[field.name]
        origin = typing.get_origin(expected)
        if dataclasses.is_dataclass(value):
            _typed(value)
            continue
        if origin in (list, dict):
            ok = isinstance(value, origin)
            args = typing.get_args(expected)
            if ok and origin is list and args and args[0] in (str, bytes):
                ok = all(isinstance(v, args[0]) for v in value)
        else:
            kinds = typing.get_args(expected) if origin in (typing.Union, types.UnionType) \
                else (expected,)
            ok = isinstance(value, tuple(type(None) if k is None else k for k in kinds))
            ok = ok and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            raise Violation(f"{type(obj).__name__}.{field.name} decoded as {value!r}")


@target
def tree(data: bytes) -> None:
    for node in decode_tree(data):
        _typed(node)
        node.to_dict()


@target
def tree_sealed(data: bytes) -> None:
    tree(crypto().open(data))


@target
def snapshot(data: bytes) -> None:
    snap = Snapshot.from_json(data, "0" * 64)
    _typed(snap)
    snap.public()


@target
def snapshot_sealed(data: bytes) -> None:
    snapshot(crypto().open(data))


@target
def key_file(data: bytes) -> None:
    """Each reader of a key file, on its own (an error from one must not hide the next)."""
    name = "keys/" + content_name(data)
    for read in (lambda: key_info(name, data), lambda: verify_key_file(name, data),
                 lambda: open_key_file(data, name, PASSWORD)):
        with contextlib.suppress(MedarkError):
            read()


@target
def repo_config(data: bytes) -> None:
    config = RepoConfig.from_json(data)
    _typed(config)
    # what a backup does with it first: a compressor and a chunker
    Compressor(config.compression).compress(b"patient record " * 8)
    list(Chunker(config.chunker).chunks(io.BytesIO(b"x" * 1000)))


@target
def repo_config_sealed(data: bytes) -> None:
    repo_config(crypto().open(data))


# ---- locks, hold markers, WAL and binlog records (the plaintext after unsealing) ----------

def _same(data: bytes) -> bytes:
    return data


@target
def lock_file(data: bytes) -> None:
    """survey_locks as prune's exclusive lock runs it: the lock is readable or reported
    unreadable, never an exception; an unreadable one refuses the exclusive lock."""
    backend = MemoryBackend()
    backend.save(LOCKS_PREFIX + content_name(data), data)
    locks, unreadable = survey_locks(backend, _same)
    if len(locks) + len(unreadable) != 1:
        raise Violation(f"one lock object surveyed as {locks} and {unreadable}")
    for lock in locks:
        _typed(lock)
        lock.describe()
        lock.stale(clock.now())
    for bad in unreadable:
        bad.describe()

    def store(sealed: bytes) -> bytes:
        name = LOCKS_PREFIX + content_name(sealed)
        backend.save(name, sealed)
        return name.encode()

    try:
        held = LockManager(backend, _same, _same, store).acquire(True, "prune", lambda _: None)
    except RepositoryLocked:
        return
    held.release()
    if unreadable:
        raise Violation("the exclusive lock was taken beside an unreadable lock")


class _Markers:
    """The hold source survey_holds reads: here one marker, the input."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data

    def load_unpacked(self, name: str) -> bytes:
        return self.data

    def list_names(self, prefix: str) -> Iterator[str]:
        yield self.name


@target
def hold_record(data: bytes) -> None:
    """survey_holds as forget and prune run it: a marker is read or kept as damaged
    (which keeps every snapshot), never an exception."""
    name = HOLDS_PREFIX + content_name(data)
    survey = survey_holds(_Markers(name, data))
    if len(survey.records) + len(survey.damaged) != 1:
        raise Violation(f"one marker surveyed as {survey}")
    for record in survey.records:
        _typed(record)
        clock.format_time(record.time)
    _ = survey.active
    if survey.damaged:
        survey.blocking("forget removes nothing")
    HoldRecord.from_json(data, name)


WAL_SYSTEM_ID = "7312345678901234567"
BINLOG_ARCHIVE_ID = "1"


class _OneRecord:
    """The repository a WAL or binlog archive reads: one record (the input, already
    unsealed), and blobs that are empty."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def load_object(self, name: str) -> bytes:
        return self.data

    def unseal(self, sealed: bytes) -> bytes:
        return sealed

    def load_blob(self, blob_id: bytes) -> bytes:
        return b""


@target
def wal_record(data: bytes) -> None:
    """`pg wal-fetch`'s read: the record, its name check, its content check."""
    record = WalRecord.from_json(data, "wal record")
    _typed(record)
    archive = WalArchive(_OneRecord(data), WAL_SYSTEM_ID)  # type: ignore[arg-type]
    name = f"wal/{WAL_SYSTEM_ID}/timelines/00000001.history"
    with contextlib.suppress(MedarkError):
        name = pg_wal_record_name(WAL_SYSTEM_ID, record.name, record.version)
    archive.content(archive.read_record(name))


@target
def binlog_record(data: bytes) -> None:
    """`mysql restore`'s read of the binlog archive: the record, its checks, its content."""
    record = BinlogRecord.from_json(data, "binlog record")
    _typed(record)
    archive = BinlogArchive(_OneRecord(data), BINLOG_ARCHIVE_ID)  # type: ignore[arg-type]
    name = f"binlog/{BINLOG_ARCHIVE_ID}/binlog.000001"
    with contextlib.suppress(MedarkError):
        name = binlog_record_name(BINLOG_ARCHIVE_ID, record.file, record.version)
    archive.content(archive.read_record(name))


# ---- source bytes -----------------------------------------------------------------------

def _read_through(tap: TarTap | XbstreamTap, data: bytes) -> None:
    """Read the tap in uneven pieces; it must pass every byte through unchanged."""
    out = bytearray()
    sizes = [1, 7, 512, 4096]
    i = 0
    while block := tap.read(sizes[i % len(sizes)]):
        out += block
        i += 1
    if bytes(out) != data:
        raise Violation("the tap changed the bytes it passed through")


@target
def tar_tap(data: bytes) -> None:
    _read_through(TarTap(io.BytesIO(data), {"backup_label", "backup_manifest"}), data)


class _OneBlob:
    """The blob loader restore_base reads from: here one blob, the input."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def load_blob(self, blob_id: bytes) -> bytes:
        return self.data


@contextmanager
def _sandbox() -> Iterator[Path]:
    """A target directory with a canary beside it; Violation if anything outside the
    target changed (the canary, or a new entry next to the target)."""
    base = Path(tempfile.mkdtemp(prefix="medark-fuzz-"))
    try:
        (base / "canary").write_bytes(b"canary")
        target_dir = base / "target"
        target_dir.mkdir(mode=0o700)
        yield target_dir
        entries = sorted(p.name for p in base.iterdir())
        if entries != ["canary", "target"] or (base / "canary").read_bytes() != b"canary" \
                or (base / "canary").is_symlink():
            raise Violation(f"a write outside the target: {entries}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@target
def pg_base_tar(data: bytes) -> None:
    """`pg restore`'s extraction of a base-backup tar, into a temporary target."""
    with _sandbox() as target_dir:
        restore_base(_OneBlob(data), [b"blob"], str(target_dir), 1)


@target
def xbstream_tap(data: bytes) -> None:
    tap = XbstreamTap(io.BytesIO(data), {"xtrabackup_binlog_info"})
    _read_through(tap, data)


MBSTREAM = shutil.which("mbstream")


@target
def xbstream_guard(data: bytes) -> None:
    """`mysql restore`'s filter, then mbstream -x on what it lets through."""
    pieces = [data[i : i + 333] for i in range(0, len(data), 333)]
    guard = XbstreamGuard(pieces)
    passed = b"".join(guard)
    if not data.startswith(passed):
        raise Violation("the guard passed on bytes that were not a prefix of its input")
    if MBSTREAM is not None and passed:
        with _sandbox() as target_dir:
            subprocess.run([MBSTREAM, "-x", "-C", str(target_dir)], input=passed,
                           capture_output=True, check=False, timeout=20)
    guard.check()


@target
def binlog(data: bytes) -> None:
    whole = scan_events(data)
    if whole.end > len(data):
        raise Violation("the scan ended past the data")
    # in two pieces, as the binlog archiver reads a growing file: the same answer
    cut = len(data) // 2
    first = scan_events(data[:cut])
    second = scan_events(data, first.end, 0, first)
    if (second.end, second.events) != (whole.end, whole.events):
        raise Violation("an incremental scan disagrees with one scan")


@target
def binlog_info(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    parse_binlog_info(text)
    parse_dump_coordinates(text, text)
    parse_file_name(text)


@target
def plan_config(data: bytes) -> None:
    """TOML text → validated configuration (the file as `medark config check` reads it)."""
    fd, path = tempfile.mkstemp(prefix="medark-fuzz-", suffix=".toml")
    try:
        os.write(fd, data)
        os.close(fd)
        load_config(Path(path))
    finally:
        os.unlink(path)


@target
def dicom_header(data: bytes) -> None:
    """A DICOM file's start as the backup hands it to the catalog: the fields, or
    Malformed (which the catalog records for the file), nothing else."""
    with contextlib.suppress(Malformed):
        _typed(parse_dicom_header(data))


@target
def dicom_catalog(data: bytes) -> None:
    """A DICOM catalog's plaintext (JSON lines) after its chunks are joined."""
    for record in decode_records(data):
        _typed(record)


@target
def dicom_segment(data: bytes) -> None:
    """One directory's segment of a version 2 catalog (its records' names below it)."""
    for record in decode_segment(data, "/srv/pacs/1.2.3"):
        _typed(record)
        assert record.path.startswith("/srv/pacs/1.2.3/") and "/" not in record.name
