"""Reading packs for `check`: the header from the tail alone, or the whole pack.

These functions run in worker threads: they touch only the backend and the crypto
(both thread-safe), never the check database.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from medark.errors import IntegrityError, MedarkError, ObjectNotFound
from medark.repo.crypto import SEAL_OVERHEAD, Crypto
from medark.repo.pack import ENTRY, TRAILER, PackedBlob, load_header, pack_name, parse_header
from medark.storage.base import Backend

T = TypeVar("T")
R = TypeVar("R")


class PackRepo(Protocol):
    """What pack checks need from the repository (docs/architecture.md, convention 4)."""

    backend: Backend
    crypto: Crypto

    def decode_blob(self, entry: PackedBlob, sealed: bytes | memoryview,
                    pack_id: bytes) -> bytes: ...


def header_length(blob_count: int) -> int:
    """Bytes a pack's sealed header and trailer take for `blob_count` blobs."""
    return blob_count * ENTRY.size + SEAL_OVERHEAD + TRAILER.size


def expected_size(entries: list[PackedBlob]) -> int:
    """The pack size the index implies: the blobs, the sealed header and its length."""
    return sum(e.length for e in entries) + header_length(len(entries))


@dataclass
class PackVerdict:
    """What reading one pack found. `problems` are about the pack as a whole;
    `damaged` names blobs that failed to decode, with the reason."""

    pack_id: bytes
    problems: list[str] = field(default_factory=list)
    damaged: list[tuple[bytes, str]] = field(default_factory=list)
    missing: bool = False
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.damaged and not self.missing


def _compare_header(header: list[PackedBlob], indexed: list[PackedBlob]) -> str | None:
    if header == indexed:
        return None
    in_header = {(e.id, e.offset) for e in header}
    in_index = {(e.id, e.offset) for e in indexed}
    only_index = len(in_index - in_header)
    only_header = len(in_header - in_index)
    if only_index or only_header:
        return (f"the pack header disagrees with the index ({only_index} blob(s) only in the "
                f"index, {only_header} only in the header)")
    return "the pack header disagrees with the index about blob types or lengths"


def check_header(
    repo: PackRepo, pack_id: bytes, size: int, indexed: list[PackedBlob]
) -> PackVerdict:
    """Read only the pack's tail and compare its header with the index entries."""
    verdict = PackVerdict(pack_id)
    try:
        header, verdict.bytes_read = load_header(
            repo.backend, repo.crypto, pack_id, size, header_length(len(indexed)))
    except ObjectNotFound:
        verdict.missing = True
        return verdict
    except IntegrityError as exc:
        verdict.problems.append(f"pack header is damaged: {exc}")
        return verdict
    except MedarkError as exc:
        verdict.problems.append(f"pack cannot be read: {exc}")
        return verdict
    problem = _compare_header(header, indexed)
    if problem:
        verdict.problems.append(problem)
    return verdict


def header_of(repo: PackRepo, pack_id: bytes, size: int) -> list[PackedBlob] | None:
    """The entries of an unindexed pack from its own header; None when unreadable."""
    try:
        return load_header(repo.backend, repo.crypto, pack_id, size, header_length(64))[0]
    except MedarkError:
        return None


def read_pack(repo: PackRepo, pack_id: bytes, indexed: list[PackedBlob]) -> PackVerdict:
    """Read a whole pack: its SHA-256 against its name, its header against the index,
    and every blob through decode_blob (authentication tag, decompression, blob id)."""
    verdict = PackVerdict(pack_id)
    try:
        data = repo.backend.load(pack_name(pack_id.hex()))
    except ObjectNotFound:
        verdict.missing = True
        return verdict
    except MedarkError as exc:
        verdict.problems.append(f"pack cannot be read: {exc}")
        return verdict
    verdict.bytes_read = len(data)
    if hashlib.sha256(data).digest() != pack_id:
        verdict.problems.append("pack content does not match its name (SHA-256)")
    try:
        problem = _compare_header(parse_header(repo.crypto, data, len(data)), indexed)
        if problem:
            verdict.problems.append(problem)
    except IntegrityError as exc:
        verdict.problems.append(f"pack header is damaged: {exc}")
    view = memoryview(data)
    for entry in indexed:
        end = entry.offset + entry.length
        if end > len(data):
            verdict.damaged.append((entry.id, "blob lies beyond the end of the pack"))
            continue
        try:
            repo.decode_blob(entry, view[entry.offset:end], pack_id)
        except IntegrityError as exc:
            verdict.damaged.append((entry.id, _reason(exc)))
    return verdict


def _reason(exc: Exception) -> str:
    """decode_blob prefixes 'blob … in pack …: '; the report names those itself."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("blob ") and ": " in text else text


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, window: int | None = None
) -> Iterator[R]:
    """fn over items in a thread pool, results in input order, at most `window` in flight
    (Executor.map would submit everything at once and hold every result)."""
    window = window or workers * 2
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
