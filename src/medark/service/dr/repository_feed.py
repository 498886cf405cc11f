"""A repository-fed standby (`feed = "repository"`): what the repository lets it reach,
and waiting until it has replayed that.

Such a standby (`medark pg restore --standby`) has no WAL receiver: it fetches one WAL
file at a time through restore_command, and when the next one is not archived yet it
sleeps wal_retrieve_retry_interval (5 s by default) and asks again. Its replay therefore
advances a segment at a time, some seconds after each segment lands in the repository.
The end of what it can replay is the end of the newest archived WAL, read here the way
`medark pg status` reads it (service/pg.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medark.config.plans import MedarkConfig
from medark.errors import StandbyNotReady, UsageError
from medark.service.dr.nodes import Member
from medark.service.pg import archive_view, default_medark_command, restore_command_line
from medark.service.session import configured_password as _password
from medark.service.session import default_cache_dir, open_repository
from medark.sources.postgres import control
from medark.sources.postgres.replication import STANDBY, NodeState, node_state, read_state
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.wal import Segment, format_lsn, parse_lsn, wal_file_kind
from medark.util import clock
from medark.util.secret_file import write_secret_file

WAITING_FOR_WAL = "RecoveryRetrieveRetryInterval"
"""The startup process's wait event after no source had the next WAL: it has replayed
everything it could fetch and sleeps wal_retrieve_retry_interval before asking again."""


@dataclass(frozen=True)
class ArchivedPoint:
    """The newest WAL a repository holds for one cluster: a standby replaying the
    repository can reach `end_lsn` and no further."""

    system_id: str
    wal_name: str
    """The newest archived file (a streamed version of a segment: `<segment>.partial`)."""
    timeline: int
    end_lsn: int
    """Where its WAL ends: the end of the segment, or of a streamed version's valid bytes."""
    archived_at: datetime
    streamed: bool
    """A version of the segment being written, from `pg wal-stream` (more may follow)."""
    gap_after: str | None
    """In the newest base backup's window: the first missing segment (hex), which replay
    cannot pass; None when the WAL runs unbroken to `wal_name`."""

    def as_dict(self) -> dict[str, object]:
        return {"system_id": self.system_id, "wal_name": self.wal_name,
                "timeline": self.timeline, "end_lsn": format_lsn(self.end_lsn),
                "archived_at": clock.format_time(self.archived_at),
                "streamed": self.streamed, "gap_after": self.gap_after}


def newest_archived_lsn(config: MedarkConfig, repository: str,
                        system_id: str | None = None) -> ArchivedPoint | None:
    """The newest archived WAL in repository `repository` (a key of [repositories]) of
    cluster `system_id` (default: the one of the newest base backup); None when no WAL is
    archived. ObjectNotFound when the repository holds no base backup of it."""
    conf = config.repositories.get(repository)
    if conf is None:
        raise UsageError(f"no repository {repository!r} in [repositories]")
    repo = open_repository(conf.url, _password(repository, conf.password_file,
                                               conf.password_command), default_cache_dir())
    try:
        view = archive_view(repo, system_id)
        record = view.newest_record()
        if record is None:
            return None
        streamed = wal_file_kind(record.name) == "partial"
        segment = Segment.parse(record.name[:24], view.segment_size)
        start = segment.segno * view.segment_size
        end = start + int(record.extra.get("valid_bytes") or record.size) if streamed \
            else start + view.segment_size
        chain = view.wal.chain_from(parse_lsn(str(view.backups[-1].source["start_lsn"])))
        return ArchivedPoint(view.system_id, record.name, segment.timeline, end,
                             clock.parse_time(record.archived), streamed,
                             None if chain.gap_at is None else f"{chain.gap_at:X}")
    finally:
        repo.close()


ARCHIVE_START_TIMEOUT = 60.0
"""How long a new primary may take to archive its new timeline's history file."""


def reinstate_from_repository(config: MedarkConfig, repository: str, old: Member,
                              new: Member, timeout: float) -> str:
    """Make the old primary `old` (a local data directory) a standby that replays what the
    new primary `new` archives into `repository`: rewound from `new` where needed, then
    fed by restore_command only, as `medark pg restore --standby` would have made it.
    Refused (StandbyNotReady) while `new` does not archive there yet."""
    from medark.sources.postgres.reinstate import reinstate_as_standby

    assert old.datadir is not None
    conf = config.repositories[repository]
    system_id, timeline = _archiving(new, timeout=ARCHIVE_START_TIMEOUT)
    owner = control.owner(old.datadir)
    base = str(old.datadir).rstrip("/")
    # Beside the data directory, as `pg restore` writes them: the OS user's copy of the
    # password (never in the command line) and the cache of the repository's index.
    password_file, cache = f"{base}.medark-password", f"{base}.medark-cache"
    write_secret_file(password_file, _password(repository, conf.password_file,
                                               conf.password_command) + b"\n", owner)
    os.makedirs(cache, mode=0o700, exist_ok=True)
    os.chown(cache, *owner)
    command = restore_command_line(old.node.medark_command or default_medark_command(),
                                   conf.url, password_file, system_id, cache, standby=True)
    done = reinstate_as_standby(old.datadir, new.dsn, None, timeout, old.bin_dir,
                                restore_command=command)
    state = node_state(old.dsn)
    if state.role != STANDBY:
        raise StandbyNotReady(f"{old.address} started but is not in recovery")
    return (f"{old.address} replays repository {repository}, where {new.address} archives "
            f"timeline {timeline} ({done.how()})")


def _archiving(new: Member, timeout: float) -> tuple[str, int]:
    """The new primary's system identifier and timeline, once it has archived its new
    timeline's history file (the first file archived after a promotion): a standby fed
    from the repository follows that timeline. StandbyNotReady when it does not archive
    (archive_mode off, no archive_command) or its archive_command keeps failing."""
    dsn = Dsn.parse(new.dsn)
    deadline = time.monotonic() + timeout
    with dsn.connect() as conn:
        system_id = str(_one(conn, "SELECT system_identifier FROM pg_control_system()"))
        mode = _one(conn, "SELECT current_setting('archive_mode')")
        command = _one(conn, "SELECT current_setting('archive_command')")
        if mode == "off" or not command:
            raise StandbyNotReady(
                f"{new.address} does not archive (archive_mode {mode}"
                f"{'' if command else ', no archive_command'}): set archive_mode = on and "
                "archive_command = 'medark ... pg wal-push %p' into the repository the "
                "standby replays (a restart), or make the old primary its standby with "
                "medark pg restore --standby")
        while True:
            # the WAL being written names the timeline at once; pg_control only at the
            # first checkpoint after the promotion
            timeline = int(str(_one(conn, "SELECT pg_walfile_name(pg_current_wal_lsn())"))[:8],
                           16)
            row = conn.execute("SELECT last_archived_wal, last_failed_wal FROM "
                               "pg_stat_archiver").fetchone()
            archived, failed = (str(row[0] or ""), row[1]) if row is not None else ("", None)
            if archived.startswith(f"{timeline:08X}"):
                return system_id, timeline
            if time.monotonic() >= deadline:
                raise StandbyNotReady(
                    f"{new.address} has not archived timeline {timeline} after "
                    f"{timeout:g} s (last archived {archived or 'nothing'}"
                    + (f", last failed {failed}: see its server log" if failed else "")
                    + "); its old primary cannot follow it from the repository yet")
            time.sleep(0.2)


def wait_replayed_archive(standby_dsn: str, lsn: int, timeout: float,
                          poll: float = 0.1) -> NodeState:
    """Until the repository-fed standby at `standby_dsn` has replayed the archive up to
    `lsn` (an ArchivedPoint's end_lsn); its state at that moment is returned.

    Replay may stop short of `lsn` for good: a record that starts in the last archived
    segment and ends in the next one cannot be replayed until that one is archived. So
    the wait also ends once replay is inside the segment holding `lsn` and the startup
    process waits for the next WAL (it has replayed all it could fetch). When `lsn` is
    inside a segment (a streamed version, which newer versions may extend) it must be seen
    fetching again after this call began, so that an older version does not count.
    Needs a role that sees the startup process in pg_stat_activity (superuser or
    pg_read_all_stats); without it only `lsn` itself ends the wait. A timeout raises
    StandbyNotReady with the bytes still missing."""
    dsn = Dsn.parse(standby_dsn)
    deadline = time.monotonic() + timeout
    with dsn.connect() as conn:
        size = int(_one(conn, "SELECT setting::bigint FROM pg_settings "
                              "WHERE name = 'wal_segment_size'"))
        last_segment = (lsn - 1) // size * size
        fresh = lsn % size == 0  # a complete segment: its content never changes
        while True:
            state = read_state(conn)
            if state.role != STANDBY:
                raise StandbyNotReady(f"{dsn.safe()} is not in recovery: not a standby")
            replay = state.replay_lsn or 0
            waiting = _one(conn, "SELECT wait_event FROM pg_stat_activity "
                                 "WHERE backend_type = 'startup'") == WAITING_FOR_WAL
            if replay >= lsn or (fresh and waiting and replay >= last_segment):
                return state
            fresh = fresh or not waiting  # it is fetching: what it finds is current
            if time.monotonic() >= deadline:
                paused = "; replay is paused" if state.replay_paused else ""
                raise StandbyNotReady(
                    f"{dsn.safe()} replayed the archive up to {format_lsn(replay)} after "
                    f"{timeout:g} s, {lsn - replay} bytes short of {format_lsn(lsn)} "
                    f"({'waiting for WAL' if waiting else 'replaying'}{paused})")
            time.sleep(poll)


def _one(conn: Any, query: str) -> Any:
    row = conn.execute(query).fetchone()
    return None if row is None else row[0]
