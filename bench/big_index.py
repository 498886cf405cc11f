#!/usr/bin/env python3
"""Memory stays flat as the repository grows: a backup into a 10-million-chunk index.

1. `medark init` a repository in the work directory.
2. Fill its index with N synthetic chunk entries (random ids in fake packs) through the
   repository API: index files only, no chunk data.
3. Run a real `medark backup` of a small dataset into it twice (cold cache: the local
   SQLite index is built from the N entries; warm cache: only new index files are read)
   and into an empty repository, measuring each child's peak RSS with wait4.
4. Print the figures, write bench/out/big_index-<date>.json, exit 1 when a peak RSS
   reaches --limit-mb (default 300).

Usage: bench/big_index.py [--chunks 10000000] [--studies 40] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

from _proc import run_measured

from medark.repo import index_file
from medark.repo.pack import BlobType, PackedBlob
from medark.repo.repository import Repository
from medark.service.sample_data import generate
from medark.storage.local import LocalBackend

BENCH = Path(__file__).resolve().parent
PASSWORD = "big-index-benchmark"
BLOBS_PER_PACK = 16
BLOBS_PER_FILE = 100_000


def synthesize(repo_dir: Path, chunks: int) -> float:
    """Write index files naming `chunks` blobs in fake packs; returns seconds taken."""
    t0 = time.perf_counter()
    repo = Repository.open(LocalBackend(repo_dir), PASSWORD.encode(), None)
    try:
        written = 0
        while written < chunks:
            count = min(BLOBS_PER_FILE, chunks - written)
            ids = os.urandom(32 * count)
            packs = []
            for start in range(0, count, BLOBS_PER_PACK):
                blobs = []
                offset = 0
                for i in range(start, min(start + BLOBS_PER_PACK, count)):
                    length = 700_000 + (i % 1000) * 300
                    blobs.append(PackedBlob(BlobType.DATA, ids[32 * i : 32 * i + 32], offset,
                                            length, length + 300_000))
                    offset += length
                packs.append((os.urandom(32), blobs))
            repo.save_unpacked(index_file.INDEX_PREFIX, index_file.encode(packs, []))
            written += count
    finally:
        repo.close()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--chunks", type=int, default=10_000_000)
    ap.add_argument("--studies", type=int, default=40, help="size of the sample dataset")
    ap.add_argument("--workdir", type=Path, default=BENCH / "out" / "big_index")
    ap.add_argument("--medark", default=str(BENCH.parent / ".venv" / "bin" / "medark"))
    ap.add_argument("--limit-mb", type=float, default=300)
    args = ap.parse_args()

    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dataset = work / "dataset"
    sample = generate(dataset, studies=args.studies)
    env = dict(os.environ, MEDARK_PASSWORD=PASSWORD, MEDARK_CACHE_DIR=str(work / "cache"))
    results: dict[str, object] = {"chunks": args.chunks, "dataset_files": sample.files,
                                  "dataset_mb": round(sample.nbytes / 2**20, 1)}
    for label, chunks in (("empty", 0), ("big", args.chunks)):
        repo = work / f"repo-{label}"
        env["MEDARK_REPO"] = str(repo)
        init = run_measured([args.medark, "init"], env=env, log_dir=work, name=f"init-{label}")
        if init.rc != 0:
            print(f"init failed: see {work}/init-{label}.err", file=sys.stderr)
            return 1
        if chunks:
            results["synthesize_seconds"] = round(synthesize(repo, chunks), 1)
        runs = ("cold", "warm") if chunks else ("cold",)
        for run in runs:
            if run == "warm":
                (dataset / "touch.txt").write_text("one more file\n")
            res = run_measured([args.medark, "backup", str(dataset), "--json"], env=env,
                               log_dir=work, name=f"backup-{label}-{run}")
            if res.rc != 0:
                print(f"backup failed: see {work}/backup-{label}-{run}.err", file=sys.stderr)
                return 1
            key = f"{label}_{run}"
            results[f"{key}_seconds"] = round(res.seconds, 2)
            results[f"{key}_peak_rss_mb"] = round(res.maxrss_bytes / 2**20, 1)
            print(f"{key:12s} {res.seconds:8.1f} s  peak RSS {res.maxrss_bytes / 2**20:7.1f} MB")
    cache_db = sorted((work / "cache").rglob("index.sqlite"))
    results["cache_db_mb"] = [round(p.stat().st_size / 2**20, 1) for p in cache_db]
    results["date"] = dt.date.today().isoformat()
    out = BENCH / "out" / f"big_index-{results['date']}.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    worst = max(float(str(v)) for k, v in results.items() if k.endswith("peak_rss_mb"))
    return 0 if worst < args.limit_mb else 1


if __name__ == "__main__":
    sys.exit(main())
