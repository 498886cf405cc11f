#!/usr/bin/env python3
"""The commit-latency cost of `synchronous = true` (issue 15), measured with pgbench.

One primary + streaming standby pair on loopback (tests/pg_pair.py). pgbench runs the
same single-client write workload (`-N`, simple-update without branch updates: three
writes and a commit per transaction) against the primary, both servers with fsync on
(as in production; the test servers' default is off), twice per round, once
asynchronous and once with the standby named by `medark dr supervise` (the exact
setting Medark applies: ``synchronous_standby_names = 'FIRST 1 ("walreceiver")'``),
the order alternating between rounds. Every transaction's latency is logged (`-l`);
reported: p50, p90 and p99 of each mode and the synchronous overhead (p50 sync minus
p50 async). Target: overhead p50 ≤ 2 ms. Run as root (the servers run as the postgres
OS user): ``sudo .venv/bin/python bench/dr_sync_bench.py [--rounds 3] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from dr_site import pg_nodes, preamble  # noqa: E402
from pg_pair import PgPair, build_pair  # noqa: E402
from pg_server import as_pg, chown_pg, wait_for  # noqa: E402
from run_bench import ensure_bytecode, log  # noqa: E402

MEDARK = str(Path(sys.executable).with_name("medark"))


def config(pair: PgPair) -> str:
    """The pair as a synchronous [dr.his] system (tests/dr_site.py's plan text)."""
    return preamble(pair.primary.dsn) + f"""
[dr.his]
slot = "{pair.slot}"
synchronous = true
""" + pg_nodes(pair.primary, pair.standby)


def pgbench(tool: str, port: int, seconds: int, work: Path, tag: str) -> list[float]:
    """Latencies in ms of every transaction of one run."""
    prefix = work / tag
    done = as_pg([tool, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-N", "-c",
                  "1", "-T", str(seconds), "-l", "--log-prefix", str(prefix), "postgres"],
                 cwd=str(work))
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr[-400:]}")
    latencies: list[float] = []
    for log_file in work.glob(f"{tag}.*"):
        for line in log_file.read_text().splitlines():
            latencies.append(int(line.split()[2]) / 1000.0)  # microseconds
        log_file.unlink()
    return latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args(argv)
    ensure_bytecode()
    # fsync on, as in production: the standby's flush is what a synchronous commit waits for
    pair = build_pair(settings={"fsync": "on"})
    work = Path(tempfile.mkdtemp(prefix="medark-sync-bench-", dir="/tmp"))
    chown_pg(work)
    try:
        p = pair.primary
        conf = work / "medark.toml"
        conf.write_text(config(pair), encoding="utf-8")
        init = as_pg([p.tool("pgbench"), "-h", "127.0.0.1", "-p", str(p.port), "-U",
                      "postgres", "-i", "-s", "5", "postgres"])
        if init.returncode != 0:
            raise RuntimeError(init.stderr[-400:])
        samples: dict[str, list[float]] = {"async": [], "sync": []}
        for r in range(args.rounds):
            for mode in (("async", "sync") if r % 2 == 0 else ("sync", "async")):
                if mode == "sync":
                    subprocess.run([MEDARK, "dr", "supervise", "his", "--config", str(conf),
                                    "--catalog", f"sqlite:///{work / 'catalog.db'}"],
                                   check=True, capture_output=True)
                    wait_for(lambda: p.sql("SELECT sync_state FROM pg_stat_replication")
                             == "sync", timeout=30, what="a synchronous standby")
                else:
                    p.sql("ALTER SYSTEM RESET synchronous_standby_names")
                    p.sql("SELECT pg_reload_conf()")
                    wait_for(lambda: p.sql("SELECT sync_state FROM pg_stat_replication")
                             == "async", timeout=30, what="an asynchronous standby")
                got = pgbench(p.tool("pgbench"), p.port, args.seconds, work, f"{mode}{r}")
                samples[mode] += got
                log(f"round {r + 1} {mode}: {len(got)} transactions, p50 "
                    f"{statistics.median(got):.3f} ms")
        result = {mode: {"transactions": len(v), "p50_ms": round(quantile(v, 0.5), 3),
                         "p90_ms": round(quantile(v, 0.9), 3),
                         "p99_ms": round(quantile(v, 0.99), 3)}
                  for mode, v in samples.items()}
        result["overhead_p50_ms"] = round(  # type: ignore[assignment]
            result["sync"]["p50_ms"] - result["async"]["p50_ms"], 3)
        print(json.dumps(result, indent=2))
    finally:
        pair.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
