"""`pg backup`: an online physical base backup, streamed from pg_basebackup into the repository.

pg_basebackup runs over the replication protocol and writes one tar stream to its stdout
(-D - -Ft); the stream goes straight into the chunker, so there is no local staging copy,
and unchanged data files deduplicate against earlier base backups. WAL is not included
(-X none): it comes from the archive (archive_command = `medark pg wal-push`, or
`medark pg wal-stream`), and the backup is only reported complete once every WAL segment
from its start to its stop position is archived, as pgBackRest's archive check does.

When the server says nothing archives into Medark (archive_mode off, another
archive_command, no wal-stream attached), the backup streams that WAL itself
(sources/postgres/wal_capture.py) and stores it in the repository's WAL archive, where
`pg restore` looks for it: the backup is then restorable on its own, with no archive set
up, to its end point (point-in-time recovery past it still needs an archive).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from dataclasses import dataclass

from medark.engine.backup_stdin import backup_stream, write_stream_snapshot
from medark.engine.pg_wal import WalArchive
from medark.errors import CommandFailed, DatabasePermission, UsageError, WalGap
from medark.repo.repository import Repository
from medark.snapshot.model import Node, Snapshot
from medark.sources.postgres.server import Dsn, ServerIdentity, identify
from medark.sources.postgres.tar_tap import TarTap
from medark.sources.postgres.tools import find_program
from medark.sources.postgres.wal import format_lsn, parse_lsn, segment_name, segment_of
from medark.sources.postgres.wal_capture import ArchiveSetup, WalCapture, archive_setup
from medark.util import clock
from medark.util.processes import StderrReader
from medark.util.progress import Progress

BASE_TAR = "base.tar"
PG_TAGS = ["postgres", "base"]


@dataclass
class PgBackupOptions:
    dsn: Dsn
    tags: list[str]
    host: str
    pg_bin: str | None = None
    archive_timeout: float = 60.0
    """Seconds to wait for the WAL up to the stop position to be archived (0: no check)."""


PITR_NOTE = ("no WAL archive is set up ({why}): this backup holds the WAL it needs and "
             "restores on its own, but point-in-time recovery past it needs `medark pg "
             "wal-stream` or archive_command = 'medark pg wal-push %p'")


def parse_backup_label(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _start_lsn(label: dict[str, str]) -> int:
    match = re.match(r"([0-9A-Fa-f]+/[0-9A-Fa-f]+)", label.get("START WAL LOCATION", ""))
    if not match:
        raise CommandFailed("pg_basebackup's backup_label has no START WAL LOCATION")
    return parse_lsn(match.group(1))


def _stop_lsn(manifest: bytes, stderr: str) -> tuple[int, int]:
    """(stop LSN, timeline) from the backup manifest, else from pg_basebackup -v."""
    if manifest:
        try:
            ranges = json.loads(manifest)["WAL-Ranges"]
            last = ranges[-1]
            return parse_lsn(last["End-LSN"]), int(last["Timeline"])
        except (ValueError, KeyError, IndexError, TypeError):
            pass
    match = re.search(r"write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)", stderr)
    if not match:
        raise CommandFailed("cannot tell where the base backup ended (no manifest, no "
                            "end point from pg_basebackup)")
    return parse_lsn(match.group(1)), 0


def _failure(stderr: str, status: int, capturing: bool = False) -> Exception:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
    message = (errors or lines or [f"exited with status {status}"])[-1]
    message = re.sub(r"password=\S+", "password=***", message)
    if any(h in message for h in ("replication role", "pg_hba.conf entry for replication",
                                  "permission denied")):
        return DatabasePermission(f"pg_basebackup: {message}")
    if capturing and "max_wal_senders" in message:
        message += (" (without a WAL archive the backup streams its WAL too, so it needs "
                    "two free WAL senders)")
    return CommandFailed(f"pg_basebackup failed: {message}; no snapshot was written")


def base_backup(
    repo: Repository, options: PgBackupOptions, progress: Progress,
) -> tuple[Snapshot, dict[str, object]]:
    identity = identify(options.dsn)
    if identity.in_recovery:
        raise UsageError("backups from a standby are not supported yet: point --dsn at the "
                         "primary")
    setup = archive_setup(options.dsn)
    capture = not setup.reaches_medark()
    major = identity.version_num // 10000
    started = clock.now()
    t0 = clock.monotonic()
    label = f"medark {clock.format_time(started)}"
    argv = [find_program("pg_basebackup", major, options.pg_bin),
            "-d", options.dsn.without_password(), "-D", "-", "-F", "t", "-X", "none",
            "-c", "fast", "-l", label, "-v"]
    with contextlib.ExitStack() as stack:
        wal: WalCapture | None = None
        if capture:
            wal = stack.enter_context(WalCapture(
                options.dsn, identity, find_program("pg_receivewal", major, options.pg_bin)))
        node, counts, tap, stderr_text = _run_basebackup(repo, argv, options, progress,
                                                         capturing=capture)
        meta = _describe(identity, tap, stderr_text, label)
        if wal is not None:
            _store_captured_wal(repo, identity, meta, wal, options.archive_timeout or 60.0,
                                progress)
        meta["wal"] = "captured" if capture else "archive"
    if options.archive_timeout > 0 or capture:
        _wait_for_wal(repo, identity, meta, options.archive_timeout or 1.0,
                      progress, _archiver(setup))
    snapshot, summary = write_stream_snapshot(
        repo, node, counts, started, t0, PG_TAGS + options.tags,
        options.host, "pg_basebackup", paths=[f"/postgres/{identity.system_id}"], meta=meta)
    summary["notes"] = [PITR_NOTE.format(why=setup.describe())] if capture else []
    return snapshot, summary


def _run_basebackup(repo: Repository, argv: list[str], options: PgBackupOptions,
                    progress: Progress, capturing: bool
                    ) -> tuple[Node, dict[str, int], TarTap, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=options.dsn.environment())
    assert proc.stdout is not None and proc.stderr is not None
    stderr = StderrReader(proc.stderr, "pg_basebackup-stderr")
    stderr.start()
    tap = TarTap(proc.stdout, {"backup_label", "backup_manifest"})
    try:
        node, counts = backup_stream(repo, tap, BASE_TAR, progress=progress)  # type: ignore[arg-type]
    finally:
        proc.stdout.close()
        status = proc.wait()
        stderr.join()
    repo.flush()
    if status != 0:
        raise _failure(stderr.text, status, capturing)
    return node, counts, tap, stderr.text


def _store_captured_wal(repo: Repository, identity: ServerIdentity, meta: dict[str, object],
                        wal: WalCapture, timeout: float, progress: Progress) -> None:
    """Into the repository's WAL archive, where `pg restore` and its restore_command find
    WAL by name (a segment already there, from an earlier archive, is left as it is)."""
    archive = WalArchive(repo, identity.system_id)

    def waiting(missing: list[str]) -> None:
        progress.warn(waiting_line(missing, timeout,
                                   "from the backup's own WAL stream (pg_receivewal)"))

    paths = wal.segments(parse_lsn(str(meta["start_lsn"])), parse_lsn(str(meta["stop_lsn"])),
                         int(str(meta["stop_timeline"])), timeout, waiting)
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        # Identical to a copy already archived (by an archive_command): stores nothing.
        archive.push(os.path.basename(path), data, "pg backup")
    repo.flush()


def _describe(identity: ServerIdentity, tap: TarTap, stderr: str, label: str
              ) -> dict[str, object]:
    label_text = tap.captured.get("backup_label", b"").decode("utf-8", "replace")
    if not label_text:
        raise CommandFailed("pg_basebackup's stream held no backup_label")
    fields = parse_backup_label(label_text)
    start = _start_lsn(fields)
    stop, stop_tli = _stop_lsn(tap.captured.get("backup_manifest", b""), stderr)
    timeline = int(fields.get("START TIMELINE", identity.timeline))
    return {
        "kind": "postgres", "system_id": identity.system_id,
        "timeline": timeline, "stop_timeline": stop_tli or timeline,
        "start_lsn": format_lsn(start), "stop_lsn": format_lsn(stop),
        "start_wal": segment_name(timeline, segment_of(start, identity.segment_size),
                                  identity.segment_size),
        "stop_wal": segment_name(stop_tli or timeline, segment_of(stop, identity.segment_size),
                                 identity.segment_size),
        "checkpoint_lsn": fields.get("CHECKPOINT LOCATION", ""),
        "server_version": identity.version, "server_version_num": identity.version_num,
        "segment_size": identity.segment_size, "label": label,
        "backup_label": label_text, "files": tap.members,
        "stop_time": clock.format_time(clock.now()),
    }


def waiting_line(missing: list[str], timeout: float, how: str) -> str:
    """The one line a backup prints when it starts waiting for its WAL: what, how long
    at most, and who is expected to deliver it (a silent minute looks like a hang)."""
    what = (f"WAL segment {missing[0]}" if len(missing) == 1
            else f"WAL segments {missing[0]}..{missing[-1]}")
    return f"waiting up to {timeout:g} s for {what} {how}"


def _archiver(setup: ArchiveSetup) -> str:
    """Who archives the server's WAL into the repository, as the server tells it."""
    pushing = setup.archive_mode in ("on", "always")
    if setup.streaming and pushing:
        return "to be archived (archive_command or pg wal-stream)"
    if setup.streaming:
        return "to be archived (pg wal-stream)"
    return "to be archived (archive_command)"


def _wait_for_wal(repo: Repository, identity: ServerIdentity, meta: dict[str, object],
                  timeout: float, progress: Progress, how: str) -> None:
    """Every segment from the start to the stop position must be archived, else the
    backup cannot be restored to consistency."""
    archive = WalArchive(repo, identity.system_id)
    size = identity.segment_size
    first = segment_of(parse_lsn(str(meta["start_lsn"])), size)
    last = segment_of(parse_lsn(str(meta["stop_lsn"])), size)
    timeline = int(str(meta["stop_timeline"]))
    deadline = clock.monotonic() + timeout
    pending = [segment_name(timeline, n, size) for n in range(first, last + 1)]
    told = False
    while True:
        pending = [name for name in pending if archive.find(name) is None]
        if not pending:
            return
        if not told:
            progress.warn(waiting_line(pending, timeout, how))
            told = True
        if clock.monotonic() >= deadline:
            raise WalGap(
                f"the base backup's WAL {pending[0]}..{pending[-1]} did not reach the archive "
                f"within {timeout:g} s; set archive_command = 'medark pg wal-push %p' or run "
                "`medark pg wal-stream`, then back up again (the data already stored is reused)")
        clock.sleep(0.5)
