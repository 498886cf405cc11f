"""`medark dr failover` after kill -9 of the primary, and `dr failback`, through the real
command with the test HIS writing through pgbouncer the whole time:

- with the DR link cut before the crash (so the primary acknowledged orders the standby
  never got), the reported data-loss window (read from the dead primary's WAL) matches
  what is really missing: every acknowledged order absent from the new primary is
  counted, and at most the in-flight ones more;
- the old primary is fenced: started again, it comes up read-only and a write to it
  fails;
- clients reach the new primary through the same pooler address;
- failback (pg_rewind of the diverged old primary) restores the configured roles with
  nothing lost since the failover.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from dr_site import Site, his_site
from pg_pair import PgPair
from pg_server import as_pg, can_run_servers, wait_for
from pgbouncer_server import pgbouncer_bin
from test_dr_switchover_cli import config_text, dr, roles
from write_load import WriteLoad

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed"),
]

IN_FLIGHT = 2
"""Commits the dead primary may hold that no client saw acknowledged (one per client),
plus one for a background commit (autovacuum's analyze)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with his_site(tmp_path_factory.mktemp("dr-failover")) as built:
        yield built


def kill_9(data: Path) -> None:
    pid = int((data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="the postmaster")


def refs_on(server: object, refs: list[str]) -> set[str]:
    found = server.sql("SELECT string_agg(ref, ',') FROM orders")  # type: ignore[attr-defined]
    return set(found.split(",")) & set(refs) if found else set()


def test_failover_after_kill_9_reports_the_loss_and_fences_then_failback(
        cli: Cli, site: Site) -> None:
    pair: PgPair = site.pair
    config = site.work / "medark.toml"
    config.write_text(config_text(site), encoding="utf-8")
    load = WriteLoad(site.app.port, prefix="fo-", clients=1).start()
    wait_for(lambda: load.acked() >= 30, timeout=60, what="orders before the cut")
    # the DR link breaks: the standby stops receiving, the primary goes on acknowledging
    pair.standby.sql("ALTER SYSTEM SET primary_conninfo TO ''")
    pair.standby.sql("SELECT pg_reload_conf()")
    wait_for(lambda: pair.primary.sql("SELECT count(*) FROM pg_stat_replication") == "0",
             timeout=30, what="the standby to stop receiving")
    cut = load.acked()
    wait_for(lambda: load.acked() >= cut + 20, timeout=60, what="orders after the cut")
    kill_9(pair.primary.data)
    killed = time.monotonic()
    result = dr(cli, site, config, "failover", "his", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: load.snapshot().first_ack_on(pair.standby.port, killed) is not None,
             timeout=30, what="an order on the promoted standby")
    record = load.stop()
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["status"] == "succeeded", doc
    loss = doc["data_loss"]
    assert loss["basis"] == "the old primary's WAL (pg_waldump)", loss
    acked = [a.ref for a in record.acks]
    missing = set(acked) - refs_on(pair.standby, acked)
    assert len(missing) >= 20, (len(missing), loss)
    assert len(missing) <= loss["commits"] <= len(missing) + IN_FLIGHT, (missing, loss)
    assert loss["bytes"] > 0 and loss["first_lost_commit_at"] <= loss["primary_last_commit_at"]
    names = [s["name"] for s in doc["steps"]]
    assert names[:5] == ["preflight", "hold clients", "fence old primary",
                         "data-loss window", "promote standby"], names
    assert "standby.signal placed" in doc["steps"][2]["detail"]

    # fenced: started again, the old primary is read-only
    pair.primary.start()
    assert pair.primary.sql("SELECT pg_is_in_recovery()") == "t"
    refused = as_pg([pair.primary.tool("psql"), "-h", "127.0.0.1", "-p",
                     str(pair.primary.port), "-U", "postgres", "-XAtc",
                     "INSERT INTO orders (ref, patient) VALUES ('split-brain', 'x')"])
    assert refused.returncode != 0 and "read-only" in refused.stderr, refused

    # failback under load: the configured primary serves again, nothing lost
    load = WriteLoad(site.app.port, prefix="fb-", clients=1).start()
    wait_for(lambda: load.acked() >= 20, timeout=60, what="orders before the failback")
    back = dr(cli, site, config, "failback", "his", "--yes", "--json")
    assert back.returncode == 0, back.stdout + back.stderr
    started = time.monotonic()
    wait_for(lambda: load.snapshot().first_ack_on(pair.primary.port, started) is not None,
             timeout=30, what="an order on the configured primary")
    record = load.stop()
    doc = json.loads(back.stdout.strip().splitlines()[-1])
    assert doc["status"] == "succeeded", doc
    names = [s["name"] for s in doc["steps"]]
    assert names[:3] == ["find roles", "reinstate configured primary", "wait for catch-up"]
    assert "rewound with pg_rewind" in doc["steps"][1]["detail"], doc["steps"][1]
    assert record.failures == [], record.failures[:5]
    acked = [a.ref for a in record.acks]
    assert refs_on(pair.primary, acked) == set(acked)
    assert roles(pair) == {pair.primary.port: "f", pair.standby.port: "t"}
    wait_for(lambda: pair.primary.sql("SELECT state FROM pg_stat_replication") ==
             "streaming", timeout=30, what="the DR node to stream again")
    assert not refs_on(pair.primary, ["split-brain"])


def test_failback_straight_after_a_crash_rewinds_the_guarded_directory(
        cli: Cli, site: Site) -> None:
    """No restart between: the crashed primary's directory carries the failover's
    standby.signal, which pg_rewind's single-user recovery would refuse."""
    pair: PgPair = site.pair
    config = site.work / "medark.toml"
    assert roles(pair) == {pair.primary.port: "f", pair.standby.port: "t"}
    load = WriteLoad(site.app.port, prefix="fo2-", clients=1).start()
    wait_for(lambda: load.acked() >= 20, timeout=60, what="orders before the crash")
    kill_9(pair.primary.data)
    result = dr(cli, site, config, "failover", "his", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (pair.primary.data / "standby.signal").exists()
    back = dr(cli, site, config, "failback", "his", "--yes", "--json")
    record = load.stop()
    assert back.returncode == 0, back.stdout + back.stderr
    assert roles(pair) == {pair.primary.port: "f", pair.standby.port: "t"}
    acked = [a.ref for a in record.acks]
    missing = set(acked) - refs_on(pair.primary, acked)
    lost = json.loads(result.stdout.strip().splitlines()[-1])["data_loss"]["commits"]
    assert len(missing) <= lost <= len(missing) + IN_FLIGHT, (missing, lost)
