#!/usr/bin/env python3
"""First backups of one tree, Medark and restic alternated, several runs each.

run_bench.py times a first backup once per invocation; on a shared machine one run is
noise. This runs `init` + `backup` of TREE with a fresh repository and cache per run,
the tools taking turns, and prints each run's wall time, CPU (user + system of the
command and its children) and peak RSS summed over its processes, then the medians and
their ratio. The page cache is warmed by reading the tree once first (the first tool
must not pay for the reads), or emptied before every run with --cold (root only).

    .venv/bin/python bench/first_backup_alternated.py /tmp/rb/data/manyfiles --runs 5
    .venv/bin/python bench/first_backup_alternated.py /tmp/rb/data/manyfiles --cold
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import TreeRss, drop_page_cache

PASSWORD = "bench"


def commands(tool: str, tree: str, work: Path, medark: str
             ) -> tuple[dict[str, str], list[list[str]]]:
    """The environment and the commands (init, then the timed backup) of one run."""
    repo, cache = work / f"{tool}-repo", work / f"{tool}-cache"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDARK_", "RESTIC_"))}
    env["HOME"] = str(work / "home")
    if tool == "medark":
        env.update(MEDARK_REPO=str(repo), MEDARK_PASSWORD=PASSWORD, MEDARK_CACHE_DIR=str(cache))
        return env, [[medark, "init"], [medark, "backup", "--json", tree]]
    env.update(RESTIC_REPOSITORY=str(repo), RESTIC_PASSWORD=PASSWORD,
               RESTIC_CACHE_DIR=str(cache))
    return env, [["restic", "init", "--repository-version", "2"],
                 ["restic", "backup", "--json", "--compression", "auto", tree]]


def one_run(tool: str, tree: str, work: Path, medark: str, cold: bool
            ) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak summed RSS) of one first backup."""
    env, (init, backup) = commands(tool, tree, work, medark)
    subprocess.run(init, env=env, check=True, capture_output=True)
    os.sync()
    if cold:
        drop_page_cache()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(backup, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    sampler = TreeRss(proc.pid)
    try:
        _, stderr = proc.communicate()
    finally:
        sampler.stop()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{tool} backup exited {proc.returncode}: {stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, sampler.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default="medark,restic")
    parser.add_argument("--cold", action="store_true", help="empty the page cache per run")
    parser.add_argument("--medark", default=str(Path(sys.executable).parent / "medark"))
    args = parser.parse_args()
    tools = args.tools.split(",")
    tree = str(Path(args.tree).resolve())
    if not args.cold:
        subprocess.run(f"find {tree!r} -type f -print0 | xargs -0 cat > /dev/null",
                       shell=True, check=True)
    walls: dict[str, list[float]] = {tool: [] for tool in tools}
    with tempfile.TemporaryDirectory(prefix="first-backup-") as tmp:
        work = Path(tmp)
        for run in range(args.runs):
            for tool in tools:
                wall, cpu, rss = one_run(tool, tree, work, args.medark, args.cold)
                walls[tool].append(wall)
                print(f"run {run + 1} {tool:7} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
                      f"all processes {rss / 1e6:6.1f} MB", flush=True)
    medians = {tool: statistics.median(values) for tool, values in walls.items()}
    for tool in tools:
        print(f"{tool:7} median {medians[tool]:.2f} s  "
              f"({', '.join(f'{v:.2f}' for v in walls[tool])})")
    if len(tools) == 2:
        first, second = tools
        print(f"{first} / {second}: {medians[first] / medians[second]:.2f}x")


if __name__ == "__main__":
    main()
