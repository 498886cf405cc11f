"""Database audit ingestion rate (issue 19, docs/dbaudit.md): csvlog lines as
PostgreSQL writes them for pgbench's statements with `log_statement = all` and pgaudit
(the TPC-B-like transaction: UPDATE, SELECT, UPDATE, UPDATE, INSERT), collected by one
`Collector` pass into a catalog; events per second of wall time and the collector's CPU.

    .venv/bin/python bench/dbaudit_bench.py [--events 100000] [--catalog URL]

With --pgbench, the issue's setting instead: a throwaway PostgreSQL (csvlog,
`log_statement = all`, as root: run as the postgres user like tests/pg_server.py) under
`pgbench -R RATE` (TPC-B: 7 statements a transaction with BEGIN/END, so -R 715 is
~5,000 statements/s), collected by the real `medark dbaudit collect --follow`
(every 1s) in its own process; its CPU (user+sys from /proc over the run, start-up and
the catch-up of `pgbench -i` excluded) and the events it stored per second of the run:

    .venv/bin/python bench/dbaudit_bench.py --pgbench --rate 715 --seconds 60

Target: keep up with 5,000 statements/s using < 25 % of one core, i.e. at least
20,000 events/s of one core's CPU time."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medark.catalog.store import Catalog
from medark.config.loader import load_text
from medark.service.dbaudit import Collector, audited_sources

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

STATEMENTS = [
    "UPDATE pgbench_accounts SET abalance = abalance + {d} WHERE aid = {a};",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {a};",
    "UPDATE pgbench_tellers SET tbalance = tbalance + {d} WHERE tid = {t};",
    "UPDATE pgbench_branches SET bbalance = bbalance + {d} WHERE bid = {b};",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({t}, {b}, {a}, {d}, "
    "CURRENT_TIMESTAMP);",
]
CONFIG = """\
[catalog]
url = "{catalog}"
[sites.main]
location = "CN-SC"
[repositories.local]
site = "main"
url = "/nonexistent"
[systems.his]
owner = "it"
[[systems.his.sources]]
type = "postgres"
dsn = "host=127.0.0.1"
audit = {{ log = "{log}", format = "csvlog" }}
[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
"""


def write_log(path: Path, count: int) -> None:
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8") as f:
        for n in range(count):
            statement = STATEMENTS[n % len(STATEMENTS)].format(
                d=rng.randint(-5000, 5000), a=rng.randint(1, 100000), t=rng.randint(1, 10),
                b=1)
            quoted = statement.replace('"', '""')
            f.write(f'2026-12-06 09:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d} '
                    f'UTC,"bench","his",{4000 + n % 8},"127.0.0.1:{40000 + n % 8}",'
                    f'6752c1a2.{n % 8},{n},"{statement.split()[0]}","2026-12-06 09:00:00 '
                    f'UTC",3/{n},0,LOG,00000,"AUDIT: SESSION,{n},1,'
                    f'{"READ" if statement.startswith("SELECT") else "WRITE"},'
                    f'{statement.split()[0]},,,""{quoted}"",<not logged>,1",,,,,,,,,'
                    f'"pgbench","client backend",,0\n')


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored(catalog: Path) -> int:
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30) as db:
        return int(db.execute("SELECT count(*) FROM audit_trail WHERE action LIKE 'db.%'")
                   .fetchone()[0])


def _settled(catalog: Path, quiet: float = 4.0, timeout: float = 600.0) -> tuple[int, float]:
    """The stored count once it stopped growing for `quiet` s, and when it last grew."""
    last, changed = _stored(catalog), time.monotonic()
    deadline = changed + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _stored(catalog)
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed >= quiet:
            break
    return last, changed


def pgbench_run(rate: int, seconds: int, clients: int) -> None:
    from pg_server import PgServer, as_pg, free_port, make_base, pg_bin

    bin_dir = pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server programs are not installed")
    base = make_base()
    log = base / "log"
    server = PgServer(base, free_port(), bin_dir, settings={
        "archive_mode": "off", "logging_collector": "on", "log_destination": "'csvlog'",
        "log_directory": f"'{log}'", "log_statement": "'all'", "log_file_mode": "0644",
        "log_rotation_size": "0", "log_connections": "on", "log_disconnections": "on"})
    work = Path(tempfile.mkdtemp(prefix="medark-dbaudit-bench-"))
    collector: subprocess.Popen[bytes] | None = None
    try:
        server.init()
        server.start()
        pgbench = [server.tool("pgbench"), "-h", "127.0.0.1", "-p", str(server.port),
                   "-U", "postgres", "postgres"]
        as_pg([pgbench[0], "-i", "-q", "-s", "2", *pgbench[1:]])
        catalog = work / "catalog.sqlite"
        config = work / "medark.toml"
        config.write_text(CONFIG.format(catalog=f"sqlite:///{catalog}", log=log)
                          .replace('format = "csvlog" }', 'format = "csvlog", every = "1s" }'))
        env = {**os.environ, "HOME": str(work), "MEDARK_CACHE_DIR": str(work / "cache")}
        collector = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "medark"), "dbaudit", "collect", "--follow",
             "--config", str(config)], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        while not catalog.exists() or _stored_safe(catalog) == 0:
            time.sleep(0.5)
        before, _ = _settled(catalog)  # pgbench -i's statements, read at start-up
        cpu0, t0 = _cpu_seconds(collector.pid), time.monotonic()
        load0 = os.getloadavg()[0]
        done = as_pg([*pgbench[:1], "-R", str(rate), "-T", str(seconds), "-c", str(clients),
                      "-j", "2", "-n", *pgbench[1:]])
        t_bench = time.monotonic() - t0
        after, last_change = _settled(catalog)
        cpu = _cpu_seconds(collector.pid) - cpu0
        load1 = os.getloadavg()[0]
        events = after - before
        lag = max(0.0, last_change - t0 - t_bench)
        tps = next((line for line in done.stdout.splitlines()
                    if line.startswith("tps")), "tps ?")
        print(f"pgbench -R {rate} -T {seconds} -c {clients}: {tps.strip()}")
        print(f"{events} events stored in {t_bench:.1f} s of pgbench (+{lag:.1f} s to "
              f"catch up): {events / t_bench:,.0f} statements/s logged and collected")
        print(f"collector CPU {cpu:.2f} s = {1000 * cpu / events:.3f} CPU s per 1,000 "
              f"events, {100 * cpu / t_bench:.1f} % of one core at that rate; "
              f"{100 * 5000 * cpu / events:.1f} % of one core at 5,000 events/s; "
              f"load average {load0:.1f} -> {load1:.1f}")
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(30)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _stored_safe(catalog: Path) -> int:
    try:
        return _stored(catalog)
    except sqlite3.Error:  # not migrated yet
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--catalog", help="default: a new SQLite file")
    parser.add_argument("--pgbench", action="store_true",
                        help="a real pgbench run with log_statement=all (see above)")
    parser.add_argument("--rate", type=int, default=715, help="pgbench -R (transactions/s)")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if args.pgbench:
        pgbench_run(args.rate, args.seconds, args.clients)
        return
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "log"
        log.mkdir()
        write_log(log / "postgresql-1.csv", args.events)
        url = args.catalog or f"sqlite:///{work}/catalog.sqlite"
        config = load_text(CONFIG.format(catalog=url, log=log))
        catalog = Catalog(url)
        collector = Collector(config, catalog, audited_sources(config))
        wall, cpu = time.perf_counter(), time.process_time()
        stored = sum(r.events for r in collector.run_once())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        catalog.close()
    size = args.events
    print(f"{stored} of {size} events in {wall:.2f} s: {stored / wall:,.0f} events/s wall, "
          f"{stored / cpu:,.0f} events/s per CPU second ({cpu:.2f} s CPU); "
          f"5,000 statements/s would take {100 * 5000 / (stored / cpu):.1f} % of one core")


if __name__ == "__main__":
    main()
