"""`backup --stdin-from-command`: store a command's output (any dump tool) as one file.

The snapshot is written only when the command exits 0; otherwise CommandFailed is raised
after the chunks already stored are indexed (a retry then reuses them).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Sequence
from datetime import datetime
from typing import IO, BinaryIO

from medark import __version__
from medark.engine.archiver import ContentArchiver
from medark.engine.backup_model import worker_count
from medark.errors import CommandFailed, UsageError
from medark.repo.chunker import Chunker
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.util import clock
from medark.util.progress import Progress
from medark.util.sizes import MiB


class _Counting:
    """A stream wrapper that reports progress as the command's output is read."""

    def __init__(self, stream: IO[bytes], progress: Progress) -> None:
        self._stream = stream
        self._progress = progress

    def read(self, size: int) -> bytes:
        block = self._stream.read(size)
        if block:
            self._progress.advance(nbytes=len(block))
        return block


def backup_stream(
    repo: Repository,
    stream: IO[bytes],
    filename: str,
    *,
    progress: Progress,
) -> tuple[Node, dict[str, int]]:
    """Store `stream` as one file node; returns the node and byte counts."""
    if not filename or "/" in filename.strip("/"):
        raise UsageError(f"--stdin-filename must be a plain file name, not {filename!r}")
    archiver = ContentArchiver(
        repo, Chunker(repo.config.chunker), worker_count(0), inflight=32 * MiB
    )
    try:
        stored = archiver.store_stream(_Counting(stream, progress))  # type: ignore[arg-type]
    finally:
        archiver.close()
    now_ns = clock.now().timestamp()
    node = Node(
        name=filename.strip("/"), type="file", mode=stat.S_IFREG | 0o600,
        uid=os.getuid(), gid=os.getgid(), mtime_ns=int(now_ns * 1e9),
        ctime_ns=int(now_ns * 1e9), size=stored.size, content=stored.ids,
    )
    return node, {"bytes": stored.size}


def backup_command(
    repo: Repository,
    argv: Sequence[str],
    filename: str,
    *,
    tags: list[str],
    host: str,
    progress: Progress,
) -> tuple[Snapshot, dict[str, object]]:
    if not argv:
        raise UsageError("--stdin-from-command needs a command after `--`")
    started = clock.now()
    t0 = clock.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None
    assert proc.stdout is not None
    try:
        node, counts = backup_stream(
            repo, proc.stdout, filename, progress=progress
        )
    finally:
        proc.stdout.close()
        status = proc.wait()
    repo.flush()
    if status != 0:
        raise CommandFailed(
            f"{argv[0]} exited with status {status}; no snapshot was written"
        )
    return write_stream_snapshot(repo, node, counts, started, t0, tags, host, argv[0])


def backup_stdin(
    repo: Repository, stream: BinaryIO, filename: str, *, tags: list[str], host: str,
    progress: Progress,
) -> tuple[Snapshot, dict[str, object]]:
    started = clock.now()
    t0 = clock.monotonic()
    node, counts = backup_stream(repo, stream, filename, progress=progress)
    repo.flush()
    return write_stream_snapshot(repo, node, counts, started, t0, tags, host, "stdin")


def write_stream_snapshot(
    repo: Repository, node: Node, counts: dict[str, int], started: datetime, t0: float,
    tags: list[str], host: str, source: str, *, paths: list[str] | None = None,
    meta: dict[str, object] | None = None,
) -> tuple[Snapshot, dict[str, object]]:
    """The snapshot of one stored stream (a dump, a database's base backup)."""
    root = save_tree(repo, [node])
    repo.flush()
    snapshot = Snapshot(
        time=started,
        tree=root, paths=paths or ["/" + node.name], hostname=host or socket.gethostname(),
        username=os.environ.get("USER", ""), tags=tags,
        program_version=f"medark {__version__}", source=dict(meta or {}),
    )
    stats = repo.stats
    snapshot.summary = {
        "files_new": 1, "files_changed": 0, "files_unmodified": 0,
        "dirs_new": 0, "dirs_changed": 0, "dirs_unmodified": 0,
        "data_blobs": stats.data_blobs, "tree_blobs": stats.tree_blobs,
        "data_added": stats.plain_added,
        "data_added_packed": stats.stored_added, "total_files_processed": 1,
        "total_bytes_processed": counts["bytes"], "bytes_read": counts["bytes"],
        "source": source,
    }
    save_snapshot(repo, snapshot)
    summary: dict[str, object] = dict(
        snapshot.summary, snapshot_id=snapshot.id, total_duration=clock.monotonic() - t0
    )
    return snapshot, summary
