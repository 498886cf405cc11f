"""Database audit ingestion rate (issue 19, docs/dbaudit.md): csvlog lines as
PostgreSQL writes them for pgbench's statements with `log_statement = all` and pgaudit
(the TPC-B-like transaction: UPDATE, SELECT, UPDATE, UPDATE, INSERT), collected by one
`Collector` pass into a catalog; events per second of wall time and the collector's CPU.

    .venv/bin/python bench/dbaudit_bench.py [--events 100000] [--catalog URL]

Target: keep up with 5,000 statements/s using < 25 % of one core, i.e. at least
20,000 events/s of one core's CPU time."""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from medark.catalog.store import Catalog
from medark.config.loader import load_text
from medark.service.dbaudit import Collector, audited_sources

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--catalog", help="default: a new SQLite file")
    args = parser.parse_args()
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
