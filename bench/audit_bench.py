#!/usr/bin/env python3
"""Audit trail append throughput (issue 16: "audit append never the bottleneck: more than
1,000 records/s"), on a SQLite catalog and a throwaway database on the PostgreSQL at
127.0.0.1:5432.

Each append is its own transaction (head row locked, record inserted, committed), as
the server does per request. Measured: one process appending `--records` records one
after the other; `--writers` processes appending concurrently to one catalog (the
regional center's several server processes); and the same with `--threads` threads
each (concurrent requests, which group commit puts into shared transactions); with
SHA-256 and SM3. Printed as a table and with --json.
Run: ``.venv/bin/python bench/audit_bench.py [--records 2000] [--runs 3]
[--catalogs postgresql] [--hashes sha256] [--shapes 1x1,1x16,4x1,4x16]``; with --runs
above 1 each row gives the median and the min–max of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

WRITER = """\
import sys, time
from concurrent.futures import ThreadPoolExecutor
from medark.catalog.audit_trail import AuditEntry, AuditSettings, append
from medark.catalog.store import Catalog
from pathlib import Path
catalog = Catalog(sys.argv[1])
settings = AuditSettings(sys.argv[3], Path(sys.argv[4]))
threads = int(sys.argv[5])
append(catalog, AuditEntry("warm", "cli", "warm"), settings)  # key, connection, imports
print("ready", flush=True)
sys.stdin.readline()

def work(n):
    for i in range(int(sys.argv[2]) // threads):
        append(catalog, AuditEntry("alice", "10.0.0.7", "browse", f"snapshot:{n}:{i}",
                                   institution="county-hospital", detail={"path": "/x"}),
               settings)

with ThreadPoolExecutor(threads) as pool:
    list(pool.map(work, range(threads)))
print("done", flush=True)
"""


def run(url: str, records: int, writers: int, alg: str, key: Path, threads: int) -> float:
    """Records per second over all writers: from the go (every writer warmed up, which
    on a loaded host takes a while) to the last writer's "done" (its exit not counted)."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(records), alg,
                               str(key), str(threads)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(writers)]
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"a writer failed to start on {url}")
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.close()
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "done":
            raise SystemExit(f"a writer failed on {url}")
    elapsed = time.perf_counter() - start
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a writer failed on {url}")
    return records * writers / elapsed


def _one(admin: psycopg.Connection, tmp: str, kind: str, alg: str, writers: int,
         threads: int, per: int) -> float:
    """One run on a new catalog (a new PostgreSQL database, dropped after)."""
    tag = f"{kind}-{alg}-{writers}-{threads}-{uuid.uuid4().hex[:6]}"
    key = Path(tmp) / f"{tag}.key"
    if kind == "sqlite":
        return run(f"sqlite:///{tmp}/{tag}.sqlite", per, writers, alg, key, threads)
    name = f"medark_audit_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return run(f"postgresql://postgres@127.0.0.1:5432/{name}", per, writers, alg, key,
                   threads)
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def pg_settings() -> str:
    with psycopg.connect(PG_ADMIN) as c:
        fsync = c.execute("SHOW fsync").fetchone()
        sync = c.execute("SHOW synchronous_commit").fetchone()
    return f"fsync={fsync[0] if fsync else '?'}, synchronous_commit={sync[0] if sync else '?'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="in all, per row")
    parser.add_argument("--runs", type=int, default=1, help="runs of each row")
    parser.add_argument("--catalogs", default="sqlite,postgresql")
    parser.add_argument("--hashes", default="sha256,sm3")
    parser.add_argument("--shapes", default="1x1,1x16,4x1,4x16",
                        help="processes x threads per process (threads: server requests)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        shapes = [tuple(int(n) for n in s.split("x", 1)) for s in args.shapes.split(",")]
    except ValueError:
        parser.error("--shapes: give PROCESSESxTHREADS,… e.g. 1x1,4x16")
    results = []
    with tempfile.TemporaryDirectory(prefix="medark-audit-bench-") as tmp:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
        for kind in args.catalogs.split(","):
            for alg in args.hashes.split(","):
                for writers, threads in shapes:
                    per = args.records // writers // threads * threads
                    rates = [_one(admin, tmp, kind, alg, writers, threads, per)
                             for _ in range(args.runs)]
                    results.append({"catalog": kind, "hash": alg, "writers": writers,
                                    "threads": threads, "records": per * writers,
                                    "records_per_s": round(statistics.median(rates)),
                                    "min": round(min(rates)), "max": round(max(rates))})
        admin.close()
    if args.json:
        print(json.dumps({"postgresql": pg_settings(), "results": results}, indent=2))
        return 0
    print(f"audit append, each committed before it returns (PostgreSQL: {pg_settings()}; "
          f"{os.cpu_count()} CPUs)")
    print(f"{'catalog':<11} {'hash':<7} {'processes':>9} {'threads':>7} {'records':>8} "
          f"{'records/s':>10} {'min-max':>12}  (median of {args.runs})")
    for r in results:
        print(f"{r['catalog']:<11} {r['hash']:<7} {r['writers']:>9} {r['threads']:>7} "
              f"{r['records']:>8} {r['records_per_s']:>10} {r['min']:>6}-{r['max']:<6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
