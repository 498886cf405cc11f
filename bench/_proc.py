"""Run a child process and measure its wall time and peak resident set size.

Peak RSS is GNU time's ``%M`` of the command (``/usr/bin/time``, Debian package
``time``): the kernel's ``ru_maxrss`` of a process that time forked. Not ``os.wait4`` on a
child of this process: Linux carries the parent's memory high-water mark into a forked
child and keeps it across ``exec``, so once this bench process had grown (to 141.7 MB
after verifying a restore), every later child reported at least that much. Without
``/usr/bin/time``, ``wait4``'s figure is used (correct while this process is small).

That figure is the largest single process. A command that starts helper processes
(Medark's reader processes for many small files) also gets ``tree_rss_bytes``: the sum of
VmRSS over the command and its descendants, sampled every 0.1 s, the peak of the sums.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
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
    tree_rss_bytes: int = 0
    """Peak of the summed RSS of the command and its descendants (sampled)."""
    cpu_seconds: float = 0.0
    """User and system time of the command and every descendant it waited for."""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 8) -> str:
        """Last lines of stderr (or stdout when stderr is empty), for error messages."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


COLD_CACHE = False
"""Set by run_bench.py --cold: every timed step starts with an empty page cache."""
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def drop_page_cache() -> None:
    """Empty the page cache, dentries and inodes (root only), as a first backup of a
    store nobody has read since boot finds it."""
    DROP_CACHES.write_text("3\n")


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
    if COLD_CACHE:
        drop_page_cache()
    gnu_time = shutil.which("time", path="/usr/bin")
    rss_path = log_dir / f"{name}.rss"
    rss_path.unlink(missing_ok=True)
    argv = [gnu_time, "-q", "-f", "%M", "-o", str(rss_path), *cmd] if gnu_time else cmd
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        sampler = TreeRss(proc.pid)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            sampler.stop()
        seconds = time.perf_counter() - t0
    # wait4 reaped the child: tell Popen so that it does not try again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ProcResult(
        cmd=cmd,
        rc=proc.returncode,
        seconds=seconds,
        maxrss_bytes=_time_rss(rss_path) or usage.ru_maxrss * 1024,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        log_prefix=str(log_dir / name),
        tree_rss_bytes=sampler.peak,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


class TreeRss:
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.1):
            self.peak = max(self.peak, _tree_rss(self.pid))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _tree_rss(pid: int) -> int:
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def _time_rss(path: Path) -> int | None:
    """GNU time's %M (KiB) as bytes; None when it wrote none (no /usr/bin/time)."""
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return None
    return int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else None
