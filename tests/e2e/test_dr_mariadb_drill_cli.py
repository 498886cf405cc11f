"""`medark dr drill` of a MariaDB system through the real command, against a throwaway
GTID primary/replica pair (tests/mariadb_pair.py), a writer inserting into the primary and
a sampler reading the replica's replication threads the whole time:

- a drill under load: exit 0 with the time to healthy, its steps in order; the east
  site's command service writes a row into the sandbox copy of the standby, the sql
  health check finds it there (so the checks ran on the copy), and the row never reaches
  the primary or the standby; no write failed, both replication threads ran in every
  sample, and the sandbox's directory and server are gone afterwards;
- a drill whose health check never passes exits 29 with one line and still tears down.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Cli
from mariadb_pair import mariadb_pair, wait_for
from mysql_server import (
    BACKUP_PASSWORD,
    BACKUP_USER,
    can_run_servers,
    have_mariadb_backup,
    make_base,
)
from test_dr_mariadb_cli import Site, Writer, config_text, dr, notes_on

from medark.sources.mysql.replication import node_state

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(not have_mariadb_backup(), reason="mariadb-backup is not installed"),
]

STEPS = ["preflight", "clone standby", "start services", "health checks", "tear down"]
MARKER = "drill-marker"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with mariadb_pair() as pair:
        work = tmp_path_factory.mktemp("dr-mariadb-drill")
        (work / "password").write_text(BACKUP_PASSWORD + "\n", encoding="utf-8")
        built = Site(pair, work)
        built.hook_file.write_text(f"{pair.primary.port}\n", encoding="utf-8")
        yield built


@pytest.fixture
def drill_dir(cli: Cli, site: Site) -> Iterator[Path]:
    """The sandboxes' directory (MEDARK_DR_DRILL_DIR), reachable by the mysql OS user
    that runs them."""
    (site.work / "east.log").unlink(missing_ok=True)
    path = make_base()
    cli.env["MEDARK_DR_DRILL_DIR"] = str(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def drill_config(site: Site, check: str) -> Path:
    """The switch tests' configuration with the drill's own east service (it writes
    MARKER into whatever MEDARK_DR_NEW_PRIMARY_PORT names: the sandbox in a drill) and
    `check` as the health checks."""
    w = site.work
    base = config_text(site)
    head = base[:base.index("[[dr.lis.services.east]]")]
    write = (f"MYSQL_PWD={BACKUP_PASSWORD} mariadb --no-defaults --protocol=TCP "
             "--host=$MEDARK_DR_NEW_PRIMARY_HOST --port=$MEDARK_DR_NEW_PRIMARY_PORT "
             f"--user={BACKUP_USER} -e \"INSERT INTO his.visits (note) VALUES ('{MARKER}')\"")
    log = f'echo "start drill=$MEDARK_DR_DRILL port=$MEDARK_DR_NEW_PRIMARY_PORT" >> {w}/east.log'
    text = head + f"""
[[dr.lis.services.east]]
name = "lis-interface"
start = '''{write} && {log}'''
stop = "echo stop >> {w}/east.log"
{check}"""
    path = w / "drill.toml"
    path.write_text(text, encoding="utf-8")
    return path


LANDED = f"""
[[dr.lis.health]]
type = "sql"
name = "landed"
query = "SELECT COUNT(*) FROM his.visits WHERE note = '{MARKER}'"
expect = "1"
timeout = "30s"

[[dr.lis.health]]
type = "sql"
name = "writable"
query = "SELECT NOT @@read_only"
expect = "true"
timeout = "30s"
"""

NEVER = """
[[dr.lis.health]]
type = "sql"
name = "still-read-only"
query = "SELECT @@read_only"
expect = "1"
timeout = "2s"
"""


@dataclass
class Sampler:
    """The replica's replication threads, read every 0.1 s while the drill runs."""

    site: Site
    samples: list[tuple[str | None, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: bool = False

    def start(self) -> Sampler:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        replica = self.site.pair.replica
        while not self._stop:
            try:
                state = node_state(replica.admin_dsn, BACKUP_PASSWORD)
                self.samples.append((state.slave_io_running, state.slave_sql_running))
            except Exception as exc:  # recorded, asserted empty
                self.errors.append(str(exc))
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop = True
        self.thread.join(timeout=60)


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def sandbox_servers(drill_dir: Path) -> list[int]:
    """mariadbd processes started on a copy under `drill_dir`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(drill_dir).encode() in cmdline:
                found.append(int(entry))
    return found


def test_a_mariadb_drill_under_load_leaves_production_untouched(
        cli: Cli, site: Site, drill_dir: Path) -> None:
    pair = site.pair
    config = drill_config(site, LANDED)
    writer = Writer(site, "drill-w").start()
    sampler = Sampler(site).start()
    try:
        wait_for(lambda: len(writer.acks) >= 20, 60, "rows before the drill")
        result = dr(cli, site, config, "drill", "lis", "--json")
        after = len(writer.acks) + 20
        wait_for(lambda: len(writer.acks) >= after, 60, "rows after the drill")
    finally:
        sampler.stop()
        writer.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["kind"] == "drill" and doc["status"] == "succeeded", doc
    assert 0 < doc["switch_seconds"] <= doc["total_seconds"], doc
    assert doc["error"] is None, doc
    steps = {s["name"]: s for s in doc["steps"]}
    assert [s["name"] for s in doc["steps"]] == STEPS, doc["steps"]
    assert all(s["result"] == "ok" for s in doc["steps"]), doc["steps"]
    assert "landed ok" in steps["health checks"]["detail"]
    assert "writable ok" in steps["health checks"]["detail"]
    print(f"time to healthy {doc['switch_seconds']:.2f} s; clone: "
          f"{steps['clone standby']['detail']}")

    # the east service wrote into the sandbox (MEDARK_DR_DRILL=1), which is gone
    (started,) = [line for line in (site.work / "east.log").read_text().splitlines()
                  if line.startswith("start")]
    assert "drill=1" in started, started
    sandbox_port = int(started.split("port=")[1].split()[0])
    assert sandbox_port not in (pair.primary.port, pair.replica.port)
    assert f"127.0.0.1:{sandbox_port}" in steps["clone standby"]["detail"]
    assert not answers(sandbox_port)
    assert os.listdir(drill_dir) == [] and sandbox_servers(drill_dir) == []
    assert not (site.work / "main.log").exists()  # the primary site's services: untouched

    # production: no write failed, all on the primary and replicated; threads always ran
    assert writer.failures == 0
    assert {port for _n, port, _t in writer.acks} == {pair.primary.port}
    assert sampler.errors == [] and len(sampler.samples) >= 5
    assert all(s == ("Yes", "Yes") for s in sampler.samples), \
        [s for s in sampler.samples if s != ("Yes", "Yes")][:3]
    wait_for(pair.caught_up, 60, "the replica to catch up")
    acked = {n for n, _p, _t in writer.acks}
    assert acked <= notes_on(pair.primary, "drill-w")
    assert acked <= notes_on(pair.replica, "drill-w")
    assert notes_on(pair.primary, MARKER) == set() == notes_on(pair.replica, MARKER)
    assert pair.primary.value("@@read_only") == "0"
    assert pair.replica.value("@@read_only") == "1"
    state = node_state(pair.replica.admin_dsn, BACKUP_PASSWORD)
    assert state.streaming and state.master_port == pair.primary.port


def test_a_mariadb_drill_whose_check_never_passes_exits_29_and_tears_down(
        cli: Cli, site: Site, drill_dir: Path) -> None:
    pair = site.pair
    config = drill_config(site, NEVER)
    result = dr(cli, site, config, "drill", "lis")
    assert result.returncode == 29, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "drill: health check still-read-only did not pass within its timeout" in lines[0]
    out = result.stdout
    assert "health checks" in out and "FAILED" in out and "tear down" in out, out
    assert os.listdir(drill_dir) == [] and sandbox_servers(drill_dir) == []
    assert (site.work / "east.log").read_text().splitlines()[-1] == "stop"
    state = node_state(pair.replica.admin_dsn, BACKUP_PASSWORD)
    assert state.streaming and state.master_port == pair.primary.port
    wait_for(pair.caught_up, 60, "the replica to catch up")
    assert notes_on(pair.primary, MARKER) == set() == notes_on(pair.replica, MARKER)

    history = json.loads(dr(cli, site, config, "history", "lis", "--json").stdout)
    drills = [a for a in history if a["kind"] == "drill"]
    assert drills[0]["status"] == "failed" and drills[0]["switch_seconds"] is None
    assert drills[0]["steps"][-1]["name"] == "tear down"
