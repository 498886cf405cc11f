"""Driving a local PostgreSQL data directory with the server's own programs: pg_ctl,
pg_controldata, pg_rewind, always as the directory's owner (the server refuses root, and a
file root leaves behind in a data directory breaks the next start)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from medark.errors import DatabasePermission, UsageError
from medark.sources.postgres.tools import find_program

PG_CTL_NOT_RUNNING = 3
"""`pg_ctl status` exit code: no server is running in the directory."""


def check_datadir(datadir: Path) -> None:
    if not (datadir / "PG_VERSION").is_file():
        raise UsageError(f"{datadir} is not a PostgreSQL data directory (no PG_VERSION)")


def major_version(datadir: Path) -> int:
    check_datadir(datadir)
    text = (datadir / "PG_VERSION").read_text().strip()
    try:
        return int(text.split(".")[0])
    except ValueError:
        raise UsageError(f"{datadir}/PG_VERSION holds {text!r}, not a version") from None


def program(datadir: Path, name: str, bin_dir: str | None = None) -> str:
    """The program of the data directory's own major version (pg_rewind and pg_ctl must
    match the cluster)."""
    return find_program(name, major_version(datadir), bin_dir)


def owner(datadir: Path) -> tuple[int, int]:
    st = os.stat(datadir)
    return st.st_uid, st.st_gid


def as_owner(datadir: Path, argv: list[str]) -> list[str]:
    """`argv` run as the owner of `datadir`: directly when we are that user, through
    runuser when we are root, else a clear refusal."""
    uid, _ = owner(datadir)
    if os.geteuid() == uid:
        return argv
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    if os.geteuid() != 0:
        raise DatabasePermission(
            f"{datadir} belongs to {name}: run medark as {name} or as root")
    return ["runuser", "-u", name, "--", *argv]


def run_as_owner(datadir: Path, argv: list[str], timeout: float,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(as_owner(datadir, argv), capture_output=True, text=True,
                          check=False, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def is_running(datadir: Path, bin_dir: str | None = None) -> bool:
    done = run_as_owner(datadir, [program(datadir, "pg_ctl", bin_dir), "-D", str(datadir),
                                  "status"], timeout=30)
    if done.returncode == 0:
        return not _postmaster_dead(datadir)
    if done.returncode == PG_CTL_NOT_RUNNING:
        return False
    raise UsageError(f"pg_ctl status on {datadir} failed: {last_line(done)}")


def _postmaster_dead(datadir: Path) -> bool:
    """pg_ctl status trusts kill(pid, 0), which a killed postmaster not yet reaped (a
    zombie: containers whose init reaps late) still passes; it can serve nothing."""
    try:
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, ValueError, IndexError):
        return False


def stop(datadir: Path, mode: str, timeout: float,
         bin_dir: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_as_owner(datadir, [program(datadir, "pg_ctl", bin_dir), "-D", str(datadir),
                                  "-m", mode, "-w", "-t", str(int(timeout)), "stop"],
                        timeout=timeout + 15)


def start(datadir: Path, log_file: Path, timeout: float,
          bin_dir: str | None = None) -> subprocess.CompletedProcess[str]:
    """pg_ctl start -w; the server's output goes to `log_file` (a pipe would be held open
    by the server and hang us)."""
    return run_as_owner(datadir, [program(datadir, "pg_ctl", bin_dir), "-D", str(datadir),
                                  "-l", str(log_file), "-w", "-t", str(int(timeout)),
                                  "start"], timeout=timeout + 15)


def controldata(datadir: Path, bin_dir: str | None = None) -> dict[str, str]:
    """pg_controldata as a dict ("Database cluster state", "Latest checkpoint's
    TimeLineID", ...): what the directory says about itself while the server is down."""
    done = run_as_owner(datadir, [program(datadir, "pg_controldata", bin_dir), "-D",
                                  str(datadir)], timeout=30, env={**os.environ, "LC_ALL": "C"})
    if done.returncode != 0:
        raise UsageError(f"pg_controldata {datadir} failed: {last_line(done)}")
    fields: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit {done.returncode}"
