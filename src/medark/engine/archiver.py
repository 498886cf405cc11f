"""Storing file contents: chunking in the reading thread, hashing, compression and
sealing in a worker pool (the libraries release the GIL, so both cores work)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Container, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from medark.engine.change_stats import ContentSample
from medark.repo.chunker import Chunker
from medark.repo.pack import BlobType, SaveResult
from medark.sources.files.reading import read_whole
from medark.util.budget import ByteBudget

ByteCount = Callable[[int], None]
"""Told the size of each chunk as it is read (progress); must be cheap."""


class BlobSaver(Protocol):
    def save_blob(
        self, blob_type: BlobType, data: bytes | memoryview, blob_id: bytes | None = None,
        indexed: bool | None = None,
    ) -> SaveResult: ...

    def save_new_blobs(self, blob_type: BlobType, blobs: list[tuple[bytes, bytes]],
                       absent: Container[bytes]) -> list[SaveResult]: ...


@dataclass
class StoredContent:
    ids: list[bytes]
    size: int
    sample: ContentSample = field(default_factory=ContentSample)
    """Entropy sample of the chunks that were new to the repository (when sampling)."""


class ContentArchiver:
    def __init__(self, repo: BlobSaver, chunker: Chunker, workers: int, inflight: int,
                 sample: bool = False) -> None:
        """`sample`: take an entropy sample of every new chunk (change_stats.py)."""
        self.repo = repo
        self.sample = sample
        self.chunker = chunker
        self.small = chunker.params.min_size
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunk")
        self._budget = ByteBudget(inflight)
        self._streams = threading.Semaphore(1)
        self.whole_file_limit = min(2 * chunker.params.max_size, inflight // 2)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _save(self, data: bytes | memoryview) -> tuple[bytes, ContentSample | None]:
        try:
            return self.save(data)
        finally:
            self._budget.release(len(data))

    def save(self, data: bytes | memoryview, blob_id: bytes | None = None,
             indexed: bool | None = None) -> tuple[bytes, ContentSample | None]:
        """Store one chunk; with sampling on, the sample of a chunk that was new."""
        result = self.repo.save_blob(BlobType.DATA, data, blob_id, indexed=indexed)
        if not (self.sample and result.added):
            return result.id, None
        sample = ContentSample()
        sample.add_chunk(data, result.compressed)
        return result.id, sample

    def save_new(self, blobs: list[tuple[bytes, bytes]], absent: set[bytes]
                 ) -> list[ContentSample | None]:
        """Store whole small files at once, their ids computed and asked about in bulk
        (`absent`: those the index lacks); with sampling on, the sample of each one that
        was new."""
        results = self.repo.save_new_blobs(BlobType.DATA, blobs, absent)
        samples: list[ContentSample | None] = []
        for (_id, data), result in zip(blobs, results, strict=True):
            sample = None
            if self.sample and result.added:
                sample = ContentSample()
                sample.add_chunk(data, result.compressed)
            samples.append(sample)
        return samples

    def store_chunks(self, chunks: Iterable[bytes | memoryview], reserved: bool = False,
                     read: ByteCount | None = None) -> StoredContent:
        """Hand chunks to the workers in order; `reserved` means their bytes are already
        counted in the budget (the caller acquired the whole file). `read` is told each
        chunk's size as it is handed over, so progress moves inside a large file."""
        futures: list[Future[tuple[bytes, ContentSample | None]]] = []
        size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                if read is not None:
                    read(len(chunk))
                if not reserved:
                    self._budget.acquire(len(chunk))
                futures.append(self._pool.submit(self._save, chunk))
        finally:
            results = [f.result() for f in futures]
        return _stored(results, size)

    def store_stream(self, stream: BinaryIO, read: ByteCount | None = None) -> StoredContent:
        with self._streams:
            return self.store_chunks(self.chunker.chunks(stream), read=read)

    def store_small(self, data: bytes, read: ByteCount | None = None) -> StoredContent:
        """A file below the minimum chunk size is one chunk, stored in the caller's thread."""
        if not data:
            return StoredContent([], 0)
        if read is not None:
            read(len(data))
        return _stored([self.save(data)], len(data))

    def store_file(self, fd: int, size_hint: int, read: ByteCount | None = None
                   ) -> StoredContent:
        """Small files inline; files up to twice the maximum chunk read whole (their bytes
        reserved in the budget first); larger ones streamed, one stream at a time, since
        each stream holds a buffer of twice the maximum chunk size."""
        if size_hint < self.small:
            data = read_whole(fd, size_hint)
            if len(data) < self.small:
                return self.store_small(data, read)
            return self.store_chunks(self.chunker.cut(data), read=read)
        if size_hint <= self.whole_file_limit:
            self._budget.acquire(size_hint)
            try:
                data = read_whole(fd, size_hint)
            except BaseException:
                self._budget.release(size_hint)
                raise
            if len(data) != size_hint:  # the file changed size: account exactly
                self._budget.release(size_hint)
                return self.store_chunks(self.chunker.cut(data), read=read)
            return self.store_chunks(self.chunker.cut(data), reserved=True, read=read)
        with os.fdopen(os.dup(fd), "rb", buffering=0) as stream:
            return self.store_stream(stream, read)


def _stored(results: list[tuple[bytes, ContentSample | None]], size: int) -> StoredContent:
    stored = StoredContent([blob_id for blob_id, _s in results], size)
    for _id, sample in results:
        if sample is not None:
            stored.sample.merge(sample)
    return stored
