"""Throwaway PostgreSQL servers for tests: initdb in a temporary directory, a free port,
run as the `postgres` OS user (the server refuses root), always stopped afterwards.

archive_command runs as that user too, so it needs a `medark` it can execute: the
installed one if that user can run it, else a small launcher that runs the system Python
on this checkout's site-packages (a venv built on a Python under /root is unreachable).
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PG_USER = "postgres"


def pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def can_run_servers() -> str | None:
    """None when throwaway servers can run here, else the reason."""
    if pg_bin() is None:
        return "PostgreSQL server programs are not installed"
    if os.geteuid() != 0:
        return "tests start servers as the postgres user, which needs root"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return "no postgres OS user"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_pg(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", PG_USER, "--", *argv], capture_output=True,
                          text=True, check=False, **kwargs)  # type: ignore[call-overload]


def chown_pg(path: Path) -> None:
    entry = pwd.getpwnam(PG_USER)
    for p in [path, *path.rglob("*")]:
        os.lchown(p, entry.pw_uid, entry.pw_gid)


def medark_for_postgres(workdir: Path) -> str:
    """A command line the postgres user can run to get `medark`."""
    installed = shutil.which("medark", path=str(Path(sys.executable).parent)) or "medark"
    if as_pg([installed, "--version"]).returncode == 0:
        return installed
    launcher = workdir / "medark-launcher"
    site = sysconfig.get_paths()["purelib"]
    system_python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    launcher.write_text(
        f"#!{system_python}\n"
        "import site, sys\n"
        f"d = {site!r}\n"
        "site.addsitedir(d); sys.path.remove(d); sys.path.insert(0, d)\n"
        "from medark.cli.main import entry\n"
        "entry()\n")
    launcher.chmod(0o755)
    done = as_pg([str(launcher), "--version"])
    if done.returncode != 0:
        raise RuntimeError(f"the postgres user cannot run medark: {done.stderr[-300:]}")
    return str(launcher)


@dataclass
class PgServer:
    base: Path
    port: int
    bin_dir: str
    data: Path = field(init=False)
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = self.base / "data"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def tool(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def init(self) -> None:
        self.data.mkdir(mode=0o700)
        chown_pg(self.data)
        done = as_pg([self.tool("initdb"), "-D", str(self.data), "-A", "trust", "-U",
                      "postgres", "--no-sync", "-E", "UTF8", "--locale", "C"])
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-500:]}")
        conf = {
            "port": str(self.port), "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'", "wal_level": "replica",
            "max_wal_senders": "10", "max_replication_slots": "10", "fsync": "off",
            "synchronous_commit": "on", "full_page_writes": "on", "shared_buffers": "64MB",
            "log_min_messages": "warning", "logging_collector": "off",
            **self.settings,
        }
        with open(self.data / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")

    def start(self) -> None:
        done = as_pg([self.tool("pg_ctl"), "-D", str(self.data), "-l",
                      str(self.base / "server.log"), "-w", "-t", "60", "start"])
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-300:]}\n{self.log()}")

    def stop(self, data: Path | None = None) -> None:
        as_pg([self.tool("pg_ctl"), "-D", str(data or self.data), "-m", "immediate", "-w",
               "stop"])

    def log(self) -> str:
        try:
            return (self.base / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def sql(self, query: str, port: int | None = None, db: str = "postgres") -> str:
        done = subprocess.run(
            [self.tool("psql"), "-h", "127.0.0.1", "-p", str(port or self.port), "-U",
             "postgres", "-d", db, "-At", "-X", "-v", "ON_ERROR_STOP=1", "-c", query],
            capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()


def make_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="medark-pg-", dir="/tmp"))
    base.chmod(0o755)
    chown_pg(base)  # the server writes its log and socket here
    return base


@contextmanager
def running_server() -> Iterator[PgServer]:
    """A throwaway cluster on a free port (no archiving), removed when the block ends."""
    base = make_base()
    bin_dir = pg_bin()
    assert bin_dir is not None
    server = PgServer(base, free_port(), bin_dir, settings={"archive_mode": "off"})
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def archive_command(medark: str, repo: Path, password_file: Path, cache: Path) -> str:
    argv = [*shlex.split(medark), "--repo", str(repo), "--password-file", str(password_file),
            "--cache-dir", str(cache), "pg", "wal-push"]
    return shlex.join(argv) + " %p"


def wait_for(predicate: object, timeout: float = 60.0, what: str = "condition",
             detail: object = None) -> None:
    """`detail()`, when given, is added to the message of a timeout (what was last seen).
    A predicate that runs `medark` (half a CPU second for a catalog command) is asked at
    most half the time, so that polling leaves the machine to what the test waits for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asked = time.monotonic()
        if predicate():  # type: ignore[operator]
            return
        time.sleep(min(max(0.2, time.monotonic() - asked), 1.0))
    seen = f": {detail()}" if detail is not None else ""  # type: ignore[operator]
    raise AssertionError(f"timed out waiting for {what}{seen}")


@dataclass
class RepoSite:
    """A throwaway cluster and a repository its postgres OS user owns, as in production
    (archive_command writes to it): the set-up the PostgreSQL end-to-end modules share."""

    server: PgServer
    base: Path
    repo: Path
    cache: Path
    medark: str
    """A `medark` command line the postgres user can run (medark_for_postgres)."""
    password_file: Path
    env: dict[str, str]
    """The environment without the caller's MEDARK_* variables, plus the given extras."""

    def parts(self) -> dict[str, Any]:
        """The fields, to build a module's own subclass: `World(**site.parts(), ...)`."""
        return {f.name: getattr(self, f.name) for f in fields(RepoSite)}

    def as_postgres_argv(self, *args: str) -> list[str]:
        """`medark` on the repository as its owner, with the archive's cache."""
        return [*self.medark.split(), "--repo", str(self.repo), "--password-file",
                str(self.password_file), "--cache-dir", str(self.cache), *args]


@contextmanager
def repo_site(password: str, env: dict[str, str], archive: bool = True,
              settings: dict[str, str] | None = None) -> Iterator[RepoSite]:
    """A repository initialised with `password` and a started cluster that archives into
    it through `medark pg wal-push` (archive=False: archive_mode off), `settings` added;
    the server, its restored siblings (BASE-*) and every file removed afterwards
    (KEEP_PG=1 keeps the files)."""
    base = make_base()
    server: PgServer | None = None
    try:
        medark = medark_for_postgres(base)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
        clean.update(env)
        password_file = base / "repo-password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        repo, cache = base / "repo", base / "pgcache"
        for owned in (repo, cache):
            owned.mkdir()
            chown_pg(owned)
        chown_pg(password_file)
        archiving = {"archive_mode": "off"}
        if archive:
            archiving = {"archive_mode": "on", "archive_timeout": "0",
                         "archive_command": "'" + archive_command(
                             medark, repo, password_file, cache).replace("'", "''") + "'"}
        bin_dir = pg_bin()
        assert bin_dir is not None
        server = PgServer(base, free_port(), bin_dir,
                          settings={**archiving, **(settings or {})})
        done = as_pg([*medark.split(), "--repo", str(repo), "--password-file",
                      str(password_file), "init"], env=clean, cwd=str(base))
        assert done.returncode == 0, done.stderr
        server.init()
        server.start()
        yield RepoSite(server, base, repo, cache, medark, password_file, clean)
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["pkill", "-f", "--", f"-D {base}"], check=False)
        if not os.environ.get("KEEP_PG"):
            for path in [base, *base.parent.glob(base.name + "*")]:
                shutil.rmtree(path, ignore_errors=True)
