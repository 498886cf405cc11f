"""Fetching the WAL a restore will replay ahead of PostgreSQL, into a local spool.

`pg restore` writes restore_command = `medark pg wal-fetch --spool DIR %f %p`: served
from the spool, recovery needs no repository access as the database's OS user and does
not open the repository (key derivation, index) once per segment. With --start the
prefetch runs beside recovery, in segment order; while it runs, the marker file
PREFETCH_RUNNING is present and wal-fetch waits for a file that has not arrived yet; a
failure leaves PREFETCH_FAILED with the reason, so wal-fetch stops recovery instead of
taking the missing file for the end of the archive.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import threading

from medark.engine.pg_wal import WalArchive
from medark.errors import MedarkError
from medark.snapshot.model import Snapshot
from medark.sources.postgres.wal import DEFAULT_SEGMENT_SIZE, Segment, parse_lsn, segment_of
from medark.util.confine import private_dir

PREFETCH_RUNNING = ".prefetching"
PREFETCH_FAILED = ".prefetch-failed"
PREFETCH_COMPLETE = ".prefetch-complete"
"""Everything archived is in the spool: a file not in it is not archived."""


def wal_needed(archive: WalArchive, backup: Snapshot) -> list[str]:
    """History files, then every segment from the backup's start to the newest archived
    (the newest streamed version of a segment not yet complete), in order."""
    size = int(backup.source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
    inventory = archive.inventory()
    first = segment_of(parse_lsn(str(backup.source["start_lsn"])), size)
    segments = {n for n in inventory.segments if Segment.parse(n, size).segno >= first}
    segments |= {n for n in inventory.partial if Segment.parse(n, size).segno >= first}
    return sorted(inventory.histories) + sorted(segments,
                                                key=lambda n: Segment.parse(n, size).segno)


class WalPrefetch:
    def __init__(self, archive: WalArchive, backup: Snapshot, spool: str, user: str | None,
                 every: bool = True) -> None:
        """`every`: False for a restore to the end of the backup, which needs only the
        backup's own WAL (its history files and segments up to the stop position)."""
        self.archive = archive
        self.backup = backup
        self.spool = spool
        self.fetched = 0
        self._every = every
        self._owner = pwd.getpwnam(user) if user else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        private_dir(spool)  # a link planted at the spool's name is refused, not followed
        self._own(spool)
        self._marker(PREFETCH_RUNNING, "")

    def _own(self, path: str) -> None:
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid, follow_symlinks=False)

    def _marker(self, name: str, text: str) -> None:
        path = os.path.join(self.spool, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(path, flags, 0o600), "w", encoding="utf-8") as f:
            f.write(text)
        self._own(path)

    def _names(self) -> list[str]:
        names = wal_needed(self.archive, self.backup)
        if self._every:
            return names
        size = int(self.backup.source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
        last = segment_of(parse_lsn(str(self.backup.source["stop_lsn"])), size)
        return [n for n in names if len(n) != 24 or Segment.parse(n, size).segno <= last]

    def run(self) -> None:
        """Fetch everything (in this thread); raises what a fetch raised."""
        try:
            for name in self._names():
                if self._stop.is_set():
                    break
                path = os.path.join(self.spool, name)
                self.archive.fetch_to(name, path)
                self._own(path)
                self.fetched += 1
            else:
                self._marker(PREFETCH_COMPLETE, "")
        except MedarkError as exc:
            self._marker(PREFETCH_FAILED, str(exc))
            raise
        finally:
            running = os.path.join(self.spool, PREFETCH_RUNNING)
            if os.path.exists(running):
                os.unlink(running)

    def start(self) -> None:
        def work() -> None:
            with contextlib.suppress(MedarkError):  # in PREFETCH_FAILED for wal-fetch
                self.run()

        self._thread = threading.Thread(target=work, name="wal-prefetch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def wait(self) -> None:
        """Until a started prefetch has fetched everything (or failed)."""
        if self._thread is not None:
            self._thread.join()
