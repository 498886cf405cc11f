#!/usr/bin/env python3
"""A PACS-shaped tree of up to 1,000,000 files (issue 18: "RSS flat in the file count"):
wall time, CPU time and peak RSS of a first backup and a no-change re-backup.

    .venv/bin/python bench/million_files.py --files 100000 1000000 --workdir /tmp/mf
    .venv/bin/python bench/million_files.py --files 1000000 --no-dicom-catalog --keep-tree

The tree is laid out like Orthanc's storage area: `<hh>/<hh>/<uuid>` (256 x 256 hex
directories, files named by a UUID, no extension), each file a real DICOM instance (the
tiny template of dicom_catalog_rss.py, its UIDs patched per instance) extended with
`truncate` to --size-kb (default 512): a sparse file, so 1,000,000 files of 0.5 MB take
about 4 KB of disk each. The zeros after the header make every file but its first chunk
a duplicate, so the repository stays small: this measures memory and per-file cost, not
throughput on real pixel data. The largest tree is generated once; each smaller size is
a prefix of it (the first N files in creation order, copied as hard links), and each
size gets a fresh repository, HOME and cache under --workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _proc import TreeRss  # noqa: E402
from dicom_catalog_rss import _SERIES, _SOP, _STUDY, PER_SERIES, PER_STUDY, _template  # noqa: E402


def _names(files: int) -> list[str]:
    """Deterministic UUIDs (seeded), Orthanc's `<hh>/<hh>/<uuid>` relative paths."""
    out = []
    for n in range(files):
        u = str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15_F39CC0605CEDC835) % (1 << 128),
                          version=4))
        out.append(f"{u[0:2]}/{u[2:4]}/{u}")
    return out


def write_tree(root: Path, files: int, size: int) -> float:
    """`files` sparse DICOM files of `size` bytes; returns the seconds it took."""
    t0 = time.perf_counter()
    template = _template()
    for a in range(256):
        for b in range(256):
            (root / f"{a:02x}" / f"{b:02x}").mkdir(parents=True, exist_ok=True)
    for n, rel in enumerate(_names(files)):
        study, rest = divmod(n, PER_SERIES * PER_STUDY)
        series, index = divmod(rest, PER_SERIES)
        data = (template.replace(_SOP.encode(), f"{index + 1:08d}".encode())
                .replace(_SERIES.encode(), f"{series + 1:08d}".encode())
                .replace(_STUDY.encode(), f"{study:08d}".encode()))
        fd = os.open(root / rel, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
    return time.perf_counter() - t0


def link_prefix(src: Path, dst: Path, files: int) -> None:
    """The first `files` files of `src` (creation order) hard-linked into `dst`."""
    for a in range(256):
        for b in range(256):
            (dst / f"{a:02x}" / f"{b:02x}").mkdir(parents=True, exist_ok=True)
    for rel in _names(files):
        os.link(src / rel, dst / rel)


def disk_use(path: Path) -> tuple[int, int]:
    """(bytes on disk, apparent bytes) as `du` counts them."""
    disk = int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0]) * 1024
    apparent = int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
    return disk, apparent


def timed(env: dict[str, str], *args: str) -> dict[str, float | str]:
    """One `medark` run under `/usr/bin/time -v`: wall, user+sys CPU, peak RSS."""
    command = [str(Path(sys.executable).parent / "medark"), *args]
    load = os.getloadavg()[0]
    child = subprocess.Popen(["/usr/bin/time", "-v", *command], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = TreeRss(child.pid)  # reader processes too: the sum, not only the largest
    try:
        stdout, stderr = child.communicate()
    finally:
        sampler.stop()
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if proc.returncode not in (0, 3):
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    report: dict[str, str] = {}
    for line in proc.stderr.splitlines():
        key, _, value = line.strip().rpartition(": ")
        report[key] = value
    wall = report["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall)))
    return {"wall_s": round(seconds, 1),
            "cpu_s": round(float(report["User time (seconds)"])
                           + float(report["System time (seconds)"]), 1),
            "rss_mb": round(int(report["Maximum resident set size (kbytes)"]) / 1024, 1),
            "tree_rss_mb": round(sampler.peak / 2**20, 1),
            "load": round((load + os.getloadavg()[0]) / 2, 1), "stdout": proc.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[100000, 1000000])
    parser.add_argument("--size-kb", type=int, default=512)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--no-dicom-catalog", action="store_true")
    parser.add_argument("--keep-tree", action="store_true",
                        help="keep the generated tree (reused when it is there)")
    parser.add_argument("--keep", action="store_true", help="keep the repositories too")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="million-files-"))
    work.mkdir(parents=True, exist_ok=True)
    largest = max(args.files)
    full = work / f"tree-{largest}-{args.size_kb}k"
    done_mark = full / ".complete"
    if not done_mark.exists():
        shutil.rmtree(full, ignore_errors=True)
        seconds = write_tree(full, largest, args.size_kb * 1024)
        done_mark.write_text("")
        print(json.dumps({"generated": largest, "seconds": round(seconds, 1)}), flush=True)
    flag = ["--no-dicom-catalog"] if args.no_dicom_catalog else []
    rows = []
    try:
        for files in sorted(args.files):
            case = work / f"n{files}{'-nocat' if flag else ''}"
            shutil.rmtree(case, ignore_errors=True)
            case.mkdir()
            if files == largest:
                tree = full
            else:
                tree = case / "pacs"
                link_prefix(full, tree, files)
            env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
            env.update(HOME=str(case), MEDARK_REPO=str(case / "repo"),
                       MEDARK_CACHE_DIR=str(case / "cache"), MEDARK_PASSWORD="bench",
                       MEDARK_KDF_N="1024",
                       MEDARK_INSECURE_TEST_KDF="i-understand-this-weakens-every-key")
            timed(env, "init")
            first = timed(env, "backup", str(tree), "--json", *flag)
            summary = [json.loads(line) for line in str(first.pop("stdout")).splitlines()
                       if '"summary"' in line][-1]
            again = timed(env, "backup", str(tree), "--json", *flag)
            again.pop("stdout")
            repo_disk, _ = disk_use(case / "repo")
            tree_disk, tree_apparent = disk_use(tree)
            row = {"files": files, "catalog": not flag,
                   "instances": summary.get("dicom", {}).get("instances"),
                   "tree_apparent_gb": round(tree_apparent / 1e9, 1),
                   "tree_disk_mb": round(tree_disk / 1e6, 1),
                   "repo_disk_mb": round(repo_disk / 1e6, 1),
                   "first": first, "again": again}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not args.keep:
                shutil.rmtree(case, ignore_errors=True)
    finally:
        if not args.keep_tree:
            shutil.rmtree(full, ignore_errors=True)
        if not args.workdir and not args.keep_tree and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
