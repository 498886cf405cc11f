"""`synchronous = true` (semi-synchronous replication) and `dr failback` of a MariaDB
system, on a throwaway GTID pair (tests/mariadb_pair.py) with the hook client switch and
the writer of test_dr_mariadb_cli.py:

- supervise (mariadb_status.status with supervise, what `dr supervise` runs) turns
  semi-sync on: Rpl_semi_sync_master_status ON on the primary, Rpl_semi_sync_slave_status
  ON on the replica; `dr status` reports it synchronous and changes nothing;
- a switch-over there and back keeps it on, the old primary's master side off;
- the standby stopped: a commit waits (up to the 10 s timeout), then goes on; supervise
  reports degraded and turns semi-sync back on once the standby returns;
- `block`: with the standby's IO thread stopped a commit waits past the degrade timeout,
  supervise says "blocked", and the commit completes once the standby is back;
- a failover after kill -9 of the primary under load loses no acknowledged row;
- failback: the old primary restarted as it was configured comes back writable, a split
  brain refused (30); holding a transaction the new primary lacks, refused naming the
  errant GTID (30); rebuilt, and restarted with read_only and rpl_semi_sync_slave_enabled
  in its options, it is reinstated, caught up and switched back to: every acknowledged
  row there, semi-sync on again.

`dr failback` and `dr supervise` reach MariaDB through status.py/failover.py's dispatch;
these tests call the service functions in-process (mariadb.failback, mariadb_status).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from mariadb_pair import ReplServer, mariadb_pair, wait_for
from mysql_server import BACKUP_PASSWORD, MY_USER, _which, can_run_servers
from test_dr_mariadb_cli import Site, Writer, config_text, dr, notes_on

from medark.config.dr import DrConf
from medark.service.plans import load_plans

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with mariadb_pair() as pair:
        work = tmp_path_factory.mktemp("dr-mariadb-sync")
        (work / "password").write_text(BACKUP_PASSWORD + "\n", encoding="utf-8")
        built = Site(pair, work)
        built.hook_file.write_text(f"{pair.primary.port}\n", encoding="utf-8")
        yield built


def write_config(site: Site, on_sync_loss: str = "degrade") -> Path:
    text = config_text(site).replace(
        'fencing = "readonly"\n',
        f'fencing = "readonly"\nsynchronous = true\non_sync_loss = "{on_sync_loss}"\n', 1)
    path = site.work / "medark.toml"
    path.write_text(text, encoding="utf-8")
    return path


def conf_of(config: Path) -> DrConf:
    return load_plans(config).dr["lis"]


def supervise(cli: Cli, site: Site, config: Path) -> dict[str, Any]:
    """`medark dr supervise lis --json`: the synchronous state it leaves."""
    result = dr(cli, site, config, "supervise", "lis", "--json")
    [system] = json.loads(result.stdout)["systems"]
    sync = system["synchronous"]
    assert isinstance(sync, dict), system
    return sync


def semi(server: ReplServer) -> dict[str, str]:
    out = server.root_sql("SHOW GLOBAL STATUS WHERE Variable_name IN ("
                          "'Rpl_semi_sync_master_status', 'Rpl_semi_sync_slave_status', "
                          "'Rpl_semi_sync_master_clients'); "
                          "SELECT 'master_enabled', @@rpl_semi_sync_master_enabled; "
                          "SELECT 'wait_point', @@rpl_semi_sync_master_wait_point")
    return dict(line.split("\t") for line in out.splitlines())


def synchronous_on(primary: ReplServer, replica: ReplServer) -> bool:
    p, r = semi(primary), semi(replica)
    return (p["Rpl_semi_sync_master_status"] == "ON" and p["master_enabled"] == "1"
            and p["wait_point"] == "AFTER_SYNC" and p["Rpl_semi_sync_master_clients"] == "1"
            and r["Rpl_semi_sync_slave_status"] == "ON" and r["master_enabled"] == "0")


def test_supervise_turns_semi_sync_on_and_status_reports_it(cli: Cli, site: Site) -> None:
    pair = site.pair
    config = write_config(site)
    shown = dr(cli, site, config, "status", "lis", "--json")
    before = json.loads(shown.stdout)["systems"][0]["synchronous"]
    assert before["state"] == "not set", before  # status changes nothing
    assert semi(pair.primary)["Rpl_semi_sync_master_status"] == "OFF"
    first = supervise(cli, site, config)
    assert first["state"] == "set", first
    assert synchronous_on(pair.primary, pair.replica), (semi(pair.primary),
                                                         semi(pair.replica))
    again = supervise(cli, site, config)
    assert again["state"] == "synchronous" and again["problem"] is None, again
    assert "AFTER_SYNC" in str(again["detail"]), again
    pair.primary.app_sql("INSERT INTO his.visits (note) VALUES ('semi-1')")
    acked = pair.primary.root_sql("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
    assert int(acked.split()[1]) >= 1, acked
    shown = dr(cli, site, config, "status", "lis", "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["systems"][0]["synchronous"]["state"] == "synchronous"


def test_a_synchronous_switchover_there_and_back_keeps_semi_sync(cli: Cli,
                                                                 site: Site) -> None:
    pair = site.pair
    config = write_config(site)
    times = []
    for new, old in ((pair.replica, pair.primary), (pair.primary, pair.replica)):
        writer = Writer(site, f"ss{new.port}-").start()
        wait_for(lambda w=writer: len(w.acks) >= 20, 60, "rows before the switch")
        started = time.monotonic()
        try:
            result = dr(cli, site, config, "switchover", "lis", "--yes", "--json")
            assert result.returncode == 0, result.stdout + result.stderr
            # a loaded machine: an insert caught by the switch may wait out the 10 s
            # semi-sync timeout, and the writer's next connection its own start
            wait_for(lambda w=writer, n=new, s=started: w.first_on(n.port, s) is not None,
                     60, f"a row on the new primary (port {new.port})",
                     lambda w=writer: f"{w.state()}; the hook names port "
                                      f"{site.hook_file.read_text().strip()}")
        finally:
            writer.stop()
        doc = json.loads(result.stdout.strip().splitlines()[-1])
        names = [s["name"] for s in doc["steps"]]
        assert names[-2:] == ["reinstate old primary", "synchronous replication"], names
        step = doc["steps"][-1]
        assert step["result"] == "ok" and step["detail"].startswith("set: "), step
        first = writer.first_on(new.port, started)
        assert first is not None
        times.append({"switch": doc["switch_seconds"], "total": doc["total_seconds"],
                      "to_first_write": round(first - started, 3),
                      "failed_writes": writer.failures})
        acked = {n for n, _p, _t in writer.acks}
        assert acked <= notes_on(new, writer.prefix)
        assert synchronous_on(new, old), (semi(new), semi(old))
    print(f"\nmariadb semi-sync switch-over times: {times}")


def test_the_standby_stopped_commits_wait_then_go_on_and_supervise_says_degraded(
        cli: Cli, site: Site) -> None:
    pair = site.pair
    config = write_config(site)
    assert supervise(cli, site, config)["state"] == "synchronous"
    assert pair.replica.proc is not None
    pair.replica.stop()
    done = threading.Event()
    took: list[float] = []

    def commit() -> None:
        start = time.monotonic()
        pair.primary.app_sql("INSERT INTO his.visits (note) VALUES ('while-down')")
        took.append(time.monotonic() - start)
        done.set()

    threading.Thread(target=commit, daemon=True).start()
    assert not done.wait(1.0), "a commit must wait for the semi-sync standby first"
    assert done.wait(60), "the commit must go on once the timeout is over"
    print(f"\nmariadb semi-sync: a commit with the standby stopped took {took[0]:.2f} s")
    assert semi(pair.primary)["Rpl_semi_sync_master_status"] == "OFF"
    lost = supervise(cli, site, config)
    assert lost["state"] == "degraded", lost
    assert "replication is asynchronous (on_sync_loss = degrade)" in str(lost["problem"])
    assert semi(pair.primary)["master_enabled"] == "0"  # no wait for a standby not there
    start = time.monotonic()
    pair.primary.app_sql("INSERT INTO his.visits (note) VALUES ('async-1')")
    print(f"mariadb semi-sync degraded: next commit {time.monotonic() - start:.3f} s")
    restart(pair.replica, "--read-only=1")  # SET GLOBALs are forgotten: supervise again
    pair.replica.root_sql("START SLAVE")
    wait_for(pair.caught_up, 60, "the standby to catch up")
    back = supervise(cli, site, config)
    assert back["state"] == "set", back
    assert synchronous_on(pair.primary, pair.replica)
    assert "while-down" in notes_on(pair.replica, "while-down")


def test_block_keeps_commits_waiting_until_the_standby_is_back(cli: Cli,
                                                               site: Site) -> None:
    pair = site.pair
    config = write_config(site, on_sync_loss="block")
    assert supervise(cli, site, config)["state"] == "set"  # the timeout raised to MariaDB's maximum
    assert pair.primary.value("@@rpl_semi_sync_master_timeout") == "18446744073709551615"
    pair.replica.root_sql("STOP SLAVE IO_THREAD")
    done = threading.Event()

    def commit() -> None:
        pair.primary.app_sql("INSERT INTO his.visits (note) VALUES ('blocked-1')")
        done.set()

    try:
        threading.Thread(target=commit, daemon=True).start()
        blocked = supervise(cli, site, config)
        assert blocked["state"] == "blocked", blocked
        assert "commits on the primary wait for it (on_sync_loss = block)" in str(
            blocked["problem"])
        assert not done.wait(12), "under block a commit must wait past the degrade timeout"
        assert semi(pair.primary)["Rpl_semi_sync_master_status"] == "ON"
    finally:
        pair.replica.root_sql("START SLAVE IO_THREAD")
    assert done.wait(30), "the commit must complete once the standby acknowledges it"
    assert "blocked-1" in notes_on(pair.replica, "blocked-1")
    assert supervise(cli, site, write_config(site))["state"] == "set"  # back to degrade
    assert pair.primary.value("@@rpl_semi_sync_master_timeout") == "10000"


def test_a_failover_after_kill_9_in_semi_sync_loses_no_acknowledged_row(
        cli: Cli, site: Site) -> None:
    """The old primary stays down for the failback test below."""
    pair = site.pair
    old, new = pair.primary, pair.replica
    config = write_config(site)
    assert supervise(cli, site, config)["state"] == "synchronous"
    writer = Writer(site, "sfo-").start()
    wait_for(lambda: len(writer.acks) >= 50, 60, "rows before the failover")
    assert old.proc is not None
    old.proc.kill()
    old.proc.wait()
    started = time.monotonic()
    result = dr(cli, site, config, "failover", "lis", "--yes", "--json")
    if result.returncode == 0:
        wait_for(lambda: writer.first_on(new.port, started) is not None, 30,
                 "a row on the new primary")
    writer.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    first = writer.first_on(new.port, started)
    assert first is not None
    print(f"\nmariadb semi-sync failover: total {doc['total_seconds']} s, switch "
          f"{doc['switch_seconds']} s, command to first write {first - started:.3f} s, "
          f"{len(writer.acks)} rows acknowledged, {writer.failures} writes failed")
    acked = {n for n, _p, _t in writer.acks}
    assert acked <= notes_on(new, "sfo-"), sorted(acked - notes_on(new, "sfo-"))
    step = doc["steps"][-1]
    assert step["name"] == "synchronous replication" and step["result"] == "ok", step
    assert step["detail"].startswith("degraded: "), step
    assert semi(new)["master_enabled"] == "0"  # commits do not wait for a standby gone


def restart(server: ReplServer, *options: str) -> None:
    """Start the server again as ReplServer.start does, with `options` added (what its
    option file would hold), and without the statement ReplServer.start runs after (on a
    replica or an old primary it would be a local, errant transaction)."""
    entry = pwd.getpwnam(MY_USER)
    argv = [_which("mariadbd") or "mariadbd", "--no-defaults", f"--datadir={server.data}",
            f"--port={server.port}", "--bind-address=127.0.0.1", f"--socket={server.socket}",
            f"--log-bin={server.base / 'binlog'}", f"--server-id={server.server_id}",
            "--binlog-format=ROW", "--gtid-strict-mode=1", "--log-slave-updates=1",
            f"--log-error={server.base / 'error.log'}", f"--pid-file={server.base / 'pid'}",
            "--skip-name-resolve", "--skip-slave-start",
            "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2", *options]
    server.proc = subprocess.Popen(argv, user=entry.pw_uid, group=entry.pw_gid,
                                   extra_groups=[], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=dict(os.environ, TZ="UTC"), cwd=str(server.base))
    wait_for(server._answers, 60, "mariadbd to start", server.log)


def failback(cli: Cli, site: Site, config: Path) -> dict[str, Any]:
    """`medark dr failback lis --yes --json`: its document, whatever the exit code."""
    result = dr(cli, site, config, "failback", "lis", "--yes", "--json")
    doc: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert (result.returncode == 0) == (doc["error"] is None), result.stderr
    return doc


def test_failback_refuses_a_writable_old_primary_then_returns_to_it(cli: Cli,
                                                                    site: Site) -> None:
    pair = site.pair
    home, away = pair.primary, pair.replica  # away has been the primary since the failover
    config = write_config(site)
    # Restarted as the pair configures it, nothing in its options keeping it read-only:
    # the gap dr.md names, it comes back writable. rpl_semi_sync_slave_enabled makes its
    # crash recovery drop from its binlog what was never acknowledged.
    restart(home, "--rpl-semi-sync-slave-enabled=1")
    assert home.value("@@read_only") == "0"
    refused = failback(cli, site, config)
    assert refused["status"] == "failed" and refused["error"]["exit_code"] == 30, refused
    assert "split brain" in refused["error"]["message"], refused
    assert [(s["name"], s["result"]) for s in refused["steps"]] == [("find roles", "failed")]
    # It took a write meanwhile: an errant transaction, refused naming it.
    home.root_sql("CREATE DATABASE errant_db; SET GLOBAL read_only = 1")
    errant = home.value("@@gtid_binlog_pos")
    refused = failback(cli, site, config)
    assert refused["error"]["exit_code"] == 30, refused
    message = refused["error"]["message"]
    # the write just made is named (with, on a loaded machine, a commit the 10 s
    # semi-sync timeout let through unacknowledged before the kill: errant too)
    assert message.startswith("lis: failback refused: ") and "errant GTIDs " in message \
        and (f"errant GTIDs {errant}" in message or f"..{errant})" in message) \
        and "rebuild it from the new primary or a backup" in message, message
    assert [(s["name"], s["result"]) for s in refused["steps"]] == [
        ("find roles", "ok"), ("reinstate configured primary", "failed")]
    assert not home.root_sql("SHOW SLAVE STATUS")  # nothing changed
    # "Rebuilt" by hand: what the new primary never received undone (the errant
    # database; on a loaded machine also the rows of commits the semi-sync timeout let
    # through unacknowledged before the kill), the node's GTID history set to what the
    # new primary took from it; then started read-only, as its option file should say.
    received = away.value("@@gtid_slave_pos")
    unreceived = sorted(notes_on(home, "sfo-") - notes_on(away, "sfo-"))
    undo = "".join(f"DELETE FROM his.visits WHERE note = '{n}'; " for n in unreceived)
    home.root_sql(f"SET SESSION sql_log_bin = 0; DROP DATABASE errant_db; {undo}"
                  f"RESET MASTER; SET GLOBAL gtid_slave_pos = '{received}'")
    home.stop()
    restart(home, "--read-only=1", "--rpl-semi-sync-slave-enabled=1")
    assert home.value("@@read_only") == "1"
    writer = Writer(site, "fb-").start()
    wait_for(lambda: len(writer.acks) >= 20, 60, "rows before the failback")
    started = time.monotonic()
    doc = failback(cli, site, config)
    if doc["status"] == "succeeded":
        wait_for(lambda: writer.first_on(home.port, started) is not None, 30,
                 "a row on the configured primary")
    writer.stop()
    # the whole error and every step's detail: pytest's repr of `doc` cuts them off
    assert doc["status"] == "succeeded" and doc["error"] is None, json.dumps(
        {"error": doc["error"], "steps": doc["steps"]}, indent=1)
    first = writer.first_on(home.port, started)
    assert first is not None
    print(f"\nmariadb failback: total {doc['total_seconds']} s, switch "
          f"{doc['switch_seconds']} s, to first write {first - started:.3f} s, "
          f"{writer.failures} writes failed; steps "
          + ", ".join(f"{s['name']} {s['seconds']}" for s in doc["steps"]))
    names = [s["name"] for s in doc["steps"]]
    assert names[:4] == ["find roles", "reinstate configured primary", "wait for catch-up",
                         "preflight"], names
    assert names[-2:] == ["reinstate old primary", "synchronous replication"], names
    assert all(s["result"] == "ok" for s in doc["steps"]), doc["steps"]
    assert doc["new_primary"].endswith(f":{home.port}")
    assert site.hook_file.read_text().strip() == str(home.port)
    acked = {n for n, _p, _t in writer.acks}
    everything = acked | {n for n in notes_on(away, "sfo-")}
    assert everything <= notes_on(home, "fb-") | notes_on(home, "sfo-"), sorted(
        everything - notes_on(home, "fb-") - notes_on(home, "sfo-"))
    assert home.value("@@read_only") == "0" and away.value("@@read_only") == "1"
    wait_for(lambda: synchronous_on(home, away), 10, "semi-sync on the configured primary",
             lambda: f"{semi(home)} {semi(away)}")
    history = json.loads(dr(cli, site, config, "history", "lis", "--json").stdout)
    assert [a["kind"] for a in history[:2]] == ["failback", "failback"]
