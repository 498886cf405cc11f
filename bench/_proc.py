"""Run a child process and measure its wall time and peak resident set size.

Peak RSS comes from ``os.wait4``: the kernel's ``ru_maxrss`` of the child (in KiB on
Linux), which covers the child and any descendants it waited for.  No extra package or
``/usr/bin/time`` is needed.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProcResult:
    """Outcome of one measured child process."""

    cmd: list[str]
    rc: int
    seconds: float
    maxrss_bytes: int
    stdout: str
    stderr: str
    log_prefix: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 8) -> str:
        """Last lines of stderr (or stdout when stderr is empty), for error messages."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str],
    log_dir: Path,
    name: str,
    cwd: Path | None = None,
) -> ProcResult:
    """Run ``cmd`` to completion; stdout/stderr go to ``log_dir/name.{out,err}``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path = log_dir / f"{name}.out"
    err_path = log_dir / f"{name}.err"
    # Write back what earlier steps left dirty, so no tool pays for another's writes.
    os.sync()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
    # wait4 reaped the child: tell Popen so that it does not try again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ProcResult(
        cmd=cmd,
        rc=proc.returncode,
        seconds=seconds,
        maxrss_bytes=usage.ru_maxrss * 1024,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        log_prefix=str(log_dir / name),
    )
