"""`medark dr status` and `dr history` through the real command against a real
primary/standby pair (tests/pg_pair.py): the roles, streaming and a lag of 0 bytes once
caught up (exit 0); a paused replay behind a max_lag_bytes of 1 gives exit 27 with the
lag in bytes and seconds; a stopped standby gives exit 26 with one line naming it
unreachable; a MariaDB system that cannot be reached is reported beside a
healthy one; --json is one document; an unknown system exits 2; an empty history says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from dr_site import pg_nodes, preamble
from pg_pair import PgPair, pg_pair
from pg_server import can_run_servers, wait_for
from pgbouncer_server import PgbouncerServer, pgbouncer_bin

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


def config_text(pair: PgPair, max_lag_bytes: int = 16 * 1024 * 1024) -> str:
    p, s = pair.primary, pair.standby
    return preamble(p.dsn) + f"""
[dr.his]
feed = "stream"
slot = "{pair.slot}"
max_lag_bytes = {max_lag_bytes}
max_lag = "1h"
""" + pg_nodes(p, s) + f"""
[[dr.his.health]]
type = "tcp"
name = "primary-port"
address = "127.0.0.1:{p.port}"

[[dr.his.health]]
type = "sql"
name = "his-answers"
query = "SELECT 1"
expect = "1"
"""


@pytest.fixture(scope="module")
def pair() -> Iterator[PgPair]:
    with pg_pair() as built:
        yield built


@pytest.fixture
def dr(cli: Cli, tmp_path: Path, pair: PgPair) -> Iterator[tuple[Cli, Path]]:
    path = tmp_path / "medark.toml"
    path.write_text(config_text(pair), encoding="utf-8")
    yield cli, path


def status(cli: Cli, config: Path, *extra: str) -> tuple[int, str, str]:
    result = cli("dr", "status", *extra, "--config", config, "--catalog",
                 f"sqlite:///{config.parent / 'catalog.db'}", check=False, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def caught_up(pair: PgPair) -> bool:
    return str(pair.standby.sql("SELECT pg_last_wal_replay_lsn()")) == \
        pair.primary.sql("SELECT pg_current_wal_flush_lsn()")


def test_a_caught_up_pair_is_healthy(dr: tuple[Cli, Path], pair: PgPair) -> None:
    cli, config = dr
    pair.primary.sql("CREATE TABLE IF NOT EXISTS visits (id int)")
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    code, out, err = status(cli, config)
    assert code == 0, out + err
    assert f"primary postgres@127.0.0.1:{pair.primary.port} (site main): primary" in out
    assert f"standby postgres@127.0.0.1:{pair.standby.port} (site east): standby" in out
    assert f"replication: streaming, slot {pair.slot} active" in out
    assert re.search(r"lag: 0 bytes, 0 s \(caught up\)", out), out
    assert "switch-over now: no data loss" in out
    assert "health primary-port: ok" in out and "health his-answers: ok" in out
    assert "last switch: none recorded" in out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert err == ""


def test_json_is_one_document(dr: tuple[Cli, Path], pair: PgPair) -> None:
    cli, config = dr
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    code, out, _ = status(cli, config, "--json")
    assert code == 0
    [system] = json.loads(out)["systems"]
    assert system["system"] == "his" and system["healthy"] is True
    assert [n["role"] for n in system["nodes"]] == ["primary", "standby"]
    assert system["replication"]["streaming"] is True
    assert system["lag"]["bytes"] == 0 and system["would_lose_data"] is False
    assert [h["ok"] for h in system["health"]] == [True, True]


def test_a_paused_replay_over_max_lag_bytes_exits_27(dr: tuple[Cli, Path],
                                                     pair: PgPair) -> None:
    cli, config = dr
    config.write_text(config_text(pair, max_lag_bytes=1), encoding="utf-8")
    p, s = pair.primary, pair.standby
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    s.sql("SELECT pg_wal_replay_pause()")
    try:
        wait_for(lambda: s.sql("SELECT pg_is_wal_replay_paused()") == "t",
                 what="replay to pause")
        before = p.sql("SELECT pg_current_wal_flush_lsn()")
        p.sql("INSERT INTO visits SELECT g FROM generate_series(1, 2000) g")
        written = int(p.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '{before}')"))
        code, out, err = status(cli, config)
        assert code == 27, out + err
        found = re.search(r"lag: (\d+) bytes, ([\d.]+) s", out)
        assert found is not None, out
        assert int(found.group(1)) >= written > 0
        assert float(found.group(2)) > 0
        assert "replay PAUSED" in out and "switch-over now: would LOSE data" in out
        assert "over max_lag_bytes 1" in err
    finally:
        s.sql("SELECT pg_wal_replay_resume()")
    wait_for(lambda: caught_up(pair), what="the standby to catch up")


def test_an_unknown_system_exits_2(dr: tuple[Cli, Path]) -> None:
    cli, config = dr
    code, out, err = status(cli, config, "ris")
    assert code == 2 and out == ""
    assert err.strip() == "medark: no DR system 'ris' in the configuration (DR systems: his)"


def test_an_empty_history_says_so(dr: tuple[Cli, Path]) -> None:
    cli, config = dr
    result = cli("dr", "history", "his", "--config", config, "--catalog",
                 f"sqlite:///{config.parent / 'catalog.db'}")
    assert result.stdout.strip() == "no DR actions recorded for his"


def test_recorded_actions_show_in_history_and_status(dr: tuple[Cli, Path],
                                                     pair: PgPair) -> None:
    from medark.catalog.store import Catalog

    cli, config = dr
    url = f"sqlite:///{config.parent / 'catalog.db'}"
    catalog = Catalog(url)
    try:
        drill = catalog.start_dr_action("his", "drill", "tester")
        catalog.finish_dr_action(drill, "succeeded", switch_seconds=12.5)
        switch = catalog.start_dr_action("his", "switchover", "operator")
        catalog.finish_dr_action(switch, "failed", error="fencing hook exited 1")
    finally:
        catalog.close()
    history = cli("dr", "history", "--config", config, "--catalog", url).stdout.splitlines()
    assert re.fullmatch(rf"#{switch} \S+ his switchover failed by operator", history[0])
    assert history[1].strip() == "fencing hook exited 1"
    assert re.fullmatch(rf"#{drill} \S+ his drill succeeded by tester, switch 12\.50 s",
                        history[2])
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    code, out, _ = status(cli, config)
    assert code == 0
    said = " ".join(out.split())  # wrapped to the terminal's width
    assert re.search(rf"last switch: switchover #{switch} \S+ failed last drill", said), out
    assert re.search(rf"last drill: drill #{drill} \S+ succeeded, healthy after 12\.50 s",
                     said), out


def test_a_failing_health_check_exits_29(dr: tuple[Cli, Path], pair: PgPair) -> None:
    cli, config = dr
    config.write_text(config_text(pair).replace('expect = "1"', 'expect = "2"'),
                      encoding="utf-8")
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    code, out, err = status(cli, config)
    assert code == 29, out + err
    assert "health his-answers: FAILED (got '1', wanted '2')" in out
    assert err.strip() == "medark: his: health check his-answers: got '1', wanted '2'"


def test_an_unreachable_mariadb_system_is_reported_beside_a_healthy_one(
        dr: tuple[Cli, Path], pair: PgPair) -> None:
    cli, config = dr
    config.write_text(config_text(pair) + MARIADB, encoding="utf-8")
    wait_for(lambda: caught_up(pair), what="the standby to catch up")
    code, out, err = status(cli, config)
    assert code == 26, out + err
    assert "his (postgres, stream feed): healthy" in out
    assert "lis (mariadb, stream feed): NOT HEALTHY" in out
    assert "primary root@127.0.0.1:1 (site main): unreachable:" in " ".join(out.split())
    lines = [x for x in err.splitlines() if x.startswith("medark: lis:")]
    assert lines and all("unreachable" in x for x in lines), err
    code, out, _ = status(cli, config, "lis", "--json")
    assert code == 26
    [lis] = json.loads(out)["systems"]
    assert lis["supported"] is True and lis["healthy"] is False
    assert lis["problems"][0]["exit_code"] == 26


@pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed")
def test_the_pooler_entry_is_shown(dr: tuple[Cli, Path], pair: PgPair) -> None:
    cli, config = dr
    bouncer = PgbouncerServer(pair.primary.port)
    bouncer.start()
    try:
        config.write_text(config_text(pair) + f"""
[dr.his.client_switch]
type = "pgbouncer"
database = "his"
admin_dsn = "{bouncer.admin_dsn}"
ini = "{bouncer.ini}"
""", encoding="utf-8")
        wait_for(lambda: caught_up(pair), what="the standby to catch up")
        code, out, err = status(cli, config)
        assert code == 0, out + err
        assert f"pgbouncer his: to 127.0.0.1:{pair.primary.port}, 0 clients waiting" in out
        code, out, _ = status(cli, config, "--json")
        pooler = json.loads(out)["systems"][0]["pooler"]
        assert pooler["port"] == pair.primary.port and pooler["paused"] is False
    finally:
        bouncer.stop()
    code, out, err = status(cli, config)
    assert code == 0, out + err  # the pooler down is shown, not a failure of the pair
    assert "pgbouncer: " in out


MARIADB = """
[systems.lis]
owner = "IT"

[[systems.lis.sources]]
type = "mariadb"
dsn = "mysql://root@127.0.0.1:1/"

[dr.lis.primary]
kind = "mariadb"
site = "main"
dsn = "mysql://root@127.0.0.1:1/"
control = { unit = "mariadb.service" }

[dr.lis.standby]
kind = "mariadb"
site = "east"
dsn = "mysql://root@127.0.0.1:2/"
control = { unit = "mariadb.service" }
"""


def test_a_stopped_standby_exits_26(dr: tuple[Cli, Path], pair: PgPair) -> None:
    """Last in the module: the standby stays down."""
    cli, config = dr
    pair.standby.stop()
    code, out, err = status(cli, config)
    assert code == 26, out + err
    port = pair.standby.port
    assert f"standby postgres@127.0.0.1:{port} (site east): unreachable:" in out
    [line] = [x for x in err.splitlines() if "standby" in x]
    assert line.startswith(f"medark: his: standby postgres@127.0.0.1:{port} unreachable: ")
    assert "switch-over now: would LOSE data" in out
