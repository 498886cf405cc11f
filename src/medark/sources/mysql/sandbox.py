"""A writable, throwaway copy of a MariaDB standby for a DR drill (postgres/sandbox.py's
counterpart): `mariadb-backup --backup` from the standby (production's primary is not
read), prepared, and started on its own 127.0.0.1 port as a server that replicates from
nobody and writes no binary log, then destroyed.

The standby keeps replicating (or being fed from a repository: `replicating=False`)
throughout: no --safe-slave-backup (its SQL thread is not stopped), only
mariadb-backup's brief BACKUP STAGE BLOCK_COMMIT, as a `medark mysql backup` takes.
mariadb-backup reads the data files themselves, so the drill runs on the
standby's host. The copy starts with the restore's own option file (server.py's
write_config: its socket, pid file and log inside the copy, --skip-slave-start) plus
skip-log-bin, read_only=0 and a server_id of its own; the copied replication
configuration is dropped before it starts and RESET SLAVE ALL runs once it is up, so
it never connects to production.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from medark.errors import CommandFailed, HealthCheckFailed, MedarkError, StandbyNotReady, UsageError
from medark.sources.mysql.client import Conn, find_program
from medark.sources.mysql.replication import connect, run
from medark.sources.mysql.server import (
    CONFIG,
    SOCKET,
    RestoreServer,
    backup_settings,
    write_config,
)
from medark.sources.mysql.server import run as run_tool
from medark.util.files import chown_tree

PREFIX = "medark-sandbox-"
"""The sandbox's own directory is `<workdir>/medark-sandbox-XXXX` (the copy in `data`);
destroy removes a parent directory only when it carries this name."""
PID_FILE = "mysqld.pid"
"""write_config's pid-file, inside the copy."""
REPLICATION_FILES = ("master.info", "relay-log.info", "multi-master.info")
"""The copied replication configuration (MASTER_PASSWORD included), dropped before the
copy starts; `master-<name>.info` and `relay-log-<name>.info` go too."""
SETTINGS = ("datadir", "innodb_data_home_dir", "innodb_log_group_home_dir",
            "innodb_undo_directory")
"""Where the standby's files are, as the standby says: given to mariadb-backup on its
command line, so that an option file's [mysqld] datadir (another server's) is not read."""


@dataclass(frozen=True)
class MariaSandbox:
    datadir: Path
    port: int
    dsn: str
    """The standby's DSN user at the sandbox (no password in it: the standby's password
    logs in, the copy has the standby's accounts)."""
    ready_seconds: float
    """From the call to clone_standby until the copy answered writable: the drill's time
    to a writable database (copy, prepare and start)."""
    server: RestoreServer | None = field(default=None, repr=False, compare=False)

    @property
    def base(self) -> Path:
        """The sandbox's own directory (the copy, mariadb-backup's log)."""
        return self.datadir.parent

    @property
    def socket(self) -> Path:
        return self.datadir / SOCKET

    @property
    def pid(self) -> int | None:
        """The copy's mariadbd, while its pid file names a live process of it."""
        try:
            pid = int((self.datadir / PID_FILE).read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.datadir / CONFIG).encode() in cmdline else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clone_standby(standby_dsn: str, password: str | None, workdir: Path,
                  timeout: float = 300.0, bin_dir: str | None = None, *,
                  replicating: bool = True) -> MariaSandbox:
    """Copy the standby at `standby_dsn` (its password apart, for the tools' environment
    only) into a new directory under `workdir` and start the copy writable on a free
    port. A server that is no standby (without `replicating`, a standby fed from a
    repository: read-only, no replication connection needed), or cannot be copied, raises
    StandbyNotReady; a copy that does not come up writable within `timeout` is removed
    and raises HealthCheckFailed (the drill's own check failed; production is as it was)."""
    started = time.monotonic()
    deadline = started + timeout
    source = connect(standby_dsn, password)
    found = run(source, "SELECT " + ", ".join(f"IFNULL(@@{s}, '')" for s in SETTINGS)
                + ", @@read_only; SHOW ALL SLAVES STATUS", timeout=60)
    row = found[0].split("\t")
    if replicating and len(found) < 2:
        raise StandbyNotReady(f"{source.safe()} has no replication connection: not a "
                              "standby to copy for a drill")
    if not replicating and row[-1] != "1":
        raise StandbyNotReady(f"{source.safe()} is writable: not a standby to copy for a "
                              "drill")
    paths = dict(zip(SETTINGS, row[:len(SETTINGS)], strict=True))
    owner = _owner(paths["datadir"], source)
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=PREFIX, dir=workdir))
    os.chmod(base, 0o700)
    datadir = base / "data"
    sandbox: MariaSandbox | None = None
    try:
        if len(str(datadir / SOCKET)) > 107:  # sun_path: 108 bytes with the NUL
            raise UsageError(f"{workdir} is too long a path for the sandbox's socket")
        _copy(source, paths, datadir, deadline, bin_dir)
        port = free_port()
        (datadir / "xtrabackup_slave_info").unlink(missing_ok=True)
        for info in datadir.iterdir():
            if info.name in REPLICATION_FILES or (info.suffix == ".info" and info.name
                                                  .startswith(("master-", "relay-log-"))):
                info.unlink()
        with open(datadir / "backup-my.cnf", encoding="utf-8") as f:
            settings = backup_settings(f.read())
        # A server_id of its own: nothing replicates from or to it, but none is shared.
        server_id = secrets.randbelow(2**31) + 2**31
        write_config(str(datadir), [*settings, "skip-log-bin", "read-only=0",
                                    f"server-id={server_id}", "event-scheduler=OFF"], port)
        if owner is not None:
            chown_tree(str(base), owner)
        server = RestoreServer(find_program("mariadbd", "mysqld", bin_dir=bin_dir),
                               find_program("mariadb-admin", "mysqladmin", bin_dir=bin_dir),
                               str(datadir), owner)
        sandbox = MariaSandbox(datadir, port, _dsn(source, datadir, port), 0.0, server)
        try:
            server.start(private=False, timeout=max(1.0, deadline - time.monotonic()))
        except CommandFailed as exc:
            raise HealthCheckFailed(f"the sandbox copy of {source.safe()} did not start: "
                                    f"{exc}") from None
        _detach(connect(sandbox.dsn, password), source, port, deadline)
    except BaseException:
        with suppress(MedarkError, OSError):  # the first failure is the one to report
            if sandbox is not None:
                destroy(sandbox)
            else:
                _remove(base)
        raise
    return MariaSandbox(datadir, port, sandbox.dsn, time.monotonic() - started, server)


def _owner(datadir: str, source: Conn) -> str | None:
    """The OS user the copy runs as when we are root (mariadbd refuses root): the owner
    of the standby's data directory, on this host, where mariadb-backup reads it."""
    if os.geteuid() != 0:
        return None
    try:
        uid = os.stat(datadir).st_uid
    except OSError as exc:
        raise StandbyNotReady(f"the data directory of {source.safe()} ({datadir}) is not "
                              f"readable here: {exc.strerror or exc}; a MariaDB drill runs "
                              "on the standby's host") from None
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise UsageError(f"no OS user owns {datadir} (uid {uid}) to run the sandbox "
                         "as") from None
    if uid == 0:
        raise UsageError(f"{datadir} belongs to root: mariadbd cannot run the sandbox as "
                         "root")
    return name


def _copy(source: Conn, paths: dict[str, str], datadir: Path, deadline: float,
          bin_dir: str | None) -> None:
    """mariadb-backup --backup from the standby (hot: its replication keeps running) into
    `datadir`, then --prepare (the copy's InnoDB made consistent on its own)."""
    tool = find_program("mariadb-backup", "mariabackup", bin_dir=bin_dir)
    argv = [tool, *source.args(), "--backup", f"--target-dir={datadir}"]
    argv += [f"--{name.replace('_', '-')}={value}" for name, value in paths.items()
             if value.startswith("/")]
    try:
        run_tool(argv, "mariadb-backup --backup from the standby",
                 max(1.0, deadline - time.monotonic()), env=source.environment(),
                 cwd=str(datadir.parent))
    except CommandFailed as exc:
        raise StandbyNotReady(f"{source.safe()}: {exc}") from None
    run_tool([tool, "--no-defaults", "--prepare", f"--target-dir={datadir}"],
             "mariadb-backup --prepare of the sandbox copy",
             max(1.0, deadline - time.monotonic()), cwd=str(datadir.parent))


def _dsn(source: Conn, datadir: Path, port: int) -> str:
    """The standby's user at the copy: by its socket when the standby's DSN used one
    (unix_socket accounts), else by TCP on 127.0.0.1."""
    user = f"{quote(source.user, safe='')}@" if source.user else ""
    if source.socket:
        return f"mysql://{user}localhost:{port}/?socket={quote(str(datadir / SOCKET))}"
    return f"mysql://{user}127.0.0.1:{port}/"


def _detach(conn: Conn, source: Conn, port: int, deadline: float) -> None:
    """RESET SLAVE ALL for every replication connection the copy still knows, then the
    proof that it is writable and replicates from nobody."""
    seen = "no answer"
    while True:
        try:
            names = [line.split("\t")[0] for line in run(conn, "SHOW ALL SLAVES STATUS",
                                                        names=True)[1:]]
            if names:
                run(conn, "STOP ALL SLAVES; " + "".join(
                    f"RESET SLAVE '{n}' ALL; " for n in names))
            rows = run(conn, "SELECT @@read_only; SHOW ALL SLAVES STATUS")
            if rows == ["0"]:
                return
            seen = ("read_only" if rows[:1] != ["0"] else
                    f"{len(rows) - 1} replication connection(s) left")
        except MedarkError as exc:
            seen = str(exc)
        if time.monotonic() >= deadline:
            raise HealthCheckFailed(f"the sandbox copy of {source.safe()} on port {port} is "
                                    f"not writable in time ({seen})")
        time.sleep(0.1)


def destroy(sandbox: MariaSandbox) -> None:
    """Stop the copy (SIGKILL: its data is thrown away) and remove its directory.
    Harmless on a sandbox already destroyed."""
    server = sandbox.server
    proc = getattr(server, "_proc", None) if server is not None else None
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=60)
    pid = sandbox.pid
    if pid is not None:  # started by another process: ours only by its option file
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 60
        while sandbox.pid is not None and time.monotonic() < end:
            time.sleep(0.05)
        if sandbox.pid is not None:
            raise MedarkError(f"the sandbox in {sandbox.datadir} did not stop; it is left "
                              "in place")
    _remove(sandbox.base if sandbox.base.name.startswith(PREFIX) else sandbox.datadir)


def _remove(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
