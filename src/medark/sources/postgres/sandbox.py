"""A writable, throwaway copy of a standby for a DR drill: pg_basebackup from the standby
(production's primary is not read at all), started on its own 127.0.0.1 port as a
primary that replicates from nobody, archives nowhere and holds no slot, then destroyed.

The copy is the standby's own data directory, so every setting it carries that points
back at production is replaced before it starts (`_overrides`); without standby.signal
it recovers to the end of the copied WAL and comes up writable on its own timeline 1
branch, which nothing else ever reads (archive_mode is off).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import conninfo as pg_conninfo

from medark.errors import HealthCheckFailed, MedarkError, StandbyNotReady, UsageError
from medark.sources.postgres import control
from medark.sources.postgres.server import Dsn
from medark.sources.postgres.tools import find_program
from medark.util.files import atomic_write

PREFIX = "medark-sandbox-"
"""The sandbox's own directory (data, socket, log) is `<workdir>/medark-sandbox-XXXX`;
destroy removes a parent directory only when it carries this name."""

SIGNAL_FILES = ("standby.signal", "recovery.signal")
"""pg_basebackup copies the standby's standby.signal: left in, the copy would be a
standby, and its primary_conninfo a second receiver on production."""

NOT_COPIED = ("data_directory", "config_file", "hba_file", "ident_file", "external_pid_file")
"""Settings of a standby whose configuration lives outside its data directory (Debian's
/etc/postgresql) that name production's own paths; the copy uses its defaults."""


def _overrides(port: int, base: Path, datadir: Path) -> dict[str, str]:
    """Written last into the copy's postgresql.auto.conf (later lines win) and every line
    of these names in it is dropped first (primary_conninfo may carry a password)."""
    return {
        "port": str(port), "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": _quote(str(base)), "data_directory": _quote(str(datadir)),
        "external_pid_file": _quote(f"{base}/external.pid"), "cluster_name": "'sandbox'",
        # Nothing leaves the sandbox: no WAL archived, no feed followed or restored.
        "archive_mode": "off", "archive_command": "''", "archive_library": "''",
        "restore_command": "''", "primary_conninfo": "''", "primary_slot_name": "''",
        # A standby configured for its own promotion may name sync standbys: the
        # sandbox would wait on them at every commit. A switch's read-only fence goes too.
        "synchronous_standby_names": "''", "default_transaction_read_only": "off",
        # Its log goes to the sandbox's file, never into production's log directory.
        "logging_collector": "off",
    }


@dataclass(frozen=True)
class Sandbox:
    datadir: Path
    port: int
    dsn: str = field(repr=False)
    """The standby's DSN pointed at the sandbox (its password too, hence no repr)."""
    ready_seconds: float
    """From the call to clone_standby until the copy took a write: the drill's time to a
    writable database (copy, recovery and start)."""

    @property
    def base(self) -> Path:
        """The sandbox's own directory: data, socket and server.log."""
        return self.datadir.parent

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data_owner(standby_datadir: Path | None) -> tuple[int, int]:
    if standby_datadir is not None:
        control.check_datadir(standby_datadir)
        return control.owner(standby_datadir)
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    try:
        return pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid
    except KeyError:
        raise UsageError("no postgres OS user to run the sandbox as: give the standby's "
                         "data directory, whose owner runs it") from None


def clone_standby(standby_dsn: str, standby_datadir: Path | None, workdir: Path,
                  bin_dir: str | None = None, timeout: float = 300.0) -> Sandbox:
    """Copy the standby at `standby_dsn` into a new directory under `workdir` and start
    the copy as a writable server on a free port. A standby that is not one, or cannot be
    copied, raises StandbyNotReady; a copy that does not come up writable within
    `timeout` is removed and raises HealthCheckFailed (the drill's own check failed;
    production is as it was)."""
    started = time.monotonic()
    deadline = started + timeout
    source = Dsn.parse(standby_dsn)
    owner = _data_owner(standby_datadir)
    with source.connect() as conn:
        row = conn.execute("SELECT pg_is_in_recovery(), "
                           "current_setting('server_version_num')::int").fetchone()
        if row is None or not row[0]:
            raise StandbyNotReady(f"{source.safe()} is not in recovery: not a standby to "
                                  "copy for a drill")
        major = int(str(row[1])) // 10000
        spaces = [str(r[0]) for r in conn.execute(
            "SELECT pg_tablespace_location(oid) FROM pg_tablespace "
            "WHERE pg_tablespace_location(oid) LIKE '/%'")]  # not in-place ones
        settings = {str(r[0]): str(r[1]) for r in conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE source = "
            "'configuration file' OR name IN ('hba_file', 'ident_file')")}
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=PREFIX, dir=workdir))
    os.chmod(base, 0o700)
    datadir = base / "data"
    try:
        if len(f"{base}/.s.PGSQL.65535") > 107:  # sun_path: 108 bytes with the NUL
            raise UsageError(f"{workdir} is too long a path for the sandbox's socket")
        datadir.mkdir(mode=0o700)
        if os.geteuid() == 0:  # else the owner is us, or run_as_owner refuses clearly
            for path in (base, datadir):
                os.chown(path, *owner)
        argv = [find_program("pg_basebackup", major, bin_dir), "-d",
                source.without_password(), "-D", str(datadir), "-X", "stream",
                "-c", "fast", "--no-sync", "--no-manifest"]
        for i, location in enumerate(spaces):
            # Same host: left at its path, a tablespace would land in production's
            # (OLD=NEW, with any '=' in a path escaped).
            old, new = (x.replace("=", "\\=") for x in (location, f"{base}/tablespace-{i}"))
            argv.append(f"--tablespace-mapping={old}={new}")
        try:
            done = control.run_as_owner(datadir, argv, max(1.0, deadline - time.monotonic()),
                                        env=source.environment())
        except subprocess.TimeoutExpired:
            raise StandbyNotReady(f"pg_basebackup from the standby {source.safe()} did not "
                                  f"finish within {timeout:g} s") from None
        if done.returncode != 0:
            raise StandbyNotReady(f"pg_basebackup from the standby {source.safe()} "
                                  f"failed: {control.last_line(done)}")
        port = free_port()
        _configure(datadir, base, port, owner, settings)
        ready = _start(datadir, base, port, source, deadline, bin_dir)
    except BaseException:
        with suppress(MedarkError, OSError):  # the first failure is the one to report
            _remove(base, datadir, bin_dir)
        raise
    return Sandbox(datadir, port, ready, time.monotonic() - started)


def _configure(datadir: Path, base: Path, port: int, owner: tuple[int, int],
               settings: dict[str, str]) -> None:
    """The copy's configuration: its own port, socket and paths, nothing that reaches
    production. A standby configured from outside its data directory lends its files and
    settings (never the paths NOT_COPIED)."""
    for name in SIGNAL_FILES:
        (datadir / name).unlink(missing_ok=True)
    for setting, name in (("hba_file", "pg_hba.conf"), ("ident_file", "pg_ident.conf")):
        if not (datadir / name).exists():
            try:
                data = Path(settings[setting]).read_bytes()
            except (KeyError, OSError) as exc:
                raise StandbyNotReady(f"the standby's {setting} is outside its data "
                                      f"directory and cannot be read: {exc}") from None
            atomic_write(datadir / name, data, owner=owner)
    overrides = _overrides(port, base, datadir)
    if not (datadir / "postgresql.conf").exists():
        lines = [f"{k} = {_quote(v)}" for k, v in settings.items()
                 if k not in overrides and k not in NOT_COPIED]
        atomic_write(datadir / "postgresql.conf", ("\n".join(lines) + "\n").encode(),
                     owner=owner)
    auto = datadir / "postgresql.auto.conf"
    kept = [line for line in (auto.read_text().splitlines() if auto.is_file() else [])
            if line.split("=", 1)[0].strip() not in overrides]
    kept += [f"{name} = {value}" for name, value in overrides.items()]
    atomic_write(auto, ("\n".join(kept) + "\n").encode(), owner=owner)


def _start(datadir: Path, base: Path, port: int, source: Dsn, deadline: float,
           bin_dir: str | None) -> str:
    """pg_ctl start -w, then wait until the copy has left recovery and a transaction id
    can be assigned: the proof that it is a writable primary. Returns its DSN."""
    log = base / "server.log"
    done = control.start(datadir, log, max(1.0, deadline - time.monotonic()), bin_dir)
    if done.returncode != 0:
        raise HealthCheckFailed(f"the sandbox copy of {source.safe()} did not start: "
                                f"{_log_reason(log) or control.last_line(done)}")
    params = {k: v for k, v in source.params.items()
              if k not in ("hostaddr", "service") and not k.startswith("ssl")}
    dsn = pg_conninfo.make_conninfo(**{**params, "host": "127.0.0.1", "port": str(port)})
    seen = "no answer"
    while True:
        try:
            with Dsn.parse(dsn).connect() as conn:
                row = conn.execute("SELECT pg_is_in_recovery(), "
                                   "current_setting('transaction_read_only')").fetchone()
                assert row is not None
                if not row[0] and row[1] == "off":
                    conn.execute("SELECT pg_current_xact_id()")
                    return dsn
                seen = "in recovery" if row[0] else "read-only"
        except MedarkError as exc:
            seen = str(exc)
        if time.monotonic() >= deadline:
            raise HealthCheckFailed(f"the sandbox copy of {source.safe()} on port {port} is "
                                    f"not writable in time ({seen})")
        time.sleep(0.05)


def _log_reason(log: Path) -> str:
    """The server's last FATAL line (why it stopped), else its last line."""
    with suppress(OSError):
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
        return ([x for x in lines if "FATAL" in x] or [x for x in lines if x] or [""])[-1]
    return ""


def destroy(sandbox: Sandbox, bin_dir: str | None = None) -> None:
    """Stop the sandbox (immediate: its data is thrown away) and remove its directory.
    Harmless on a sandbox already destroyed."""
    _remove(sandbox.base, sandbox.datadir, bin_dir)


def _remove(base: Path, datadir: Path, bin_dir: str | None) -> None:
    if (datadir / "postmaster.pid").exists() and (datadir / "PG_VERSION").exists():
        control.stop(datadir, "immediate", 60, bin_dir)
        if control.is_running(datadir, bin_dir):
            raise MedarkError(f"the sandbox in {datadir} did not stop; it is left in place")
    target = base if base.name.startswith(PREFIX) else datadir
    if target.exists():
        shutil.rmtree(target)
