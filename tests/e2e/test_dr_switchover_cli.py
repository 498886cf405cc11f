"""`medark dr switchover` through the real command, against a real primary/standby pair,
pgbouncer as the clients' entry point and the test HIS app writing orders through it the
whole time (tests/write_load.py):

- a planned switch-over under load: exit 0, every acknowledged order is on the new
  primary, no client request failed, writes land on the new primary, the old primary is
  its streaming standby, the DR site's service was started and the primary site's
  stopped, every step is in the history; and the switch back restores the roles;
- refusals change nothing and say why in one line: a standby over its lag limit (27), a
  health check that fails before the switch (29), a second switch while one runs (30),
  a configured standby that is not one (26), no --yes off a terminal (2).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import MEDARK, Cli
from dr_site import Site, his_site, pg_nodes, preamble
from pg_pair import PgPair
from pg_server import PgServer, can_run_servers, wait_for
from pgbouncer_server import pgbouncer_bin
from write_load import WriteLoad

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed"),
]


def config_text(site: Site, *, max_lag_bytes: int = 16 * 1024 * 1024,
                health_address: str | None = None, main_stop: str = "",
                fencing: str = '"readonly"') -> str:
    p, s, w = site.pair.primary, site.pair.standby, site.work
    extra_health = "" if health_address is None else f"""
[[dr.his.health]]
type = "tcp"
name = "interface-engine"
address = "{health_address}"
timeout = "1s"
"""
    return preamble(p.dsn) + f"""
[dr.his]
feed = "stream"
slot = "{site.pair.slot}"
max_lag_bytes = {max_lag_bytes}
max_lag = "1h"
fencing = {fencing}

""" + pg_nodes(p, s) + f"""
[dr.his.client_switch]
type = "pgbouncer"
ini = "{site.pooler.ini}"
admin_dsn = "{site.pooler.admin_dsn}"
database = "his"

[[dr.his.services.main]]
name = "his-interface"
start = "echo started >> {w}/main.log"
stop = "{main_stop}echo stopped >> {w}/main.log"

[[dr.his.services.east]]
name = "his-interface"
start = "echo started >> {w}/east.log"
stop = "echo stopped >> {w}/east.log"

[[dr.his.health]]
type = "http"
name = "his-app"
url = "http://127.0.0.1:{site.app.port}/health"
timeout = "20s"

[[dr.his.health]]
type = "sql"
name = "writable"
query = "SELECT NOT pg_is_in_recovery()"
expect = "true"
{extra_health}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with his_site(tmp_path_factory.mktemp("dr-switch")) as built:
        yield built


def write_config(site: Site, **kwargs: object) -> Path:
    path = site.work / "medark.toml"
    path.write_text(config_text(site, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return path


def dr(cli: Cli, site: Site, config: Path, *args: str,
       timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = cli("dr", *args, "--config", config, "--catalog", site.catalog, check=False,
                 timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def roles(pair: PgPair) -> dict[int, str]:
    return {server.port: server.sql("SELECT pg_is_in_recovery()")
            for server in (pair.primary, pair.standby)}


def rows_on(port: int, pair: PgPair, refs: list[str]) -> set[str]:
    server = pair.primary if pair.primary.port == port else pair.standby
    found = server.sql("SELECT string_agg(ref, ',') FROM orders")
    return set(found.split(",")) & set(refs) if found else set()


def test_a_switchover_under_load_loses_nothing_and_fails_no_request(cli: Cli,
                                                                    site: Site) -> None:
    pair = site.pair
    config = write_config(site)
    switch_once(cli, site, config, pair.standby, pair.primary)
    switch_once(cli, site, config, pair.primary, pair.standby)  # and back
    logs = {name: (site.work / f"{name}.log").read_text().split()
            for name in ("main", "east")}
    assert logs == {"main": ["stopped", "started"], "east": ["started", "stopped"]}
    history = dr(cli, site, config, "history", "his", "--json")
    actions = json.loads(history.stdout)
    assert [a["kind"] for a in actions[:2]] == ["switchover", "switchover"]
    assert all(a["status"] == "succeeded" and a["switch_seconds"] for a in actions[:2])


def switch_once(cli: Cli, site: Site, config: Path, new: PgServer, old: PgServer) -> None:
    """One switch-over to `new` under load, checked."""
    pair = site.pair
    load = WriteLoad(site.app.port, prefix=f"sw{new.port}-", clients=2).start()
    wait_for(lambda: load.acked() >= 20, timeout=60, what="orders before the switch")
    started = time.monotonic()
    result = dr(cli, site, config, "switchover", "his", "--yes", "--json")
    if result.returncode != 0:
        load.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: load.snapshot().first_ack_on(new.port, started) is not None,
             timeout=30, what="an order on the new primary")
    time.sleep(0.5)
    record = load.stop()
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["status"] == "succeeded", doc
    assert doc["new_primary"] == f"postgres@127.0.0.1:{new.port}"
    assert 0 < doc["switch_seconds"] < doc["total_seconds"]
    names = [s["name"] for s in doc["steps"]]
    assert names[:3] == ["preflight", "stop services at " + _site(site, old),
                         "hold clients"], names
    assert "promote standby" in names and names[-1] == "reinstate old primary", names
    assert all(s["result"] == "ok" for s in doc["steps"]), doc["steps"]
    assert record.failures == [], record.failures[:5]
    refs = [a.ref for a in record.acks]
    assert rows_on(new.port, pair, refs) == set(refs)
    assert roles(pair) == {new.port: "f", old.port: "t"}
    wait_for(lambda: new.sql("SELECT state FROM pg_stat_replication") == "streaming",
             timeout=30, what="the old primary to stream from the new one")
    assert new.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                   f"'{pair.slot}' AND active") == "1"
    assert old.sql("SELECT count(*) FROM pg_replication_slots") == "0"
    first_new = record.first_ack_on(new.port, started)
    assert first_new is not None
    assert not [a for a in record.acks if a.sent > first_new.acked
                and a.server_port == old.port]


def _site(site: Site, server: object) -> str:
    return "main" if server is site.pair.primary else "east"


def test_a_lag_over_the_limit_is_refused_with_27(cli: Cli, site: Site) -> None:
    pair = site.pair
    config = write_config(site, max_lag_bytes=1)
    before = roles(pair)
    pair.standby.sql("SELECT pg_wal_replay_pause()")
    try:
        pair.primary.sql("CREATE TABLE IF NOT EXISTS lag_probe (i int)")
        pair.primary.sql("INSERT INTO lag_probe SELECT generate_series(1, 1000)")
        result = dr(cli, site, config, "switchover", "his", "--yes")
    finally:
        pair.standby.sql("SELECT pg_wal_replay_resume()")
    assert result.returncode == 27, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "the standby is behind with its replay paused" in line and "bytes >" in line, line
    assert roles(pair) == before


def test_a_failing_health_check_before_the_switch_is_refused_with_29(cli: Cli,
                                                                       site: Site) -> None:
    from pg_server import free_port

    config = write_config(site, health_address=f"127.0.0.1:{free_port()}")
    before = roles(site.pair)
    result = dr(cli, site, config, "switchover", "his", "--yes")
    assert result.returncode == 29, result.stdout + result.stderr
    assert "health check interface-engine fails before the switch" in result.stderr
    assert roles(site.pair) == before
    assert "preflight" in result.stdout and "FAILED" in result.stdout


def test_a_second_switch_during_the_first_is_refused_with_30(cli: Cli, site: Site) -> None:
    pair = site.pair
    stopping, gate = site.work / "stopping", site.work / "gate"
    stopping.unlink(missing_ok=True)
    gate.unlink(missing_ok=True)
    # The first switch holds in its "stop services" step until the test opens the gate, so
    # the second certainly arrives while it runs, however slow the machine (bounded: 60 s).
    hold = (f"touch {stopping}; for i in $(seq 600); do [ -e {gate} ] && break; sleep 0.1; "
            "done; ")
    config = write_config(site, main_stop=hold)
    if roles(pair)[pair.primary.port] != "f":  # the slow stop is at main: start from main
        pytest.fail("the pair is not in its configured roles")
    first = subprocess.Popen(
        [MEDARK, "dr", "switchover", "his", "--yes", "--config", str(config), "--catalog",
         site.catalog], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli.env)
    try:
        wait_for(lambda: stopping.exists() or first.poll() is not None, timeout=60,
                 what="the first switch to stop the services")
        assert first.poll() is None, "the first switch ended before the second was tried"
        second = dr(cli, site, config, "switchover", "his", "--yes")
        assert second.returncode == 30, second.stdout + second.stderr
        assert "refused, switchover #" in second.stderr and "is running since" in second.stderr
    finally:
        gate.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    back = dr(cli, site, write_config(site), "switchover", "his", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr


def test_a_standby_that_is_no_standby_is_refused_with_26(cli: Cli, site: Site,
                                                         tmp_path: Path) -> None:
    from pg_server import PgServer, free_port, make_base, pg_bin

    lone = PgServer(make_base(), free_port(), str(pg_bin()))
    try:
        lone.init()
        lone.start()
        text = config_text(site).replace(f"port={site.pair.standby.port}",
                                         f"port={lone.port}")
        config = tmp_path / "wrong.toml"
        config.write_text(text, encoding="utf-8")
        before = roles(site.pair)
        result = dr(cli, site, config, "switchover", "his", "--yes")
        assert result.returncode == 26, result.stdout + result.stderr
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1 and "two primaries" in line, line
        assert f"standby postgres@127.0.0.1:{lone.port} is a primary" in line, line
        assert roles(site.pair) == before
        assert lone.sql("SELECT pg_is_in_recovery()") == "f"
    finally:
        lone.stop()
        shutil.rmtree(lone.base, ignore_errors=True)


def test_a_failing_fence_rolls_back_by_itself_with_28(cli: Cli, site: Site) -> None:
    pair = site.pair
    before = roles(pair)
    primary = pair.primary if before[pair.primary.port] == "f" else pair.standby
    config = write_config(site, fencing='{ type = "hook", command = "echo no power switch '
                                        '>&2; exit 3" }')
    load = WriteLoad(site.app.port, prefix="rb-", clients=1).start()
    wait_for(lambda: load.acked() >= 10, timeout=60, what="orders before the switch")
    result = dr(cli, site, config, "switchover", "his", "--yes", "--json")
    started = time.monotonic()
    wait_for(lambda: load.snapshot().first_ack_on(primary.port, started) is not None,
             timeout=30, what="orders on the original primary after the rollback")
    record = load.stop()
    assert result.returncode == 28, result.stdout + result.stderr
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["status"] == "rolled_back", doc
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["fence primary: hook"]["result"] == "failed"
    assert "exit 3: no power switch" in steps["fence primary: hook"]["detail"]
    assert "writable again" in steps["roll back"]["detail"]
    assert "promote standby" not in steps
    assert roles(pair) == before
    assert record.failures == [], record.failures[:5]
    refs = [a.ref for a in record.acks]
    assert rows_on(primary.port, pair, refs) == set(refs)
    assert primary.sql("SHOW default_transaction_read_only") == "off"
    history = json.loads(dr(cli, site, config, "history", "his", "--json").stdout)
    assert history[0]["status"] == "rolled_back"


def test_a_transaction_left_open_does_not_hold_the_switch_for_ever(cli: Cli,
                                                                   site: Site) -> None:
    """pgbouncer's PAUSE waits for open transactions: after 5 s the one left open is
    ended (its client gets an error, its row is not committed) and the switch goes on."""
    pair = site.pair
    before = roles(pair)
    new = pair.standby if before[pair.primary.port] == "f" else pair.primary
    idle = psycopg.connect(site.pooler.client_dsn, prepare_threshold=None)
    idle.execute("INSERT INTO orders (ref, patient) VALUES ('left-open', 'p')")
    result = dr(cli, site, write_config(site), "switchover", "his", "--yes", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    hold = next(s for s in doc["steps"] if s["name"] == "hold clients")
    assert "1 sessions with a transaction still open ended" in hold["detail"], hold
    assert 5 <= hold["seconds"] < 30, hold
    with pytest.raises(psycopg.Error):  # the session was ended under it
        idle.commit()
    idle.close()
    assert new.sql("SELECT count(*) FROM orders WHERE ref = 'left-open'") == "0"
    assert roles(pair)[new.port] == "f"
    back = dr(cli, site, write_config(site), "switchover", "his", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr


def test_without_yes_off_a_terminal_nothing_happens(cli: Cli, site: Site) -> None:
    before = roles(site.pair)
    result = dr(cli, site, write_config(site), "switchover", "his")
    assert result.returncode == 2
    assert "give --yes" in result.stderr
    assert roles(site.pair) == before
