#!/usr/bin/env python3
"""The DICOM catalog's cost on a backup (issue 18: at most 10 % more time).

Backs up one tree of DICOM files into fresh repositories with the catalog on and off
(`--no-dicom-catalog`), alternately, several rounds, and then a second (no-change)
backup of each; prints the median wall and CPU time of each, the overhead, and the
catalog's size (plaintext, and stored: the extra bytes the repository received).

    .venv/bin/python bench/dicom_catalog_bench.py --files 5000 --rounds 3
    .venv/bin/python bench/dicom_catalog_bench.py --tree /data/bench/PACS

Without --tree it writes --files synthetic instances (tests/dicom_samples.py: small
files, the worst case for a per-file cost) under --workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
MEDARK = str(Path(sys.executable).parent / "medark")


def synthetic_tree(root: Path, files: int, pixel_bytes: int) -> None:
    from dicom_samples import Instance, uid, write_instance

    per_series, per_study = 50, 4
    for n in range(files):
        study, rest = divmod(n, per_series * per_study)
        series, index = divmod(rest, per_series)
        pixels = os.urandom(pixel_bytes)
        instance = Instance(
            f"{study % 7}/{uid(1000 + study)}/{uid(1000 + study, series + 1)}/"
            f"{uid(1000 + study, series + 1, index + 1)}.dcm",
            f"P{study:06d}", "张^三" if study % 2 else "Smith^John",
            uid(1000 + study), uid(1000 + study, series + 1),
            uid(1000 + study, series + 1, index + 1), "CT", "20261103", f"A{study}",
            "胸部CT平扫", pixels=pixels)
        write_instance(root, instance)


def run(env: dict[str, str], *args: str) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, CPU seconds of the child, the backup's JSON summary)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([MEDARK, *args], env=env, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()
             if '"summary"' in line]
    return wall, cpu, lines[-1] if lines else {}


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, help="back up this tree (default: synthetic)")
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--pixel-bytes", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dicom-bench-"))
    tree = args.tree
    if tree is None:
        tree = work / "pacs"
        if not tree.exists():
            synthetic_tree(tree, args.files, args.pixel_bytes)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(HOME=str(work / "home"), MEDARK_PASSWORD="bench",
               MEDARK_KDF_N="1024",
               MEDARK_INSECURE_TEST_KDF="i-understand-this-weakens-every-key")
    results: dict[str, dict[str, list[float]]] = {
        mode: {"first": [], "first_cpu": [], "again": [], "again_cpu": [], "stored": []}
        for mode in ("on", "off")}
    catalog = {}
    for r in range(args.rounds):
        for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
            repo = work / f"repo-{mode}"
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(work / "cache", ignore_errors=True)
            e = dict(env, MEDARK_REPO=str(repo), MEDARK_CACHE_DIR=str(work / "cache"))
            subprocess.run([MEDARK, "init"], env=e, capture_output=True, check=True)
            flag = [] if mode == "on" else ["--no-dicom-catalog"]
            wall, cpu, summary = run(e, "backup", str(tree), "--json", *flag)
            results[mode]["first"].append(wall)
            results[mode]["first_cpu"].append(cpu)
            results[mode]["stored"].append(float(_size(repo)))
            if mode == "on":
                catalog = dict(summary.get("dicom") or {})  # type: ignore[call-overload]
            wall, cpu, _s = run(e, "backup", str(tree), "--json", *flag)
            results[mode]["again"].append(wall)
            results[mode]["again_cpu"].append(cpu)
    med = {m: {k: statistics.median(v) for k, v in d.items()} for m, d in results.items()}
    on, off = med["on"], med["off"]
    print(f"tree: {tree} ({catalog.get('instances')} instances, "
          f"{catalog.get('malformed')} malformed); rounds: {args.rounds}; "
          f"load average {os.getloadavg()[0]:.1f}")
    for key, label in (("first", "first backup"), ("again", "no-change backup")):
        cpu_on, cpu_off = on[key + "_cpu"], off[key + "_cpu"]
        print(f"{label:18} wall: on {on[key]:.2f} s, off {off[key]:.2f} s "
              f"({(on[key] / off[key] - 1) * 100:+.1f} %); CPU: on {cpu_on:.2f} s, "
              f"off {cpu_off:.2f} s ({(cpu_on / cpu_off - 1) * 100:+.1f} %)")
    print(f"catalog: {catalog.get('catalog_bytes')} bytes plaintext, "
          f"{catalog.get('catalog_stored')} bytes stored (compressed and sealed); "
          f"repository after the first backup: on {on['stored'] / 2**20:.1f} MiB, "
          f"off {off['stored'] / 2**20:.1f} MiB")
    print("all runs:", json.dumps(results))


if __name__ == "__main__":
    main()
