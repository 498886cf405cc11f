"""`synchronous = true` through the real command, on a real pair behind pgbouncer:

- `dr supervise` names the standby in the primary's synchronous_standby_names (found by
  the DR slot) and `dr status` says so, with the cost;
- the standby lost (stopped): a commit waits; `dr supervise` with on_sync_loss = degrade
  turns replication asynchronous, the waiting commit completes, the problem is reported;
  the standby back, the next supervise names it again;
- a failover after kill -9 of the primary loses no acknowledged order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import Cli
from dr_site import Site, his_site
from pg_server import can_run_servers, wait_for
from pgbouncer_server import pgbouncer_bin
from test_dr_failover_cli import kill_9, refs_on
from test_dr_switchover_cli import config_text, dr
from write_load import WriteLoad

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with his_site(tmp_path_factory.mktemp("dr-sync")) as built:
        text = config_text(built).replace('max_lag = "1h"',
                                          'max_lag = "1h"\nsynchronous = true')
        (built.work / "medark.toml").write_text(text, encoding="utf-8")
        yield built


def supervise(cli: Cli, site: Site) -> dict[str, object]:
    result = dr(cli, site, site.work / "medark.toml", "supervise", "his", "--json")
    doc = json.loads(result.stdout)
    system = doc["systems"][0]
    assert isinstance(system, dict)
    return {"code": result.returncode, "stderr": result.stderr, **system}


def test_supervise_makes_it_synchronous_and_degrades_when_the_standby_is_lost(
        cli: Cli, site: Site) -> None:
    pair = site.pair
    first = supervise(cli, site)
    assert first["synchronous"]["state"] == "set", first  # type: ignore[index]
    assert pair.primary.sql("SHOW synchronous_standby_names") == 'FIRST 1 ("walreceiver")'
    wait_for(lambda: pair.primary.sql("SELECT sync_state FROM pg_stat_replication")
             == "sync", timeout=30, what="the standby to be synchronous")
    again = supervise(cli, site)
    assert again["code"] == 0 and again["synchronous"]["state"] == "synchronous", again  # type: ignore[index]
    shown = dr(cli, site, site.work / "medark.toml", "status", "his")
    said = " ".join(shown.stdout.split())  # wrapped to the terminal's width
    assert "synchronous: synchronous" in said, shown.stdout
    assert "every commit waits until the DR standby has flushed it" in said

    pair.standby.stop()
    done = threading.Event()

    def commit() -> None:
        with psycopg.connect(f"host=127.0.0.1 port={pair.primary.port} user=postgres "
                             "dbname=postgres", autocommit=True) as conn:
            conn.execute("INSERT INTO orders (ref, patient) VALUES ('while-lost', 'p')")
        done.set()

    writer = threading.Thread(target=commit, daemon=True)
    writer.start()
    time.sleep(1.0)
    assert not done.is_set(), "a commit must wait while the synchronous standby is gone"
    lost = supervise(cli, site)
    assert lost["synchronous"]["state"] == "degraded", lost  # type: ignore[index]
    assert "degraded to asynchronous" in str(lost["synchronous"]["problem"])  # type: ignore[index]
    assert done.wait(10), "the waiting commit must complete once degraded"
    assert pair.primary.sql("SHOW synchronous_standby_names") == ""

    pair.standby.start()
    wait_for(lambda: pair.primary.sql("SELECT count(*) FROM pg_stat_replication "
                                      "WHERE state = 'streaming'") == "1",
             timeout=60, what="the standby to stream again")
    back = supervise(cli, site)
    assert back["synchronous"]["state"] == "set", back  # type: ignore[index]


def test_a_synchronous_failover_after_kill_9_loses_no_acknowledged_order(
        cli: Cli, site: Site) -> None:
    pair = site.pair
    assert supervise(cli, site)["synchronous"]["state"] in ("set", "synchronous")  # type: ignore[index]
    wait_for(lambda: pair.primary.sql("SELECT sync_state FROM pg_stat_replication")
             == "sync", timeout=30, what="the standby to be synchronous")
    load = WriteLoad(site.app.port, prefix="sync-", clients=2).start()
    wait_for(lambda: load.acked() >= 50, timeout=60, what="orders before the crash")
    kill_9(pair.primary.data)
    killed = time.monotonic()
    result = dr(cli, site, site.work / "medark.toml", "failover", "his", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: load.snapshot().first_ack_on(pair.standby.port, killed) is not None,
             timeout=30, what="an order on the promoted standby")
    record = load.stop()
    acked = [a.ref for a in record.acks]
    assert refs_on(pair.standby, acked) == set(acked)
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["data_loss"]["commits"] <= 2, doc["data_loss"]  # in flight, never acked
