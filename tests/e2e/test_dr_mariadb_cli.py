"""`medark dr switchover` and `dr failover` of a MariaDB system through the real command,
against a throwaway GTID primary/replica pair (tests/mariadb_pair.py), with a hook as the
client switch (it writes the new primary's port to a file, as a virtual IP would move) and
a writer inserting rows the whole time through whatever the hook file names:

- a switch-over under load: exit 0, every acknowledged row is on the new primary, the old
  primary replicates from the new one, the hook file names the new primary, the services
  moved site; and the switch back restores the roles;
- refusals change nothing and say why in one line: a standby whose replication is
  stopped (26), a health check failing before the switch (29);
- a failover after kill -9 of the primary: exit 0, the data-loss window reported (unknown
  beyond the standby's GTID: the old primary cannot be read), writes go to the new one.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Cli
from mariadb_pair import APP_PASSWORD, APP_USER, MariaPair, ReplServer, mariadb_pair, wait_for
from mysql_server import BACKUP_PASSWORD, BACKUP_USER, can_run_servers, free_port

from medark.sources.mysql.replication import node_state

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


@dataclass
class Site:
    pair: MariaPair
    work: Path

    @property
    def catalog(self) -> str:
        return f"sqlite:///{self.work / 'catalog.db'}"

    @property
    def hook_file(self) -> Path:
        return self.work / "primary_port"

    def server(self, port: int) -> ReplServer:
        return self.pair.primary if self.pair.primary.port == port else self.pair.replica


def config_text(site: Site, health_address: str | None = None,
                fencing: str = '"readonly"') -> str:
    p, r, w, hook = site.pair.primary, site.pair.replica, site.work, site.hook_file
    extra = "" if health_address is None else f"""
[[dr.lis.health]]
type = "tcp"
name = "analyser-link"
address = "{health_address}"
timeout = "1s"
"""
    return f"""
[sites.main]
name = "main"
location = "CN-SC"

[sites.east]
name = "east"
location = "CN-SC"
role = "campus"

[repositories.local]
site = "main"
url = "/nonexistent/medark"
password_file = "/nonexistent/password"

[systems.lis]
owner = "IT"

[[systems.lis.sources]]
type = "mariadb"
dsn = "mysql://{BACKUP_USER}@127.0.0.1:{p.port}/"

[plans.lis]
system = "lis"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "1h"
retention = {{ daily = 14 }}

[dr.lis]
feed = "stream"
max_lag = "1h"
fencing = {fencing}

[dr.lis.primary]
kind = "mariadb"
site = "main"
dsn = "mysql://{BACKUP_USER}@127.0.0.1:{p.port}/"
password_file = "{w / 'password'}"
control = {{ datadir = "{p.data}", mariadbd = "/usr/sbin/mariadbd" }}

[dr.lis.standby]
kind = "mariadb"
site = "east"
dsn = "mysql://{BACKUP_USER}@127.0.0.1:{r.port}/"
password_file = "{w / 'password'}"
control = {{ datadir = "{r.data}", mariadbd = "/usr/sbin/mariadbd" }}

[dr.lis.client_switch]
type = "hook"
command = "echo $MEDARK_DR_NEW_PRIMARY_PORT > {hook}.tmp && mv {hook}.tmp {hook}"

[[dr.lis.services.main]]
name = "lis-interface"
start = "echo started >> {w}/main.log"
stop = "echo stopped >> {w}/main.log"

[[dr.lis.services.east]]
name = "lis-interface"
start = "echo started >> {w}/east.log"
stop = "echo stopped >> {w}/east.log"

[[dr.lis.health]]
type = "sql"
name = "writable"
query = "SELECT NOT @@read_only"
expect = "true"
timeout = "20s"
{extra}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with mariadb_pair() as pair:
        work = tmp_path_factory.mktemp("dr-mariadb")
        (work / "password").write_text(BACKUP_PASSWORD + "\n", encoding="utf-8")
        built = Site(pair, work)
        built.hook_file.write_text(f"{pair.primary.port}\n", encoding="utf-8")
        yield built


def write_config(site: Site, **kwargs: str) -> Path:
    path = site.work / "medark.toml"
    path.write_text(config_text(site, **kwargs), encoding="utf-8")
    return path


def dr(cli: Cli, site: Site, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli("dr", *args, "--config", config, "--catalog", site.catalog, check=False,
                 timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return subprocess.CompletedProcess(args, result.returncode, result.stdout, result.stderr)


@dataclass
class Writer:
    """Inserts one row per statement as the application account into the server the hook
    file names, the whole time; keeps every acknowledged row with the port it went to."""

    site: Site
    prefix: str
    acks: list[tuple[str, int, float]] = field(default_factory=list)
    failures: int = 0
    last_error: str = ""
    _stop: bool = False

    def start(self) -> Writer:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop:
            n += 1
            note = f"{self.prefix}{n}"
            try:
                port = int(self.site.hook_file.read_text().strip())
            except (OSError, ValueError):
                continue
            done = subprocess.run(
                ["mariadb", "--no-defaults", "--protocol=TCP", "--host=127.0.0.1",
                 f"--port={port}", f"--user={APP_USER}", "--connect-timeout=2", "-e",
                 f"INSERT INTO his.visits (note) VALUES ('{note}')"],
                capture_output=True, check=False, timeout=60,
                env=dict(os.environ, MYSQL_PWD=APP_PASSWORD))
            if done.returncode == 0:
                self.acks.append((note, port, time.monotonic()))
            else:
                self.failures += 1
                said = done.stderr.decode(errors="replace").splitlines()
                self.last_error = next((line for line in said if "ERROR" in line),
                                       " ".join(said)[-300:])
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop = True
        self.thread.join(timeout=60)

    def first_on(self, port: int, after: float) -> float | None:
        return next((t for _n, p, t in self.acks if p == port and t > after), None)

    def state(self) -> str:
        """What it has done so far, for a timeout's message."""
        last = f", the last to port {self.acks[-1][1]}" if self.acks else ""
        return (f"{len(self.acks)} rows acknowledged{last}; {self.failures} writes failed"
                + (f", the last with: {self.last_error}" if self.last_error else ""))


def notes_on(server: ReplServer, prefix: str) -> set[str]:
    out = server.root_sql(f"SELECT note FROM his.visits WHERE note LIKE '{prefix}%'")
    return set(out.split()) if out else set()


def roles(site: Site) -> dict[int, tuple[str, bool]]:
    """port -> (@@read_only, replicating)."""
    return {s.port: (s.value("@@read_only"), bool(s.root_sql("SHOW SLAVE STATUS")))
            for s in (site.pair.primary, site.pair.replica)}


def switch_once(cli: Cli, site: Site, config: Path, new: ReplServer, old: ReplServer,
                times: list[dict[str, float]]) -> None:
    writer = Writer(site, f"sw{new.port}-").start()
    wait_for(lambda: len(writer.acks) >= 20, 60, "rows before the switch")
    started, wall = time.monotonic(), time.time()
    result = dr(cli, site, config, "switchover", "lis", "--yes", "--json")
    if result.returncode != 0:
        writer.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: writer.first_on(new.port, started) is not None, 30,
             "a row on the new primary")
    time.sleep(0.3)
    writer.stop()
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    first = writer.first_on(new.port, started)
    assert first is not None
    times.append({"total": doc["total_seconds"], "switch": doc["switch_seconds"],
                  "to_first_write": round(first - started, 3),
                  "to_first_step": round(_epoch(doc["steps"][0]["started"]) - wall, 3),
                  "failed_writes": writer.failures})
    assert doc["status"] == "succeeded" and doc["error"] is None, doc
    assert doc["new_primary"] == f"{BACKUP_USER}@127.0.0.1:{new.port}"
    names = [s["name"] for s in doc["steps"]]
    assert names[:5] == ["preflight", f"stop services at {_site(site, old)}", "hold clients",
                         "fence primary read-only", "wait for standby"], names
    assert names[5:] == ["promote standby", "redirect clients",
                         f"start services at {_site(site, new)}", "health checks",
                         "reinstate old primary"], names
    assert all(s["result"] == "ok" for s in doc["steps"]), doc["steps"]
    acked = {n for n, _p, _t in writer.acks}
    assert acked <= notes_on(new, writer.prefix), sorted(acked - notes_on(new, writer.prefix))
    assert site.hook_file.read_text().strip() == str(new.port)
    assert roles(site) == {new.port: ("0", False), old.port: ("1", True)}
    follows = node_state(old.admin_dsn, BACKUP_PASSWORD)
    assert follows.streaming and follows.master_port == new.port, follows
    new.app_sql("INSERT INTO his.visits (note) VALUES ('after-switch')")
    wait_for(lambda: "after-switch" in notes_on(old, "after-switch"), 30,
             "the old primary to replicate from the new one")


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _site(site: Site, server: ReplServer) -> str:
    return "main" if server is site.pair.primary else "east"


def test_a_switchover_under_load_loses_nothing_and_the_old_primary_follows(
        cli: Cli, site: Site) -> None:
    pair = site.pair
    config = write_config(site)
    times: list[dict[str, float]] = []
    switch_once(cli, site, config, pair.replica, pair.primary, times)
    switch_once(cli, site, config, pair.primary, pair.replica, times)  # and back
    print(f"\nmariadb switch-over times: {times}")
    logs = {name: (site.work / f"{name}.log").read_text().split()
            for name in ("main", "east")}
    assert logs == {"main": ["stopped", "started"], "east": ["started", "stopped"]}
    history = json.loads(dr(cli, site, config, "history", "lis", "--json").stdout)
    assert [a["kind"] for a in history[:2]] == ["switchover", "switchover"]
    assert all(a["status"] == "succeeded" for a in history[:2])


def test_a_standby_not_replicating_is_refused_with_26(cli: Cli, site: Site) -> None:
    pair = site.pair
    config = write_config(site)
    before = roles(site)
    pair.replica.root_sql("STOP SLAVE")
    try:
        result = dr(cli, site, config, "switchover", "lis", "--yes")
        assert roles(site) == before
    finally:
        pair.replica.root_sql("START SLAVE")
    assert result.returncode == 26, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert f"the standby {BACKUP_USER}@127.0.0.1:{pair.replica.port} is not replicating " \
        "(threads IO No, SQL No)" in line, line
    assert site.hook_file.read_text().strip() == str(pair.primary.port)


def test_a_failing_health_check_before_the_switch_is_refused_with_29(cli: Cli,
                                                                       site: Site) -> None:
    config = write_config(site, health_address=f"127.0.0.1:{free_port()}")
    before = roles(site)
    result = dr(cli, site, config, "switchover", "lis", "--yes")
    assert result.returncode == 29, result.stdout + result.stderr
    assert "health check analyser-link fails before the switch" in result.stderr
    assert roles(site) == before


def test_a_failure_before_promotion_rolls_back_by_itself(cli: Cli, site: Site) -> None:
    """A fencing hook that fails (after the standby caught up, before promotion): exit 28,
    the old primary writable again, its services started again, the clients where they
    were."""
    pair = site.pair
    config = write_config(site, fencing='{ type = "hook", command = "echo no power; exit 3" }')
    before = roles(site)
    result = dr(cli, site, config, "switchover", "lis", "--yes", "--json")
    assert result.returncode == 28, result.stdout + result.stderr
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["status"] == "rolled_back", doc
    names = [(s["name"], s["result"]) for s in doc["steps"]]
    assert names[-2:] == [("fence primary: hook", "failed"), ("roll back", "ok")], names
    assert "fencing hook: exit 3: no power" in doc["error"]["message"]
    assert roles(site) == before
    pair.primary.app_sql("INSERT INTO his.visits (note) VALUES ('after-rollback')")
    assert (site.work / "main.log").read_text().split()[-2:] == ["stopped", "started"]
    assert site.hook_file.read_text().strip() == str(pair.primary.port)


def test_status_of_the_pair_counts_transactions_not_bytes(site: Site) -> None:
    """mariadb_status.status (status.py's MariaDB branch): roles, threads, lag in
    transactions with seconds never 0 while behind, health; a stopped SQL thread is 26."""
    from medark.service.dr.mariadb_status import status
    from medark.service.plans import load_plans

    pair = site.pair
    conf = load_plans(write_config(site)).dr["lis"]
    wait_for(pair.caught_up, 30, "the standby to catch up")
    found = status("lis", conf)
    assert found.verdict() is None, found.public()
    assert [(n.configured, n.role, n.receiver_status) for n in found.nodes] == [
        ("primary", "primary", None), ("standby", "standby", "streaming")]
    assert found.streaming and found.lag_seconds == 0.0 and found.lag_bytes is None
    assert found.lag_basis == "0 transactions behind; caught up"
    assert found.would_lose_data is False and [h.ok for h in found.health] == [True]
    assert found.note.startswith("GTID primary primary: binlog 0-")
    pair.replica.root_sql("STOP SLAVE SQL_THREAD")
    try:
        pair.primary.app_sql("INSERT INTO his.visits (note) VALUES ('behind 1'); "
                             "INSERT INTO his.visits (note) VALUES ('behind 2')")
        behind = status("lis", conf)
    finally:
        pair.replica.root_sql("START SLAVE SQL_THREAD")
    problem = behind.verdict()
    assert problem is not None and problem.exit_code == 26, behind.public()
    assert "is not replicating (threads IO Yes, SQL No)" in str(problem)
    assert behind.lag_basis is not None and behind.lag_basis.startswith(
        "2 transactions behind; unknown"), behind.lag_basis
    assert behind.lag_seconds is None and behind.would_lose_data is True
    wait_for(pair.caught_up, 30, "the standby to catch up again")


def test_a_failover_that_would_lose_what_the_old_primary_holds_is_refused_with_27(
        cli: Cli, site: Site) -> None:
    """The standby stopped receiving and the old primary, still reachable, committed three
    more: the failover fences it, counts the three and refuses without --force."""
    pair = site.pair
    p, r = pair.primary, pair.replica
    config = write_config(site)
    r.root_sql("STOP SLAVE IO_THREAD")
    try:
        p.app_sql("; ".join(f"INSERT INTO his.visits (note) VALUES ('held {i}')"
                            for i in range(3)))
        result = dr(cli, site, config, "failover", "lis", "--yes", "--json")
        assert result.returncode == 27, result.stdout + result.stderr
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1, line
        assert "failover refused, it would lose 3 transactions the old primary holds" \
            in line and "--force takes the loss" in line, line
        loss = json.loads(result.stdout.strip().splitlines()[-1])["data_loss"]
        assert loss["transactions"] == 3 and loss["domains"] == {"0": 3}, loss
        assert loss["primary_gtid"] == p.value("@@gtid_binlog_pos"), loss
        # Fenced, not promoted: nothing is writable, the standby is still one.
        assert roles(site) == {p.port: ("1", False), r.port: ("1", True)}
        assert site.hook_file.read_text().strip() == str(p.port)
    finally:
        p.root_sql("SET GLOBAL read_only = 0")
        r.root_sql("START SLAVE IO_THREAD")
    wait_for(pair.caught_up, 30, "the standby to catch up again")


def test_a_failover_after_kill_9_reports_the_window_and_moves_the_writes(
        cli: Cli, site: Site) -> None:
    """Last in the module: the old primary stays down."""
    pair = site.pair
    old, new = pair.primary, pair.replica
    config = write_config(site)
    writer = Writer(site, "fo-").start()
    wait_for(lambda: len(writer.acks) >= 20, 60, "rows before the failover")
    assert old.proc is not None
    old.proc.kill()
    old.proc.wait()
    started = time.monotonic()
    result = dr(cli, site, config, "failover", "lis", "--yes", "--json")
    if result.returncode != 0:
        writer.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: writer.first_on(new.port, started) is not None, 30,
             "a row on the new primary")
    writer.stop()
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    first = writer.first_on(new.port, started)
    assert first is not None
    print(f"\nmariadb failover: total {doc['total_seconds']} s, switch "
          f"{doc['switch_seconds']} s, command to first write {first - started:.3f} s, "
          f"{writer.failures} writes failed")
    assert doc["status"] == "succeeded" and doc["new_primary"].endswith(f":{new.port}")
    loss = doc["data_loss"]
    assert loss["transactions"] is None and loss["primary_gtid"] is None, loss
    assert loss["summary"].startswith("unknown beyond the standby's GTID 0-1-"), loss
    names = [s["name"] for s in doc["steps"]]
    assert names == ["preflight", "hold clients", "fence old primary", "data-loss window",
                     "promote standby", "redirect clients", "start services at east",
                     "health checks"], names
    fence = next(s for s in doc["steps"] if s["name"] == "fence old primary")
    assert "unreachable, presumed down (no fencing hook" in fence["detail"], fence
    assert site.hook_file.read_text().strip() == str(new.port)
    assert new.value("@@read_only") == "0" and not new.root_sql("SHOW SLAVE STATUS")
    new.app_sql("INSERT INTO his.visits (note) VALUES ('after-failover')")
