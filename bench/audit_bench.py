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
Run: ``.venv/bin/python bench/audit_bench.py [--records 2000] [--writers 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.stdin.readline()

def work(n):
    for i in range(int(sys.argv[2]) // threads):
        append(catalog, AuditEntry("alice", "10.0.0.7", "browse", f"snapshot:{n}:{i}",
                                   institution="county-hospital", detail={"path": "/x"}),
               settings)

with ThreadPoolExecutor(threads) as pool:
    list(pool.map(work, range(threads)))
"""


def run(url: str, records: int, writers: int, alg: str, key: Path, threads: int) -> float:
    """Records per second over all writers (from the first start to the last end)."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(records), alg,
                               str(key), str(threads)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(writers)]
    time.sleep(1.5)  # every writer warmed up and waiting
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.close()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a writer failed on {url}")
    return records * writers / (time.perf_counter() - start)


def pg_settings() -> str:
    with psycopg.connect(PG_ADMIN) as c:
        fsync = c.execute("SHOW fsync").fetchone()
        sync = c.execute("SHOW synchronous_commit").fetchone()
    return f"fsync={fsync[0] if fsync else '?'}, synchronous_commit={sync[0] if sync else '?'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="per writer")
    parser.add_argument("--writers", type=int, default=4, help="processes")
    parser.add_argument("--threads", type=int, default=16,
                        help="threads per process in the concurrent rows (server requests)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="medark-audit-bench-") as tmp:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
        for kind in ("sqlite", "postgresql"):
            for alg in ("sha256", "sm3"):
                for writers, threads in ((1, 1), (args.writers, 1),
                                         (args.writers, args.threads)):
                    tag = f"{kind}-{alg}-{writers}-{threads}"
                    per = args.records // writers // threads * threads
                    key = Path(tmp) / f"{tag}.key"
                    if kind == "sqlite":
                        url = f"sqlite:///{tmp}/{tag}.sqlite"
                        rate = run(url, per, writers, alg, key, threads)
                    else:
                        name = f"medark_audit_bench_{uuid.uuid4().hex[:10]}"
                        admin.execute(f'CREATE DATABASE "{name}"')
                        try:
                            url = f"postgresql://postgres@127.0.0.1:5432/{name}"
                            rate = run(url, per, writers, alg, key, threads)
                        finally:
                            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                    results.append({"catalog": kind, "hash": alg, "writers": writers,
                                    "threads": threads, "records": per * writers,
                                    "records_per_s": round(rate)})
        admin.close()
    if args.json:
        print(json.dumps({"postgresql": pg_settings(), "results": results}, indent=2))
        return 0
    print(f"audit append, each committed before it returns (PostgreSQL: {pg_settings()}; "
          f"{os.cpu_count()} CPUs)")
    print(f"{'catalog':<11} {'hash':<7} {'processes':>9} {'threads':>7} {'records':>8} "
          f"{'records/s':>10}")
    for r in results:
        print(f"{r['catalog']:<11} {r['hash']:<7} {r['writers']:>9} {r['threads']:>7} "
              f"{r['records']:>8} {r['records_per_s']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
