"""`dump`: one file of a snapshot as its bytes, or a directory as a tar or zip stream.

restic's `dump`, for what a restore target is too much for: piping a backed-up SQL dump
into psql or mariadb, or handing one patient's study to a viewer. Every chunk is read
through the repository, so it is authenticated and checked against its id before a byte
of it is written; a few chunks are read ahead in parallel so a large file streams at the
repository's pace, not one round trip per chunk.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from medark.engine.choices import DUMP_ARCHIVES
from medark.engine.listing import join, load_nodes, normalize_dir, resolve
from medark.engine.restore_select import valid_name
from medark.errors import UnsafeEntry, UsageError
from medark.snapshot.model import Node, Snapshot

READ_AHEAD = 8
"""Chunks read ahead of the one being written (each up to a few MiB)."""
ARCHIVES = DUMP_ARCHIVES


class BlobSource(Protocol):
    def load_blob(self, blob_id: bytes) -> bytes: ...


@dataclass
class DumpSummary:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: int = 0
    """Entries an archive cannot hold (sockets; in zip also devices and fifos)."""


def file_chunks(repo: BlobSource, node: Node, pool: ThreadPoolExecutor) -> Iterator[bytes]:
    """The file's content in order, READ_AHEAD chunks in flight."""
    pending: deque[Future[bytes]] = deque()
    for blob_id in node.content:
        pending.append(pool.submit(repo.load_blob, blob_id))
        if len(pending) > READ_AHEAD:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class _ChunkReader(io.RawIOBase):
    """A file object over a chunk iterator, for tarfile.addfile."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def dump(repo: BlobSource, snapshot: Snapshot, path: str, out: BinaryIO,
         archive: str = "tar", workers: int = 4) -> DumpSummary:
    """Write the file at `path` as it is, or the directory at `path` ('/' for the whole
    snapshot) as an `archive` stream; names in the archive are the snapshot's paths
    without the leading '/', as `tar -C /` would have them. An entry whose name could
escape the extraction directory (`..`, a '/' inside it, or a name repeated in one
directory, which could put entries beneath a symlink) ends the archive with UnsafeEntry:
everything written before it is safe to extract."""
    if archive not in ARCHIVES:
        raise UsageError(f"unknown archive format {archive!r}: use tar or zip")
    where = normalize_dir(path)
    node = resolve(repo, snapshot.tree, where, snapshot.id)
    summary = DumpSummary()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dump") as pool:
        if node is not None and node.type == "file":
            for chunk in file_chunks(repo, node, pool):
                out.write(chunk)
                summary.bytes += len(chunk)
            summary.files = 1
            return summary
        if node is not None and node.type != "dir":
            raise UsageError(f"{where} is a {node.type} in snapshot {snapshot.short_id}: "
                             "dump writes files and directories")
        entries = _entries(repo, snapshot.tree if node is None else node, where)
        if archive == "tar":
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                              encoding="utf-8") as tar:
                _write_all(_TarWriter(tar), entries, repo, pool, summary)
        else:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED,
                                 compresslevel=1) as zipped:
                _write_all(_ZipWriter(zipped), entries, repo, pool, summary)
    return summary


def _write_all(writer: _TarWriter | _ZipWriter, entries: Iterator[tuple[str, Node]],
               repo: BlobSource, pool: ThreadPoolExecutor, summary: DumpSummary) -> None:
    for path, node in entries:
        writer.add(path.lstrip("/"), node, repo, pool, summary)


def _entries(repo: BlobSource, top: bytes | Node, where: str) -> Iterator[tuple[str, Node]]:
    """(path, node) of the directory itself (unless it is the root) and all below it,
    parents first."""
    if isinstance(top, Node):
        yield where, top
        if top.subtree is None:
            return
        tree, prefix = top.subtree, where
    else:
        tree, prefix = top, "/"
    stack = [(tree, prefix)]
    while stack:
        tree_id, base = stack.pop()
        seen: set[str] = set()
        for node in load_nodes(repo, tree_id):
            if not valid_name(node.name) or node.name in seen:
                raise UnsafeEntry(
                    f"{join(base, repr(node.name))}: unsafe or repeated name in the snapshot"
                    "; refusing to put it into an archive (extracting it could write "
                    "outside the extraction directory)")
            seen.add(node.name)
            path = join(base, node.name)
            yield path, node
            if node.type == "dir" and node.subtree is not None:
                stack.append((node.subtree, path))


class _TarWriter:
    """POSIX pax tar: long and non-ASCII names (Chinese paths), large files, owners."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar

    def add(self, name: str, node: Node, repo: BlobSource, pool: ThreadPoolExecutor,
            summary: DumpSummary) -> None:
        info = tarfile.TarInfo(name)
        info.mode = node.mode & 0o7777
        info.mtime = node.mtime_ns / 1e9
        info.uid, info.gid, info.uname, info.gname = node.uid, node.gid, node.user, node.group
        kind = _TAR_TYPES.get(node.type)
        if kind is None:
            summary.skipped += 1
            return
        info.type = kind
        if node.type in ("dev", "chardev"):
            info.devmajor, info.devminor = os.major(node.rdev), os.minor(node.rdev)
        if node.type == "symlink":
            info.linkname = node.linktarget
        if node.type == "dir":
            summary.dirs += 1
        if node.type != "file":
            self._tar.addfile(info)
            return
        info.size = node.size
        reader = io.BufferedReader(_ChunkReader(file_chunks(repo, node, pool)), 1 << 20)
        self._tar.addfile(info, reader)
        summary.files += 1
        summary.bytes += node.size


_TAR_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
              "dev": tarfile.BLKTYPE, "chardev": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}


class _ZipWriter:
    """Zip, written as a stream (data descriptors; zip64 where a file needs it)."""

    def __init__(self, zipped: zipfile.ZipFile) -> None:
        self._zip = zipped

    def add(self, name: str, node: Node, repo: BlobSource, pool: ThreadPoolExecutor,
            summary: DumpSummary) -> None:
        if node.type not in ("file", "dir", "symlink"):
            summary.skipped += 1
            return
        info = zipfile.ZipInfo(name + ("/" if node.type == "dir" else ""),
                               _zip_time(node.mtime_ns))
        type_bits = {"file": 0o100000, "dir": 0o040000, "symlink": 0o120000}[node.type]
        info.external_attr = (type_bits | (node.mode & 0o7777)) << 16
        info.create_system = 3  # unix, so the mode bits above are honoured
        if node.type == "dir":
            self._zip.writestr(info, b"")
            summary.dirs += 1
            return
        info.compress_type = zipfile.ZIP_DEFLATED
        if node.type == "symlink":
            self._zip.writestr(info, node.linktarget.encode())
            return
        with self._zip.open(info, "w", force_zip64=node.size >= zipfile.ZIP64_LIMIT) as f:
            for chunk in file_chunks(repo, node, pool):
                f.write(chunk)
        summary.files += 1
        summary.bytes += node.size


def _zip_time(mtime_ns: int) -> tuple[int, int, int, int, int, int]:
    """Zip's DOS time (local, 2-second steps, 1980..2107)."""
    seconds = min(max(mtime_ns / 1e9, 315532800), 4354819198)
    t = time.localtime(seconds)
    return (max(t.tm_year, 1980), t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
