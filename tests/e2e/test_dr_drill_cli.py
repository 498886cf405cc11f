"""`medark dr drill` through the real command, against a real primary/standby pair,
pgbouncer in front and the test HIS app writing orders through it the whole time:

- a drill under load: exit 0 with the time to healthy, its steps in order, a second HIS
  process (the east site's command service) started against the sandbox copy of the
  standby, checked healthy, and gone afterwards with the sandbox removed; the east
  site's systemd unit skipped with a note, the main site's services not touched; and
  production untouched: no client request failed, every write landed on the primary,
  replication streamed in every sample with the same walsender, the roles and the
  pooler's target are as before;
- a drill whose health check never passes exits 29 with one line, and still tears
  everything down;
- `dr history` lists both drills.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Cli
from dr_site import Site, his_site
from pg_server import can_run_servers, free_port, make_base, wait_for
from pgbouncer_server import pgbouncer_bin
from test_dr_switchover_cli import config_text, dr, roles
from write_load import HIS_APP, WriteLoad

pytestmark = [
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
    pytest.mark.skipif(pgbouncer_bin() is None, reason="pgbouncer is not installed"),
]

ROOT = HIS_APP.resolve().parent.parent
STEPS = ["preflight", "clone standby", "start services", "health checks", "tear down"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with his_site(tmp_path_factory.mktemp("dr-drill")) as built:
        yield built


def drill_config(site: Site, app_port: int, check_url: str, check_timeout: str) -> Path:
    """The switch-over tests' configuration with the drill's own services and checks: at
    east, a command service that starts a second HIS app on `app_port` against
    MEDARK_DR_NEW_PRIMARY_PORT (the sandbox in a drill), and a systemd unit."""
    w = site.work
    base = config_text(site)
    head = base[:base.index("[[dr.his.services.main]]")]
    app = shlex.join([sys.executable, str(HIS_APP), "--port", str(app_port), "--dsn"])
    dsn = '"host=127.0.0.1 port=$MEDARK_DR_NEW_PRIMARY_PORT user=postgres dbname=postgres"'
    start = (f"PYTHONPATH={ROOT} {app} {dsn} </dev/null >>{w}/drill-app.log "
             f"2>&1 & echo $! > {w}/drill-app.pid; echo \"start drill=$MEDARK_DR_DRILL "
             f"port=$MEDARK_DR_NEW_PRIMARY_PORT pid=$!\" >> {w}/east.log")
    stop = (f"kill $(cat {w}/drill-app.pid) && rm {w}/drill-app.pid && "
            f"echo stop >> {w}/east.log")
    text = head + f"""
[[dr.his.services.main]]
name = "his-interface"
start = "echo started >> {w}/main.log"
stop = "echo stopped >> {w}/main.log"

[[dr.his.services.east]]
name = "his-app"
start = '{start}'
stop = '{stop}'

[[dr.his.services.east]]
name = "his-reports"
unit = "medark-test-his-reports.service"

[[dr.his.health]]
type = "http"
name = "drill-app"
site = "east"
url = "{check_url}"
timeout = "{check_timeout}"

[[dr.his.health]]
type = "sql"
name = "writable"
query = "SELECT NOT pg_is_in_recovery()"
expect = "true"

[[dr.his.health]]
type = "tcp"
name = "main-only"
site = "main"
address = "127.0.0.1:{free_port()}"
timeout = "1s"
"""
    path = w / "drill.toml"
    path.write_text(text, encoding="utf-8")
    return path


class ReplicationSampler:
    """Reads the primary's pg_stat_replication every 0.1 s until stopped."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.samples: list[list[tuple[int, str]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="repl-sampler", daemon=True)

    def start(self) -> ReplicationSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                try:
                    rows = conn.execute("SELECT pid, state FROM pg_stat_replication "
                                        "ORDER BY pid").fetchall()
                    self.samples.append([(int(r[0]), str(r[1])) for r in rows])
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self._stop.wait(0.1)


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def drill_pids(site: Site) -> list[int]:
    log = site.work / "east.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [int(line.rsplit("pid=", 1)[1]) for line in lines if "pid=" in line]


@pytest.fixture
def drill_dir(cli: Cli, site: Site) -> Iterator[Path]:
    """The sandboxes' directory (MEDARK_DR_DRILL_DIR), reachable by the postgres user that
    runs them; a drill's app a failed test left running is killed."""
    (site.work / "east.log").unlink(missing_ok=True)
    path = make_base()
    cli.env["MEDARK_DR_DRILL_DIR"] = str(path)
    yield path
    for pid in drill_pids(site):
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def test_a_drill_under_load_leaves_production_untouched(cli: Cli, site: Site,
                                                        drill_dir: Path) -> None:
    pair = site.pair
    app_port = free_port()
    config = drill_config(site, app_port, f"http://127.0.0.1:{app_port}/health", "60s")
    before = roles(pair)
    walsender = pair.primary.sql("SELECT pid FROM pg_stat_replication")
    load = WriteLoad(site.app.port, prefix="drill-", clients=2).start()
    sampler = ReplicationSampler(pair.primary.dsn).start()
    try:
        wait_for(lambda: load.acked() >= 20, timeout=60, what="orders before the drill")
        result = dr(cli, site, config, "drill", "his", "--json")
        after = load.acked() + 20
        wait_for(lambda: load.acked() >= after, timeout=60, what="orders after the drill")
    finally:
        sampler.stop()
        record = load.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["kind"] == "drill" and doc["status"] == "succeeded", doc
    assert 0 < doc["switch_seconds"] <= doc["total_seconds"], doc
    assert doc["new_primary"] is None and doc["data_loss"] is None and doc["error"] is None
    steps = {s["name"]: s for s in doc["steps"]}
    assert [s["name"] for s in doc["steps"]] == STEPS, doc["steps"]
    assert all(s["result"] == "ok" for s in doc["steps"]), doc["steps"]
    assert "skipped systemd unit his-reports" in steps["start services"]["detail"]
    assert "drill-app ok" in steps["health checks"]["detail"]
    assert "writable ok" in steps["health checks"]["detail"]
    assert "main-only" not in steps["health checks"]["detail"]

    # the drill's app ran against the sandbox, with MEDARK_DR_DRILL=1, and is gone
    (started,) = [line for line in (site.work / "east.log").read_text().splitlines()
                  if line.startswith("start")]
    assert "drill=1" in started, started
    sandbox_port = int(started.split("port=")[1].split()[0])
    assert sandbox_port not in (pair.primary.port, pair.standby.port)
    assert f"127.0.0.1:{sandbox_port}" in steps["clone standby"]["detail"]
    (pid,) = drill_pids(site)
    assert gone(pid) and not answers(app_port) and not answers(sandbox_port)
    assert not (site.work / "drill-app.pid").exists()
    assert os.listdir(drill_dir) == []
    assert not (site.work / "main.log").exists()  # the primary site's services: untouched

    # production: no request failed, every write on the primary, replication streamed
    assert record.failures == [], record.failures[:5]
    assert record.acks and {a.server_port for a in record.acks} == {pair.primary.port}
    assert sampler.errors == [] and len(sampler.samples) >= 5
    assert all(len(s) == 1 and s[0][1] == "streaming" for s in sampler.samples), \
        [s for s in sampler.samples if len(s) != 1 or s[0][1] != "streaming"][:3]
    assert {s[0][0] for s in sampler.samples} == {int(walsender)}
    assert pair.primary.sql("SELECT pid FROM pg_stat_replication") == walsender
    assert roles(pair) == before == {pair.primary.port: "f", pair.standby.port: "t"}
    with psycopg.connect(site.pooler.client_dsn, prepare_threshold=None) as conn:
        row = conn.execute("SELECT inet_server_port()").fetchone()
    assert row is not None and row[0] == pair.primary.port
    refs = {a.ref for a in record.acks}
    found = pair.primary.sql("SELECT string_agg(ref, ',') FROM orders WHERE ref LIKE "
                             "'drill-%'")
    assert refs <= set(found.split(","))


def test_a_drill_whose_check_never_passes_exits_29_and_tears_down(
        cli: Cli, site: Site, drill_dir: Path) -> None:
    pair = site.pair
    app_port = free_port()
    config = drill_config(site, app_port, f"http://127.0.0.1:{free_port()}/health", "2s")
    before = roles(pair)
    walsender = pair.primary.sql("SELECT pid FROM pg_stat_replication")
    result = dr(cli, site, config, "drill", "his")
    assert result.returncode == 29, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "drill: health check drill-app did not pass within its timeout" in lines[0]
    out = result.stdout
    assert "health checks" in out and "FAILED" in out and "tear down" in out, out
    (pid,) = drill_pids(site)
    wait_for(lambda: gone(pid), timeout=10, what="the drill's app to be gone")
    assert not answers(app_port)
    assert os.listdir(drill_dir) == []
    assert roles(pair) == before
    assert pair.primary.sql("SELECT state FROM pg_stat_replication") == "streaming"
    assert pair.primary.sql("SELECT pid FROM pg_stat_replication") == walsender

    history = json.loads(dr(cli, site, config, "history", "his", "--json").stdout)
    drills = [a for a in history if a["kind"] == "drill"]
    assert [a["status"] for a in drills[:2]] == ["failed", "succeeded"], history
    assert drills[0]["steps"][-1]["name"] == "tear down"
    assert drills[0]["switch_seconds"] is None and drills[1]["switch_seconds"] > 0
    text = dr(cli, site, config, "history", "his").stdout
    assert " his drill failed by " in text and " his drill succeeded by " in text, text


def test_a_drill_accepts_yes_and_refuses_without_a_standby(cli: Cli, site: Site,
                                                           drill_dir: Path) -> None:
    """--yes is accepted (the drills above ran without it, off a terminal: nothing in
    production changes); a standby that cannot be reached is refused in preflight with
    26, before anything is created."""
    text = config_text(site).replace(f"port={site.pair.standby.port}",
                                     f"port={free_port()}")
    config = site.work / "nostandby.toml"
    config.write_text(text, encoding="utf-8")
    result = dr(cli, site, config, "drill", "his", "--yes")
    assert result.returncode == 26, result.stdout + result.stderr
    assert "give --yes" not in result.stderr
    assert "no standby to switch to" in result.stderr
    assert os.listdir(drill_dir) == []
