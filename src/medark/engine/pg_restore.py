"""`pg restore`: a data directory from a base backup, configured to recover to a target.

1. choose the newest base backup that reaches the target without a WAL gap (pg_window);
2. extract its tar stream into the target directory (blobs decoded by a thread pool,
   members written in order; nothing is written outside the directory: unsafe names,
   links other than a tablespace's, and entries beneath a link are refused);
3. write recovery.signal and the recovery settings (restore_command = `medark pg
   wal-fetch %f %p`, the target, promote at the end) into postgresql.auto.conf; for a
   standby, standby.signal and no target: it keeps replaying what the repository
   receives until it is promoted;
4. with `start`, start the server as the database's OS user and wait until recovery
   has finished and it accepts connections (a standby: until it is consistent and
   accepts read-only connections).
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import shlex
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from typing import IO, Protocol

from medark.engine.pg_window import Target
from medark.errors import CommandFailed, MedarkError, NoSpace, UnsafeEntry, UsageError
from medark.snapshot.model import Snapshot
from medark.sources.postgres.tools import find_program
from medark.sources.postgres.wal import format_lsn
from medark.util import clock
from medark.util.confine import ConfinedDir, split_name
from medark.util.pids import pid_alive

READ_AHEAD = 8
STARTUP_LOG = "medark-recovery.log"


class BlobLoader(Protocol):
    def load_blob(self, blob_id: bytes) -> bytes: ...


class _BlobStream:
    """A readable stream over a file's blobs, decoded READ_AHEAD at a time in a pool."""

    def __init__(self, repo: BlobLoader, blobs: list[bytes], pool: ThreadPoolExecutor) -> None:
        self._chunks: Iterator[bytes] = self._decoded(repo, blobs, pool)
        self._current = memoryview(b"")

    @staticmethod
    def _decoded(repo: BlobLoader, blobs: list[bytes], pool: ThreadPoolExecutor
                 ) -> Iterator[bytes]:
        futures = [pool.submit(repo.load_blob, b) for b in blobs[:READ_AHEAD]]
        for index in range(len(blobs)):
            data = futures[index].result()
            futures[index] = None  # type: ignore[call-overload]
            ahead = index + READ_AHEAD
            if ahead < len(blobs):
                futures.append(pool.submit(repo.load_blob, blobs[ahead]))
            yield data

    def read(self, size: int = -1) -> bytes:
        while not self._current:
            nxt = next(self._chunks, None)
            if nxt is None:
                return b""
            self._current = memoryview(nxt)
        if size < 0 or size >= len(self._current):
            out, self._current = bytes(self._current), memoryview(b"")
            return out
        out = bytes(self._current[:size])
        self._current = self._current[size:]
        return out


TABLESPACE_LINK = re.compile(r"pg_tblspc/[0-9]+")
"""The only symbolic links pg_basebackup writes into base.tar: one per tablespace."""
MODE_BITS = 0o777
"""Permission bits only: no set-uid, set-gid or sticky bit comes out of a backup."""


def extract_tar(stream: IO[bytes], root: str) -> int:
    """Write the members of a tar stream below `root`; returns the number of files.

    Nothing is written outside `root` (util/confine.py): an unsafe name, a symbolic link
    other than a tablespace's pg_tblspc/<oid>, any entry beneath a link, a hard link or a
    device is refused with UnsafeEntry, naming it."""
    files = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar, \
            ConfinedDir(root, "the base backup") as top:
        for member in tar:
            parts = split_name(member.name, "the base backup")
            mode = stat.S_IMODE(member.mode) & MODE_BITS
            if member.isdir():
                top.mkdir(parts, mode or 0o700)
            elif member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                fd = top.create_file(parts, mode or 0o600)
                try:
                    while block := source.read(1 << 20):
                        view = memoryview(block)
                        while view:
                            view = view[os.write(fd, view):]
                    os.utime(fd, (member.mtime, member.mtime))
                finally:
                    os.close(fd)
                files += 1
            elif member.issym() and TABLESPACE_LINK.fullmatch("/".join(parts)):
                top.symlink(parts, member.linkname)
            else:
                kind = "symbolic link" if member.issym() else \
                    "hard link" if member.islnk() else "special file"
                raise UnsafeEntry(f"the base backup holds a {kind} {member.name!r} "
                                  "pg_basebackup never writes; refusing it")
    os.sync()  # one flush for the whole data directory, before anything refers to it
    return files


@dataclass
class RecoverySettings:
    restore_command: str
    target: Target
    port: int | None = None
    archive_mode_off: bool = False
    standby: bool = False
    """A warm standby fed only by restore_command: standby.signal, no target, no
    streaming (the DR site may have no path to the primary)."""
    archive_command: str | None = None
    """With archive_mode on: a standby archives nothing while it replays (only `always`
    would), and from its promotion on archives its new timeline, so its old primary can
    be fed from the repository in turn."""


def _quote_conf(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def recovery_lines(settings: RecoverySettings) -> list[str]:
    goal = ("a standby replaying the repository's WAL" if settings.standby
            else f"recover to {settings.target.describe()}")
    lines = [
        f"# Added by medark pg restore at {clock.format_time(clock.now())}: {goal}",
        f"restore_command = {_quote_conf(settings.restore_command)}",
        "recovery_target_timeline = 'latest'",
    ]
    target = settings.target
    if settings.standby:
        # A backup of a former standby carries its primary_conninfo: cleared, the feed is
        # the repository alone. hot_standby: the standby answers read-only queries.
        lines += ["primary_conninfo = ''", "primary_slot_name = ''", "hot_standby = on"]
    elif target.kind == "time" and target.time is not None:
        # PostgreSQL's own spelling: its parser refuses ISO 8601's 'T' ... 'Z'.
        when = target.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        lines.append(f"recovery_target_time = {_quote_conf(when)}")
    elif target.kind == "lsn" and target.lsn is not None:
        lines.append(f"recovery_target_lsn = {_quote_conf(format_lsn(target.lsn))}")
    elif target.kind == "immediate":
        lines.append("recovery_target = 'immediate'")
    if target.kind != "latest" and not settings.standby:
        lines.append("recovery_target_action = 'promote'")
    if settings.port is not None:
        lines.append(f"port = {settings.port}")
    if settings.archive_mode_off:
        lines.append("archive_mode = 'off'")
    elif settings.archive_command is not None:
        lines += ["archive_mode = 'on'",
                  f"archive_command = {_quote_conf(settings.archive_command)}"]
    return lines


MINIMAL_CONF = """# Written by medark pg restore: the base backup held no postgresql.conf
# (on Debian it lives in /etc/postgresql). Review before serving production traffic.
listen_addresses = 'localhost'
max_connections = 100
shared_buffers = 128MB
"""

MINIMAL_HBA = """# Written by medark pg restore: the base backup held no pg_hba.conf. Local and
# loopback connections are trusted so that the restore can be verified; tighten this
# before production use.
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
"""


def write_recovery_config(data_dir: str, settings: RecoverySettings) -> list[str]:
    """recovery.signal (a standby: standby.signal) plus the settings; returns notes for
    the operator."""
    notes = []
    for name in ("standby.signal", "recovery.signal", "postmaster.pid", "postmaster.opts"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            os.unlink(path)
    if not os.path.exists(os.path.join(data_dir, "postgresql.conf")):
        _write(os.path.join(data_dir, "postgresql.conf"), MINIMAL_CONF)
        notes.append("no postgresql.conf in the backup: wrote a minimal one")
    if not os.path.exists(os.path.join(data_dir, "pg_hba.conf")):
        _write(os.path.join(data_dir, "pg_hba.conf"), MINIMAL_HBA)
        notes.append("no pg_hba.conf in the backup: wrote one that trusts local connections")
    auto = os.path.join(data_dir, "postgresql.auto.conf")
    existing = ""
    if os.path.exists(auto):
        with open(auto, encoding="utf-8",
                  opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as f:
            existing = f.read()
    if existing and not existing.endswith("\n"):
        existing += "\n"
    _write(auto, existing + "\n".join(recovery_lines(settings)) + "\n")
    signal = "standby.signal" if settings.standby else "recovery.signal"
    _write(os.path.join(data_dir, signal), "")
    return notes


def _write(path: str, text: str) -> None:
    # O_NOFOLLOW: a link at one of these names is refused, never written through.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def as_user(argv: list[str], user: str | None) -> list[str]:
    """Run as the database's OS user when we are root (PostgreSQL refuses to run as root)."""
    if user is None or os.geteuid() != 0 or pwd.getpwuid(os.geteuid()).pw_name == user:
        return argv
    return ["runuser", "-u", user, "--", *argv]


def check_runnable(command: str, user: str | None) -> None:
    """The restore_command must work as the database's OS user: try `--version`."""
    argv = [*shlex.split(command), "--version"]
    try:
        done = subprocess.run(as_user(argv, user), capture_output=True, text=True,
                              timeout=60, check=False)
    except OSError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        who = f"the OS user {user}" if user else "this user"
        raise UsageError(
            f"{who} cannot run `{shlex.join(argv[:-1])}` ({(done.stderr or '').strip()[-200:]}); "
            "install medark where the database's OS user can run it, or give "
            "--medark-command")


SOCKET_PATH_MAX = 107
"""sun_path's size on Linux, less its terminating NUL."""


def socket_dir(data_dir: str) -> str:
    """Where the restored server's Unix socket goes: a directory only its OS user writes,
    that no other server uses. pg_stat_tmp, whose contents pg_rewind and pg_basebackup
    skip: a socket at the top of the data directory makes a pg_rewind from this server
    fail ("could not open file .s.PGSQL.N"). The data directory itself when that path
    would be too long for a socket."""
    stat_tmp = os.path.join(data_dir, "pg_stat_tmp")
    if os.path.isdir(stat_tmp) and len(stat_tmp) + len("/.s.PGSQL.65535.lock") <= SOCKET_PATH_MAX:
        return stat_tmp
    return data_dir


def start_server(data_dir: str, port: int, user: str | None, major: int,
                 pg_bin: str | None, timeout: float, standby: bool = False) -> str:
    """Start PostgreSQL on `data_dir` and wait until recovery is over and it accepts
    connections (`standby`: until it is consistent and answers in recovery); returns
    the server log's path."""
    pg_ctl = find_program("pg_ctl", major, pg_bin)
    log = os.path.join(data_dir, STARTUP_LOG)
    options = f"-p {port} -c unix_socket_directories={shlex.quote(socket_dir(data_dir))}"
    # -w: wait until the server writes its pid file and accepts connections (with
    # hot_standby, once consistent), bounded by the recovery timeout.
    argv = [pg_ctl, "-D", data_dir, "-l", log, "-o", options, "-w", "-t",
            str(max(1, int(timeout))), "start"]
    done = subprocess.run(as_user(argv, user), capture_output=True, text=True,
                          timeout=timeout + 30, check=False)
    if done.returncode != 0:
        raise CommandFailed(f"the restored server did not start: {_last_error(log)} "
                            f"(see {log})")
    _wait_ready(data_dir, port, user, major, pg_bin, timeout, log, standby)
    return log


def stop_server(data_dir: str, user: str | None, major: int, pg_bin: str | None = None,
                timeout: float = 120) -> None:
    """A fast shutdown (`pg_ctl stop -m fast`) of a server `start_server` started; no-op
    when none runs on `data_dir`."""
    if not _postmaster_alive(data_dir):
        return
    pg_ctl = find_program("pg_ctl", major, pg_bin)
    argv = [pg_ctl, "-D", data_dir, "-m", "fast", "-w", "-t", str(int(timeout)), "stop"]
    done = subprocess.run(as_user(argv, user), capture_output=True, text=True,
                          timeout=timeout + 30, check=False)
    if done.returncode != 0 and _postmaster_alive(data_dir):
        raise CommandFailed(f"the restored server on {data_dir} did not stop: "
                            f"{(done.stderr or done.stdout).strip()[-200:]}")


def _wait_ready(data_dir: str, port: int, user: str | None, major: int, pg_bin: str | None,
                timeout: float, log: str, standby: bool = False) -> None:
    psql = find_program("psql", major, pg_bin)
    argv = [psql, "-h", socket_dir(data_dir), "-p", str(port), "-d", "postgres", "-At", "-X",
            "-c", "SELECT pg_is_in_recovery()"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(as_user(argv, user), capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode == 0 and done.stdout.strip() == ("t" if standby else "f"):
            return
        if not _postmaster_alive(data_dir):
            raise CommandFailed(f"the restored server stopped during recovery: "
                                f"{_last_error(log)} (see {log})")
        time.sleep(0.1)
    what = "the standby did not become consistent" if standby else "recovery did not finish"
    raise CommandFailed(f"{what} within {timeout:g} s (see {log})")


def _postmaster_alive(data_dir: str) -> bool:
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="utf-8") as f:
            pid = int(f.readline().strip())
    except (OSError, ValueError):
        return False
    return pid_alive(pid)


def _last_error(log: str) -> str:
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "no server log"
    errors = [ln for ln in lines if "FATAL" in ln or "PANIC" in ln]
    return (errors or lines or ["no server log"])[-1].strip()


def describe_backup(snap: Snapshot) -> dict[str, object]:
    src = snap.source
    return {"snapshot_id": snap.id, "time": clock.format_time(snap.time),
            "start_lsn": src.get("start_lsn"), "stop_lsn": src.get("stop_lsn"),
            "timeline": src.get("timeline"), "server_version": src.get("server_version")}


def prepare_target(path: str) -> str:
    target = os.path.abspath(path)
    if os.path.exists(target):
        if not os.path.isdir(target):
            raise UsageError(f"--target-dir {target} exists and is not a directory")
        if os.listdir(target):
            raise UsageError(f"--target-dir {target} is not empty; restore into a new or "
                             "empty directory")
    else:
        try:
            os.makedirs(target, mode=0o700)
        except OSError as exc:
            raise UsageError(f"cannot create --target-dir {target}: {exc.strerror}") from None
    os.chmod(target, 0o700)
    return target


def restore_base(repo: BlobLoader, blobs: list[bytes], target: str, workers: int) -> int:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pg-restore") as pool:
        stream = _BlobStream(repo, blobs, pool)
        try:
            return extract_tar(stream, target)  # type: ignore[arg-type]
        except tarfile.TarError as exc:
            raise MedarkError(f"the base backup's tar stream is damaged: {exc}") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace(f"--target-dir {target}: no space left on device") from None
            raise MedarkError(f"cannot write the base backup into {target}: "
                              f"{exc.strerror or exc} ({exc.filename or 'a member'})") from None
