"""PostgreSQL use cases shared by the CLI and (later) the API: push and fetch WAL, take a
base backup, restore to a target, report the recoverable window."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import struct
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medark.engine.pg_prefetch import (
    PREFETCH_COMPLETE,
    PREFETCH_FAILED,
    PREFETCH_RUNNING,
    WalPrefetch,
)
from medark.engine.pg_restore import (
    RecoverySettings,
    check_runnable,
    describe_backup,
    prepare_target,
    restore_base,
    start_server,
    write_recovery_config,
)
from medark.engine.pg_target import TimeResolution, resolve_time
from medark.engine.pg_wal import Inventory, WalArchive, WalRecord, write_file_atomically
from medark.engine.pg_window import (
    Target,
    WalMap,
    choose_backup,
    pg_base_backups,
    stop_time,
)
from medark.errors import ArchiveReadFailed, ObjectNotFound, RepositoryCorrupt, UsageError
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots, load_tree
from medark.sources.postgres.wal import (
    DEFAULT_SEGMENT_SIZE,
    parse_lsn,
    segment_name,
    wal_file_kind,
)
from medark.util import clock
from medark.util.files import chown_tree
from medark.util.secret_file import write_secret_file

PG_CONTROL = os.path.join("global", "pg_control")


def system_id_of(data_dir: str) -> str:
    """The cluster's system identifier: the first 8 bytes of global/pg_control."""
    path = os.path.join(data_dir, PG_CONTROL)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror}): run from the data directory "
                         "(as archive_command does) or pass --system-id") from None
    if len(head) != 8:
        raise UsageError(f"{path} is too short to be a pg_control file")
    return str(struct.unpack("<Q", head)[0])


def wal_push(repo: Repository, path: str, system_id: str) -> dict[str, Any]:
    name = os.path.basename(path)
    if wal_file_kind(name) is None:
        raise UsageError(f"{path!r} is not a WAL file PostgreSQL archives")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    result = WalArchive(repo, system_id).push(name, data, "archive_command")
    return {"message_type": "wal_pushed", "file": name, "stored": result.stored,
            "bytes": len(data), "data_added_packed": result.bytes_added}


def wal_fetch(repo: Repository, name: str, destination: str, system_id: str
              ) -> WalRecord | None:
    if wal_file_kind(name) is None:
        raise UsageError(f"{name!r} is not a WAL file name")
    return WalArchive(repo, system_id).fetch_to(name, destination)


def fetch_from_spool(spool: str, name: str, destination: str, wait: float = 900.0) -> bool:
    """Serve a WAL file `pg restore` fetches ahead (no repository access, so the
    database's OS user needs no read access to it); the spool copy stays for a re-read.
    While the prefetch still runs, wait for the file; a failed prefetch is an error."""
    if wal_file_kind(name) is None:
        raise UsageError(f"{name!r} is not a WAL file name")
    source = os.path.join(spool, name)
    deadline = clock.monotonic() + wait
    while not os.path.isfile(source):
        failed = os.path.join(spool, PREFETCH_FAILED)
        if os.path.exists(failed):
            with open(failed, encoding="utf-8", errors="replace") as f:
                raise ArchiveReadFailed(f"fetching WAL ahead failed: {f.read().strip()}")
        if not os.path.exists(os.path.join(spool, PREFETCH_RUNNING)):
            return os.path.isfile(source)  # finished meanwhile: a last look
        if clock.monotonic() > deadline:
            raise ArchiveReadFailed(f"{name} did not arrive from the prefetch in {wait:g} s")
        clock.sleep(0.05)
    with open(source, "rb") as f:
        data = f.read()
    write_file_atomically(destination, data)
    return True


# ---- restore ---------------------------------------------------------------------------


@dataclass
class RestoreRequest:
    target_dir: str
    target: Target
    system_id: str | None
    medark_command: str
    """How the database's OS user runs medark (restore_command calls `pg wal-fetch`)."""
    location: str
    password_file: str | None
    """Referenced by restore_command; when None, one is written beside the target."""
    password: bytes
    cache_dir: str | None = None
    start: bool = False
    port: int | None = None
    os_user: str | None = None
    pg_bin: str | None = None
    archive_mode_off: bool = False
    timeout: float = 3600.0
    workers: int = 2
    standby: bool = False
    """A warm standby that keeps replaying what the repository receives (implies the
    newest target). Once promoted it archives its own timeline into the same repository
    (unless archive_mode_off), so the old primary can become its repository-fed standby."""


def write_password_file(path: str, password: bytes, user: str | None) -> None:
    """0600, owned by the database's OS user: what restore_command needs, nothing more.
    A link planted at the path is refused, never followed (util/secret_file.py)."""
    owner = None
    if user:
        entry = pwd.getpwnam(user)
        owner = (entry.pw_uid, entry.pw_gid)
    write_secret_file(path, password + b"\n", owner)


def _medark_argv(medark: str, location: str, password_file: str, cache_dir: str | None
                 ) -> list[str]:
    """medark on the repository, as the database's OS user runs it: repository and
    password *file*, never the password itself."""
    argv = [*shlex.split(medark), "--repo", location, "--password-file", password_file]
    return [*argv, "--cache-dir", cache_dir] if cache_dir else argv


def archive_command_line(medark: str, location: str, password_file: str,
                         cache_dir: str | None) -> str:
    """The archive_command that pushes into the repository (`pg wal-push %p`)."""
    return shlex.join([*_medark_argv(medark, location, password_file, cache_dir),
                       "pg", "wal-push"]) + " %p"


def restore_command_line(medark: str, location: str, password_file: str, system_id: str,
                         cache_dir: str | None, spool: str | None = None,
                         standby: bool = False) -> str:
    """The restore_command PostgreSQL runs (`pg wal-fetch %f %p`)."""
    argv = [*_medark_argv(medark, location, password_file, cache_dir),
            "pg", "wal-fetch", "--system-id", system_id]
    if standby:
        # A read failure is "not available yet" (exit 1, retried every
        # wal_retrieve_retry_interval), never exit 126, which would stop the standby.
        argv.append("--standby")
    if not spool:
        return shlex.join(argv) + " %f %p"
    q = shlex.quote
    spooled = f"{q(spool)}/%f"
    from_spool = shlex.join([*argv, "--spool", spool])
    if standby:
        # The spool is a head start, the repository the source: a file is served from
        # the spool once (and removed), else waited for while the prefetch runs, else
        # fetched from the repository, where new WAL keeps arriving.
        return (f"if [ -f {spooled} ]; then cp {spooled} %p && rm -f {spooled}; "
                f"elif [ -f {q(os.path.join(spool, PREFETCH_RUNNING))} ]; then "
                f"{from_spool} %f %p && rm -f {spooled}; "
                f"else {shlex.join(argv)} %f %p; fi")
    # Served by cp from the spool, and refused at once once the spool is known complete:
    # PostgreSQL calls restore_command for every segment and probes for timeline history
    # files, and a shell builtin answers in a millisecond where starting medark takes a
    # quarter of a second. medark itself runs only while the prefetch is still going.
    return (f"if [ -f {spooled} ]; then cp {spooled} %p; "
            f"elif [ -f {q(os.path.join(spool, PREFETCH_COMPLETE))} ]; then exit 1; "
            f"else {from_spool} %f %p; fi")


def default_medark_command() -> str:
    exe = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "medark"
    if os.path.basename(exe) != "medark" or not os.access(exe, os.X_OK):
        return "medark"
    return exe


def plan_restore(repo: Repository, request: RestoreRequest) -> tuple[Snapshot, str]:
    """Choose the base backup (without writing anything); returns it and the cluster id."""
    backups = pg_base_backups(all_snapshots(repo), request.system_id)
    if not backups:
        raise ObjectNotFound("no PostgreSQL base backup in the repository "
                             "(take one with `medark pg backup`)")
    system_id = str(backups[-1].source["system_id"])
    archive = WalArchive(repo, system_id)
    size = int(backups[-1].source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
    wal = WalMap.build(archive.inventory(), size)

    def archived_at(segno: int) -> datetime | None:
        for tli in range(wal.newest_timeline, 0, -1):
            record = archive.find(segment_name(tli, segno, size))
            if record is not None:
                return clock.parse_time(record.archived)
        return None

    newest = wal.newest_segno()
    newest_time = archived_at(newest) if newest is not None else None
    chosen = choose_backup(backups, request.target, wal, newest_time, archived_at)
    return chosen, system_id


def run_restore(repo: Repository, request: RestoreRequest, chosen: Snapshot
                ) -> dict[str, Any]:
    t0 = clock.monotonic()
    if request.standby and request.target.kind != "latest":
        raise UsageError("a standby replays the newest WAL: no --time, --lsn or --backup-only")
    target_dir = prepare_target(request.target_dir)
    nodes = load_tree(repo, chosen.tree)
    base = next((n for n in nodes if n.name == "base.tar"), None)
    if base is None:
        raise ObjectNotFound(f"snapshot {chosen.short_id} holds no base.tar")
    files = restore_base(repo, base.content, target_dir, request.workers)
    os.makedirs(os.path.join(target_dir, "pg_wal", "archive_status"), mode=0o700,
                exist_ok=True)
    user = request.os_user if os.geteuid() == 0 else None
    notes = []
    password_file = request.password_file
    if password_file is None:
        password_file = target_dir.rstrip("/") + ".medark-password"
        write_password_file(password_file, request.password, user)
        notes.append(f"restore_command reads the repository password from {password_file}")
    spool = target_dir.rstrip("/") + ".medark-wal"
    prefetch = WalPrefetch(WalArchive(repo, str(chosen.source["system_id"])), chosen, spool,
                           user, every=request.target.kind != "immediate")
    command = restore_command_line(request.medark_command, request.location,
                                   os.path.abspath(password_file),
                                   str(chosen.source["system_id"]), request.cache_dir, spool,
                                   standby=request.standby)
    archive = archive_command_line(request.medark_command, request.location,
                                   os.path.abspath(password_file), request.cache_dir)
    resolved = _resolve_time(repo, request, chosen, target_dir)
    if resolved is not None and resolved.note:
        notes.append(resolved.note)
    notes += write_recovery_config(target_dir, RecoverySettings(
        command, resolved.target if resolved else request.target, request.port,
        request.archive_mode_off,
        standby=request.standby, archive_command=archive if request.standby else None))
    if user:
        chown_tree(target_dir, user)
    result: dict[str, Any] = {
        "message_type": "pg_restore", "target_dir": target_dir, "files": files,
        "backup": describe_backup(chosen), "recovery_target": request.target.describe(),
        "restore_command": command, "notes": notes, "wal_spool": spool,
        "standby": request.standby,
    }
    if resolved is not None:
        result.update(recovery_target=resolved.describe(), target=resolved.to_json())
    if request.standby:
        result["recovery_target"] = "none: a standby replaying the repository's WAL"
    if not request.start:
        prefetch.run()  # the spool must be complete before the operator starts the server
        result.update(wal_prefetched=prefetch.fetched,
                      restore_seconds=round(clock.monotonic() - t0, 3))
        return result
    if request.port is None:
        raise UsageError("--start needs --port")
    check_runnable(request.medark_command, user)
    # Recovery replays segment N while segment N+1 is fetched; wal-fetch waits for it.
    prefetch.start()
    try:
        result["restore_seconds"] = round(clock.monotonic() - t0, 3)
        major = int(chosen.source.get("server_version_num", 0)) // 10000 or None
        log = start_server(target_dir, request.port, user, major or 15, request.pg_bin,
                           request.timeout, standby=request.standby)
    except BaseException:
        prefetch.stop()
        raise
    if request.standby:
        # Consistent is not caught up: the standby goes on taking the spool's files (each
        # once) while the prefetch completes; what comes later, from the repository.
        prefetch.wait()
    else:
        prefetch.stop()
    result.update(started=True, port=request.port, server_log=log,
                  wal_prefetched=prefetch.fetched,
                  ready_seconds=round(clock.monotonic() - t0, 3))
    if not request.standby:
        shutil.rmtree(spool, ignore_errors=True)  # recovery is over: the spool is spent
    return result


def _resolve_time(repo: Repository, request: RestoreRequest, chosen: Snapshot,
                  target_dir: str) -> TimeResolution | None:
    """A --time target past the archive's last commit is recovered to the end of the
    archive (engine/pg_target.py: PostgreSQL would refuse to finish)."""
    target = request.target
    if request.standby or target.kind != "time" or target.time is None:
        return None
    return resolve_time(WalArchive(repo, str(chosen.source["system_id"])), chosen,
                        target.time, os.path.dirname(target_dir.rstrip("/")), request.pg_bin)


# ---- status ----------------------------------------------------------------------------


@dataclass
class ArchiveView:
    """One cluster's base backups and WAL archive as `pg status` and a repository-fed
    standby's DR status read them."""

    system_id: str
    backups: list[Snapshot]
    archive: WalArchive
    inventory: Inventory
    wal: WalMap
    segment_size: int

    def newest_record(self) -> WalRecord | None:
        """The newest archived segment (complete, else its newest streamed version), on
        the newest timeline that has it."""
        newest = self.wal.newest_segno()
        if newest is None:
            return None
        for tli in range(self.wal.newest_timeline, 0, -1):
            record = self.archive.find(segment_name(tli, newest, self.segment_size))
            if record is not None:
                return record
        return None


def archive_view(repo: Repository, system_id: str | None) -> ArchiveView:
    """ObjectNotFound when the repository holds no base backup (of that cluster)."""
    backups = pg_base_backups(all_snapshots(repo), system_id)
    if not backups:
        raise ObjectNotFound("no PostgreSQL base backup in the repository")
    system_id = str(backups[-1].source["system_id"])
    size = int(backups[-1].source.get("segment_size") or DEFAULT_SEGMENT_SIZE)
    archive = WalArchive(repo, system_id)
    inventory = archive.inventory()
    return ArchiveView(system_id, backups, archive, inventory,
                       WalMap.build(inventory, size), size)


def status(repo: Repository, system_id: str | None) -> dict[str, Any]:
    view = archive_view(repo, system_id)
    backups, wal, inventory = view.backups, view.wal, view.inventory
    newest_record = view.newest_record()
    now = clock.now()
    windows = []
    for backup in backups:
        chain = wal.chain_from(parse_lsn(str(backup.source["start_lsn"])))
        windows.append({
            "snapshot_id": backup.short_id, "backup_time": clock.format_time(backup.time),
            "from": clock.format_time(stop_time(backup)),
            "wal_from": f"{chain.first:X}", "wal_to": f"{chain.last:X}",
            "gap_after": None if chain.gap_at is None else f"{chain.gap_at:X}",
        })
    archived = clock.parse_time(newest_record.archived) if newest_record else None
    gaps = [w["gap_after"] for w in windows if w["gap_after"]]
    return {
        "message_type": "pg_status", "system_id": view.system_id,
        "newest_backup": describe_backup(backups[-1]), "backups": len(backups),
        "newest_wal": newest_record.name if newest_record else None,
        "newest_wal_archived": clock.format_time(archived) if archived else None,
        "rpo_seconds": round((now - archived).total_seconds(), 1) if archived else None,
        "wal_segments": len(inventory.segments), "streamed_segments": len(inventory.partial),
        "timelines": wal.newest_timeline, "windows": windows, "gaps": sorted(set(gaps)),
    }


# ---- check -----------------------------------------------------------------------------


def check(repo: Repository, system_id: str | None, read_data: bool) -> dict[str, Any]:
    """Every WAL record authenticates and names itself, its blobs are indexed (with
    `read_data`: its content hashes to the record), and each base backup's WAL runs
    without a gap to the newest archived file."""
    doc = status(repo, system_id)
    archive = WalArchive(repo, doc["system_id"])
    damaged: list[str] = []
    names = archive.names()
    for name in names:
        try:
            record = archive.read_record(name)
            missing = [b for b in record.blobs if not repo.has_blob(b)]
            if missing:
                damaged.append(f"{name}: {len(missing)} of its blobs are not in the index")
            elif read_data:
                archive.content(record)
        except (RepositoryCorrupt, ObjectNotFound) as exc:
            damaged.append(f"{name}: {exc}")
    doc.update(message_type="pg_check", records=len(names), damaged=damaged,
               read_data=read_data)
    return doc
