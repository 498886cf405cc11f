#!/usr/bin/env python3
"""How far a many-small-files restore is from what the file system itself costs (issue 18:
"restore >= 2x restic's throughput").

    .venv/bin/python bench/restore_floor.py TREE --rounds 3 --workdir /tmp/rfloor

TREE is backed up once by Medark and by restic (fresh repositories under --workdir); then,
in each round and in alternating order, three restores of it into a fresh directory are
timed:

- `medark restore latest --target DIR` (restore processes by default, restore_shares.py);
- `medark restore latest --target DIR --processes 1` (all in one process's threads);
- `restic restore latest --target DIR`;
- the floor: this script recreating the same directories and files (each file's size in
  zero bytes already in memory, its mode and mtime set) with 8 threads: no repository, no
  reading, no decryption, only the kernel's work of creating, writing and closing the
  files, which every restore pays.

A tool's time over the floor's is the share of its restore that is its own work; a
throughput of twice restic's needs a restore at half restic's time, which no tool can
reach when restic's time is already close to the floor. Every restore gets a target of
its own, all removed at the end (a restore right after a large removal measures the file
system's recently-deleted scan, bench/_trees.py). Before each step the earlier steps'
writes are flushed (sync) and, with --cold, the page cache is emptied, so both tools read
their packs from disk. Medians per step, with CPU seconds and the peak RSS summed over a
tool's processes; the raw figures go to stdout as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _proc

ZEROS = b"\0" * (1 << 22)


def tree_files(tree: Path) -> list[tuple[str, int, int, int]]:
    """(relative path, size, mode, mtime_ns) of every regular file."""
    found = []
    for root, _dirs, files in os.walk(tree):
        rel = os.path.relpath(root, tree)
        for name in files:
            st = os.lstat(os.path.join(root, name))
            found.append((os.path.normpath(os.path.join(rel, name)), st.st_size,
                          st.st_mode & 0o7777, st.st_mtime_ns))
    return found


def floor(files: list[tuple[str, int, int, int]], target: Path, threads: int = 8) -> None:
    for directory in sorted({os.path.dirname(f[0]) for f in files}):
        os.makedirs(target / directory, exist_ok=True)

    def one(item: tuple[str, int, int, int]) -> None:
        rel, size, mode, mtime = item
        fd = os.open(target / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            written = 0
            while written < size:
                written += os.write(fd, ZEROS[:min(len(ZEROS), size - written)])
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, files, chunksize=256))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/restore-floor"))
    parser.add_argument("--medark", default=str(Path(sys.executable).with_name("medark")))
    parser.add_argument("--cold", action="store_true",
                        help="empty the page cache before each step (root)")
    args = parser.parse_args()
    _proc.COLD_CACHE = args.cold
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "HOME": str(work / "home"), "MEDARK_REPO": str(work / "medark-repo"),
           "MEDARK_CACHE_DIR": str(work / "medark-cache"), "MEDARK_PASSWORD": "bench",
           "RESTIC_REPOSITORY": str(work / "restic-repo"), "RESTIC_PASSWORD": "bench",
           "RESTIC_CACHE_DIR": str(work / "restic-cache")}
    tree = str(args.tree.resolve())
    for argv in ([args.medark, "init", "-q"], [args.medark, "backup", "-q", tree],
                 ["restic", "init", "-q"], ["restic", "backup", "-q", tree]):
        subprocess.run(argv, env=env, check=True)
    files = tree_files(args.tree)
    tools: dict[str, Callable[[Path], list[str]]] = {
        "medark": lambda t: [args.medark, "restore", "latest", "--target", str(t), "-q"],
        "medark-threads": lambda t: [args.medark, "restore", "latest", "--target", str(t),
                                     "-q", "--processes", "1"],
        "restic": lambda t: ["restic", "restore", "latest", "--target", str(t), "-q"],
    }
    times: dict[str, list[float]] = {name: [] for name in [*tools, "floor"]}
    order = list(times)
    for round_no in range(args.rounds):
        for name in order if round_no % 2 == 0 else reversed(order):
            # its own target, kept to the end: see _trees.RECENTLY_DELETED
            target = work / "targets" / f"{name}-{round_no + 1}"
            target.mkdir(parents=True)
            figures: dict[str, object] = {}
            if name == "floor":
                os.sync()
                if args.cold:
                    _proc.drop_page_cache()
                t0 = time.perf_counter()
                floor(files, target)
                seconds = time.perf_counter() - t0
            else:
                res = _proc.run_measured(tools[name](target), env=env, log_dir=work / "logs",
                                         name=f"{name}-{round_no + 1}")
                if not res.ok:
                    raise SystemExit(f"{name} failed: {res.tail()}")
                seconds = res.seconds
                figures = {"cpu_seconds": round(res.cpu_seconds, 2),
                           "rss_mb": round(res.tree_rss_bytes / 1e6, 1)}
            times[name].append(seconds)
            print(json.dumps({"round": round_no + 1, "step": name, "files": len(files),
                              "seconds": round(seconds, 3), **figures,
                              "load": os.getloadavg()[0]}), flush=True)
    shutil.rmtree(work / "targets", ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:7s} median {value:7.2f} s  {len(files) / value:8.0f} files/s  "
              f"{value / medians['floor']:.2f}x the floor")
    for name in ("medark", "medark-threads"):
        print(f"{name} / restic time: {medians[name] / medians['restic']:.2f} "
              f"(throughput {medians['restic'] / medians[name]:.2f}x restic's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
