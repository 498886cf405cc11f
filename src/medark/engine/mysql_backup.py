"""`mysql backup`: a hot backup of a MariaDB/MySQL server, streamed into the repository.

Physical (the default): `mariadb-backup --backup --stream=xbstream` copies InnoDB files
while the server runs and takes its consistent point with BACKUP STAGE: DDL and writes to
non-transactional tables wait while those are copied, commits only for the moment the
binlog position is read (BLOCK_COMMIT), so that position matches the copied data. Its
stdout goes straight into the chunker: no staging copy, and unchanged table files
deduplicate against earlier backups.
It must run on the database host (it reads the data directory).

Logical (--logical, or when mariadb-backup is not installed): `mariadb-dump
--single-transaction --master-data=2 --gtid`, a consistent snapshot without locking InnoDB
tables; the position comes from the same transaction snapshot.

Either way the backup point's binlog coordinates (file, position, GTID) are read from the
stream as it passes (xtrabackup_binlog_info inside the xbstream; the CHANGE MASTER comment
and the deferred gtid_slave_pos of the dump) and recorded in the snapshot's `source`, so a
restore replays the binlog from exactly there. The snapshot is written only when the tool
exits 0 and the coordinates were found (or binary logging is off).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from medark.engine.backup_stdin import backup_stream, write_stream_snapshot
from medark.errors import CommandFailed
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.sources.mysql.binlog import (
    Coordinates,
    dump_completed,
    parse_binlog_info,
    parse_dump_coordinates,
)
from medark.sources.mysql.client import Conn, classify, find_program, have_program, identify
from medark.sources.mysql.xbstream import XbstreamTap
from medark.util import clock
from medark.util.processes import StderrReader
from medark.util.progress import Progress

MYSQL_TAGS = ["mysql"]
XBSTREAM_FILE = "mariadb-backup.xbstream"
DUMP_FILE = "mariadb-dump.sql"
BINLOG_INFO = ("xtrabackup_binlog_info", "mariadb_backup_binlog_info")
KEEP = 64 * 1024


@dataclass
class MysqlBackupOptions:
    conn: Conn
    tags: list[str]
    host: str
    logical: bool = False
    bin_dir: str | None = None
    tmp_dir: str | None = None


class HeadTailTap:
    """Passes a dump through, keeping its first and last KEEP bytes (where mariadb-dump
    writes the position and the GTID)."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.head = bytearray()
        self.tail = bytearray()

    def read(self, size: int = -1) -> bytes:
        block = self._source.read(size)
        if len(self.head) < KEEP:
            self.head += block[:KEEP - len(self.head)]
        self.tail += block
        if len(self.tail) > 2 * KEEP:
            del self.tail[:-KEEP]
        return block


def hot_backup(repo: Repository, options: MysqlBackupOptions, progress: Progress,
               warn: Callable[[str], None] | None = None) -> tuple[Snapshot, dict[str, object]]:
    conn = options.conn
    identity = identify(conn, options.bin_dir)
    logical = options.logical
    if not logical and not have_program("mariadb-backup", options.bin_dir):
        logical = True
        if warn:
            warn("mariadb-backup is not installed: taking a logical backup (mariadb-dump)")
    if not identity.log_bin and warn:
        warn(f"point-in-time restore will not be possible: binary logging is off on "
             f"{conn.safe()} (set log_bin under [mysqld] in its config and restart it); this "
             "backup restores only as it is, with `mysql restore --backup-only`")
    started = clock.now()
    t0 = clock.monotonic()
    work = tempfile.mkdtemp(prefix="medark-mysql-", dir=options.tmp_dir)
    try:
        if logical:
            tool = find_program("mariadb-dump", "mysqldump", bin_dir=options.bin_dir)
            argv = [tool, *conn.args(), "--single-transaction", "--all-databases",
                    "--routines", "--events", "--triggers", "--hex-blob"]
            if identity.log_bin:
                argv += ["--master-data=2", "--gtid"]
        else:
            tool = find_program("mariadb-backup", bin_dir=options.bin_dir)
            argv = [tool, *conn.args(), "--backup", "--stream=xbstream",
                    f"--target-dir={work}"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=conn.environment(), cwd=work)
        assert proc.stdout is not None and proc.stderr is not None
        stderr = StderrReader(proc.stderr, "mysql-backup-stderr")
        stderr.start()
        tap: XbstreamTap | HeadTailTap = (HeadTailTap(proc.stdout) if logical else
                                          XbstreamTap(proc.stdout, set(BINLOG_INFO)))
        filename = DUMP_FILE if logical else XBSTREAM_FILE
        try:
            node, counts = backup_stream(repo, tap, filename, progress=progress)  # type: ignore[arg-type]
        finally:
            proc.stdout.close()
            status = proc.wait()
            stderr.join()
        repo.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = os.path.basename(tool)
    if status != 0:
        failure = classify(stderr.text, conn, name)
        if isinstance(failure, CommandFailed):
            failure = CommandFailed(f"{failure}; no snapshot was written")
        raise failure
    coords = _coordinates(tap, identity.log_bin, name)
    meta: dict[str, object] = {
        "kind": "mysql", "method": "logical" if logical else "physical",
        "archive_id": identity.archive_id, "server_id": identity.server_id,
        "server_uuid": identity.server_uuid, "server_version": identity.version,
        "binlog_format": identity.binlog_format, "file": filename, "tool": name,
        "binlog_file": coords.file if coords else None,
        "binlog_position": coords.position if coords else None,
        "gtid": coords.gtid if coords else None,
        "stop_time": clock.format_time(clock.now()),
    }
    return write_stream_snapshot(repo, node, counts, started, t0, MYSQL_TAGS + options.tags,
                                 options.host, name, paths=[f"/mysql/{identity.archive_id}"],
                                 meta=meta)


def _coordinates(tap: XbstreamTap | HeadTailTap, log_bin: bool, tool: str
                 ) -> Coordinates | None:
    if isinstance(tap, HeadTailTap):
        head = tap.head.decode("utf-8", "replace")
        tail = tap.tail.decode("utf-8", "replace")
        if not dump_completed(tail):
            raise CommandFailed(f"{tool} exited 0 but the dump is incomplete (no 'Dump "
                                "completed' line); no snapshot was written")
        coords = parse_dump_coordinates(head, tail)
    else:
        info = next((tap.captured[n] for n in BINLOG_INFO if n in tap.captured), None)
        if tap.broken and log_bin:
            raise CommandFailed(f"cannot follow {tool}'s xbstream ({tap.broken}) to read the "
                                "binlog position; no snapshot was written")
        try:
            coords = parse_binlog_info(info.decode("utf-8", "replace")) if info else None
        except ValueError as exc:
            raise CommandFailed(f"{tool}: {exc}; no snapshot was written") from None
    if coords is None and log_bin:
        raise CommandFailed(f"{tool} recorded no binlog position although binary logging is "
                            "on; no snapshot was written")
    return coords
