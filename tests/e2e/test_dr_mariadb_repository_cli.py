"""A MariaDB standby fed only from the binlogs in a Medark repository, through the real
commands: a GTID primary whose binlogs `medark mysql binlog-stream` archives, a physical
backup, `mysql restore --standby --start`, then

- `dr supervise` applies what was archived since (rows on the standby, its applied GTID
  the primary's), and a second run applies nothing;
- `dr status --json` shows the feed: the standby's GTID, the repository's newest, the
  transactions between;
- `dr drill` copies the standby into a sandbox while the repository holds commits it has
  not applied: the standby's position does not move under the copy, a `dr supervise`
  pass while the sandbox is up applies them, and the repository is as it was;
- with the stream stopped and commits the repository never got, a failover while the
  old primary still answers counts them and is refused (27);
- after kill -9 of the primary, `dr failover --yes` promotes the standby: writable, every
  archived commit on it, none of the others, and the loss reported as "unknown beyond"
  the repository's newest GTID, which is exactly where the commits it lacks begin;
- on a second site, under a write load the whole time: `dr switchover --yes` puts every
  acknowledged row on the new primary and makes the old one a read-only standby, which
  cannot advance while nothing streams the new primary's binlogs (exit 26, the step and
  `dr status` say what to run); once `mysql binlog-stream` runs against the new primary,
  `dr supervise` feeds the old one; `dr failback --yes` makes the configured primary a
  GTID replica of the DR node, switches back, and leaves the DR node a repository-fed
  standby again, which `dr supervise` keeps applying the primary's new writes to.

A logical backup is refused for --standby with one line. Real servers, no mocks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import MEDARK, PASSWORD, TEST_KDF, Result
from dr_site import preamble
from mariadb_pair import APP_PASSWORD, APP_USER, ReplServer, wait_for
from mysql_server import (
    BACKUP_PASSWORD,
    BACKUP_USER,
    can_run_servers,
    free_port,
    have_mariadb_backup,
    make_base,
    sql,
    stop_pid,
)

from medark.sources.mysql.replication import behind, merged

pytestmark = [pytest.mark.skipif(can_run_servers() is not None,
                                 reason=str(can_run_servers())),
              pytest.mark.skipif(not have_mariadb_backup(),
                                 reason="mariadb-backup is not installed"),
              pytest.mark.timeout(240)]


@dataclass
class Site:
    base: Path
    primary: ReplServer
    env: dict[str, str]
    standby_port: int = field(default_factory=free_port)
    standby_pid: int | None = None
    stream: subprocess.Popen[str] | None = None
    streams: list[subprocess.Popen[str]] = field(default_factory=list)
    """Further `mysql binlog-stream`s (of other servers)."""

    @property
    def repo(self) -> Path:
        return self.base / "repo"

    @property
    def standby_dir(self) -> Path:
        return self.base / "standby"

    @property
    def config(self) -> Path:
        return self.base / "medark.toml"

    @property
    def hook_file(self) -> Path:
        return self.base / "primary_port"

    def medark(self, *args: str, check: bool = True) -> Result:
        done = subprocess.run([MEDARK, *args], env=self.env, capture_output=True, text=True,
                              check=False, timeout=300)
        assert "Traceback" not in done.stderr, done.stderr
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"medark {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr}\nprimary log:\n{self.primary.log()}")
        return result

    def dr(self, *args: str) -> Result:
        return self.medark("dr", *args, "--config", str(self.config), "--catalog",
                           f"sqlite:///{self.base / 'catalog.db'}", check=False)

    def commit(self, prefix: str, n: int) -> list[str]:
        notes = [f"{prefix}-{i}" for i in range(n)]
        for note in notes:
            self.primary.app_sql(f"INSERT INTO his.visits (note) VALUES ('{note}')")
        return notes

    def archived(self) -> bool:
        """The repository holds the primary's binlog up to its current position."""
        file, position = self.primary.root_sql("SHOW MASTER STATUS").split("\t")[:2]
        status = self.medark("--repo", str(self.repo), "mysql", "status", "--json",
                             check=False)
        if status.returncode != 0:
            return False
        doc = status.json()
        return bool(doc["newest_binlog"] == file
                    and doc["newest_binlog_position"] >= int(position))

    def standby_sql(self, query: str) -> str:
        return sql(query, port=self.standby_port)

    def catalog(self) -> str:
        return f"sqlite:///{self.base / 'catalog.db'}"

    def stream_from(self, dsn: str) -> subprocess.Popen[str]:
        """`mysql binlog-stream` of the server at `dsn` into the repository."""
        proc = subprocess.Popen(
            [MEDARK, "--repo", str(self.repo), "mysql", "binlog-stream", "--dsn", dsn,
             "--json", "--interval", "0.2"], env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        return proc

    def primary_gtid(self) -> str:
        """@@gtid_binlog_pos, domains in order (as Medark prints positions)."""
        return merged(self.primary.value("@@gtid_binlog_pos"))

    def standby_gtid(self) -> str:
        return merged(self.standby_sql("SELECT @@gtid_binlog_pos"))

    def notes_on_standby(self) -> set[str]:
        return set(self.standby_sql("SELECT note FROM his.visits").split())


def config_text(site: Site) -> str:
    p, hook = site.primary, site.hook_file
    node = """
[dr.lis.{role}]
kind = "mariadb"
site = "{site}"
dsn = "mysql://{user}@127.0.0.1:{port}/"
password_file = "{password}"
control = {{ datadir = "{data}", mariadbd = "/usr/sbin/mariadbd" }}
"""
    return preamble(f"mysql://{BACKUP_USER}@127.0.0.1:{p.port}/", repositories=f"""
[repositories.local]
site = "main"
url = "/nonexistent/medark"
password_file = "/nonexistent/password"

[repositories.offsite]
site = "east"
url = "{site.repo}"
password_file = "{site.base / 'repo-password'}"
""", kind="mariadb", system="lis") + """
[dr.lis]
feed = "repository"
repository = "offsite"
max_lag = "1h"
fencing = "readonly"
""" + "".join(node.format(role=role, site=where, user=BACKUP_USER, port=port,
                          password=site.base / "db-password", data=data)
              for role, where, port, data in (
                  ("primary", "main", p.port, p.data),
                  ("standby", "east", site.standby_port, site.standby_dir))) + f"""
[dr.lis.client_switch]
type = "hook"
command = "echo $MEDARK_DR_NEW_PRIMARY_PORT > {hook}.tmp && mv {hook}.tmp {hook}"

[[dr.lis.health]]
type = "sql"
name = "writable"
query = "SELECT NOT @@read_only"
expect = "true"
timeout = "20s"
"""


@pytest.fixture
def site() -> Iterator[Site]:
    """A primary whose binlogs are streamed into the repository, no backup yet."""
    base = make_base()
    primary = ReplServer(base / "primary", free_port(), server_id=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_PASSWORD=PASSWORD, MEDARK_CACHE_DIR=str(base / "cache"))
    s = Site(base, primary, env)
    try:
        primary.base.mkdir()
        shutil.chown(primary.base, "mysql", "mysql")
        primary.init()
        primary.start()
        primary.root_sql(
            f"CREATE USER '{BACKUP_USER}'@'%' IDENTIFIED BY '{BACKUP_PASSWORD}'; "
            f"GRANT ALL ON *.* TO '{BACKUP_USER}'@'%' WITH GRANT OPTION; "
            f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'; "
            "CREATE DATABASE his; "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON his.* TO '{APP_USER}'@'%'; "
            "CREATE TABLE his.visits (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT)")
        (base / "repo-password").write_text(PASSWORD + "\n", encoding="utf-8")
        (base / "db-password").write_text(BACKUP_PASSWORD + "\n", encoding="utf-8")
        s.hook_file.write_text(f"{primary.port}\n", encoding="utf-8")
        s.config.write_text(config_text(s), encoding="utf-8")
        s.medark("--repo", str(s.repo), "init")
        s.stream = s.stream_from(primary.dsn)
        yield s
    finally:
        for stream in [s.stream, *s.streams]:
            if stream is not None and stream.poll() is None:
                stream.send_signal(signal.SIGTERM)
                stream.communicate(timeout=60)
        if s.standby_pid is not None:
            stop_pid(s.standby_pid)
        primary.stop()
        if not os.environ.get("KEEP_MY"):
            shutil.rmtree(base, ignore_errors=True)
            for extra in base.parent.glob(base.name + "*"):
                shutil.rmtree(extra, ignore_errors=True)


def _outcome(result: Result) -> dict[str, Any]:
    return dict(json.loads([ln for ln in result.stdout.splitlines()
                            if ln.startswith("{")][-1]))


def test_repository_fed_standby_supervise_status_and_failover(site: Site) -> None:
    repo = ("--repo", str(site.repo))
    kept = site.commit("before-backup", 3)

    # --standby needs a physical backup: a logical one is refused in one line.
    site.medark(*repo, "mysql", "backup", "--dsn", site.primary.dsn, "--logical")
    refused = site.medark(*repo, "mysql", "restore", "--target-dir",
                          str(site.base / "never"), "--standby", check=False)
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "needs a physical backup" in refused.stderr
    assert not (site.base / "never").exists()

    site.medark(*repo, "mysql", "backup", "--dsn", site.primary.dsn)
    kept += site.commit("after-backup", 4)
    wait_for(site.archived, 30, "the stream to archive the commits")
    restored = site.medark(*repo, "mysql", "restore", "--target-dir", str(site.standby_dir),
                           "--standby", "--start", "--port", str(site.standby_port),
                           "--json", "--timeout", "120").json()
    site.standby_pid = int(restored["pid"])
    primary_gtid = site.primary_gtid()
    assert restored["standby"]["gtid_binlog_pos"] == primary_gtid
    assert site.standby_sql("SELECT @@read_only, @@log_bin") == "1\t1"
    assert site.standby_gtid() == primary_gtid
    assert site.notes_on_standby() == set(kept)

    # dr supervise applies what was archived since; a second run applies nothing.
    round1 = site.commit("round1", 5)
    # a second GTID domain: later rounds have no transaction in it (mariadb-binlog then
    # exits 1 although it printed everything: the apply judges by the position reached)
    site.primary.root_sql("SET gtid_domain_id = 1; "
                          "INSERT INTO his.visits (note) VALUES ('round1-domain1')")
    round1 += ["round1-domain1"]
    wait_for(site.archived, 30, "the stream to archive round 1")
    first = site.dr("supervise", "lis", "--json")
    assert first.returncode == 0, first.stderr
    feed = first.json()["systems"][0]["repository_feed"]
    assert feed["applied_now"] == 6 and feed["transactions_behind"] == 0
    assert merged(feed["standby_gtid"]) == site.primary_gtid()
    assert feed["standby_gtid"].count(",") == 1  # both domains
    kept += round1
    assert site.notes_on_standby() == set(kept)
    second = site.dr("supervise", "lis", "--json")
    assert second.returncode == 0, second.stderr
    again = second.json()["systems"][0]["repository_feed"]
    assert again["applied_now"] == 0 and again["standby_gtid"] == feed["standby_gtid"]
    assert site.notes_on_standby() == set(kept)

    # dr status shows the feed without applying it.
    kept += site.commit("round2", 5)
    wait_for(site.archived, 30, "the stream to archive round 2")
    status = site.dr("status", "lis", "--json")
    assert status.returncode == 0, status.stderr
    system = status.json()["systems"][0]
    shown = system["repository_feed"]
    newest = site.primary_gtid()
    assert system["supported"] is True and system["feed"] == "repository"
    assert shown["standby_gtid"] == feed["standby_gtid"]
    assert shown["newest_gtid"] == newest and shown["transactions_behind"] == 5
    assert shown["newest_file"] and shown["newest_archived"]
    assert shown["transactions_behind_primary"] == 5
    assert shown["transactions_not_archived"] == 0
    assert "5 transactions behind the repository" in system["lag"]["basis"]
    assert {n["configured"]: n["role"] for n in system["nodes"]} == {
        "primary": "primary", "standby": "standby"}
    text = site.dr("status", "lis")
    assert "newest GTID" in text.stdout and newest in text.stdout

    # Another apply holding the standby's apply lock: this one applies nothing, exit 26.
    holder = subprocess.Popen(["mariadb", "--no-defaults", "--protocol=TCP",
                               "--host=127.0.0.1", f"--port={site.standby_port}",
                               f"--user={BACKUP_USER}", "--batch"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True,
                              env=dict(os.environ, MYSQL_PWD=BACKUP_PASSWORD))
    assert holder.stdin is not None
    holder.stdin.write("SELECT GET_LOCK('medark_standby_apply', 0);\n")
    holder.stdin.flush()
    try:
        wait_for(lambda: site.standby_sql("SELECT IS_USED_LOCK('medark_standby_apply')")
                 != "NULL", 10, "the other session to hold the apply lock")
        blocked = site.dr("supervise", "lis", "--json")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert blocked.returncode == 26, blocked.stderr
    assert "another apply is running" in blocked.stderr
    assert site.standby_gtid() == merged(feed["standby_gtid"])

    _drill(site, behind_by=5)
    assert site.standby_gtid() == newest

    # The stream stops; these commits never reach the repository.
    assert site.stream is not None
    site.stream.send_signal(signal.SIGTERM)
    site.stream.communicate(timeout=60)
    assert site.stream.returncode == 0
    lost = site.commit("lost", 3)
    final = site.primary_gtid()
    assert sum(behind(final, newest).values()) == 3

    # While the old primary answers, the loss is counted and refused without --force.
    refused = site.dr("failover", "lis", "--yes", "--json")
    assert refused.returncode == 27, refused.stdout + refused.stderr
    window = _outcome(refused)["data_loss"]
    assert window["transactions"] == 3 and merged(window["primary_gtid"]) == final
    assert window["repository_gtid"] == newest and merged(window["standby_gtid"]) == newest
    assert site.standby_sql("SELECT @@read_only") == "1"

    # The primary dies: the failover promotes the standby, all the repository held on it.
    assert site.primary.proc is not None
    site.primary.proc.kill()
    site.primary.proc.wait(timeout=30)
    done = site.dr("failover", "lis", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = _outcome(done)
    window = outcome["data_loss"]
    assert window["primary_gtid"] is None and window["transactions"] is None
    assert window["repository_gtid"] == newest and merged(window["standby_gtid"]) == newest
    assert window["summary"].startswith(f"unknown beyond the repository's newest archived "
                                        f"GTID {newest}")
    assert site.standby_sql("SELECT @@read_only") == "0"
    on_standby = site.notes_on_standby()
    assert on_standby == set(kept) and not on_standby & set(lost)
    # what is really missing: exactly the transactions after the reported GTID
    assert sum(behind(final, window["standby_gtid"]).values()) == len(lost)
    assert site.hook_file.read_text().strip() == str(site.standby_port)
    steps = [s["name"] for s in outcome["steps"]]
    assert "apply repository" in steps and "promote standby" in steps
    # writable for the application; a restart would keep it so
    sql_app = subprocess.run(
        ["mariadb", "--no-defaults", "--protocol=TCP", "--host=127.0.0.1",
         f"--port={site.standby_port}", f"--user={APP_USER}", "-e",
         "INSERT INTO his.visits (note) VALUES ('after-failover')"],
        capture_output=True, text=True, check=False,
        env=dict(os.environ, MYSQL_PWD=APP_PASSWORD))
    assert sql_app.returncode == 0, sql_app.stderr
    assert "read-only=0" in (site.standby_dir / "medark-server.cnf").read_text()


DRILL_START = ("echo $MEDARK_DR_NEW_PRIMARY_PORT > {base}/drill_port.tmp && "
               "mv {base}/drill_port.tmp {base}/drill_port && for i in $(seq 900); do "
               "[ -e {base}/drill_go ] && exit 0; sleep 0.1; done; exit 1")
"""The drill's service at the DR site: it says the sandbox's port, then waits until the
test lets the drill go on."""


def drill_service(base: Path) -> str:
    return f"""
[[dr.lis.services.east]]
name = "drill-probe"
start = "{DRILL_START.format(base=base)}"
stop = "true"
start_timeout = "120s"
"""


def _repo_files(repo: Path) -> dict[str, int]:
    """Every file of the repository with its size, its lock files apart."""
    return {str(f.relative_to(repo)): f.stat().st_size for f in repo.rglob("*")
            if f.is_file() and "locks" not in f.relative_to(repo).parts}


def _drill(site: Site, behind_by: int) -> None:
    """`dr drill` of the repository-fed standby, `behind_by` archived transactions behind:
    held by a service of the DR site (it waits for a file) while the sandbox is up, the
    standby's position must not move under the copy and a supervise pass must apply
    those transactions; afterwards the repository is as it was and the sandbox is gone."""
    before = site.standby_gtid()
    archived = _repo_files(site.repo)
    config = site.base / "drill.toml"
    config.write_text(config_text(site) + drill_service(site.base), encoding="utf-8")
    sandboxes = site.base / "drill"
    drill = subprocess.Popen(
        [MEDARK, "dr", "drill", "lis", "--config", str(config), "--catalog", site.catalog()],
        env=dict(site.env, MEDARK_DR_DRILL_DIR=str(sandboxes)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (site.base / "drill_port").exists() or drill.poll() is not None,
                 120, "the drill's service to start against the sandbox")
        assert drill.poll() is None, drill.communicate()
        port = int((site.base / "drill_port").read_text())
        assert port != site.standby_port
        assert sql("SELECT @@read_only, @@log_bin", port=port) == "0\t0"
        assert site.standby_gtid() == before  # the copy moved nothing
        during = site.dr("supervise", "lis", "--json")
        assert during.returncode == 0, during.stderr
        assert during.json()["systems"][0]["repository_feed"]["applied_now"] == behind_by, \
            during.stdout
    finally:
        (site.base / "drill_go").touch()
        out, err = drill.communicate(timeout=120)
    assert drill.returncode == 0, out + err
    assert "Traceback" not in err
    steps = ["preflight", "clone standby", "start services", "health checks", "tear down"]
    assert [s for s in steps if re.search(rf"^  {s} +ok ", out, re.M)] == steps, out
    assert "fed from repository offsite" in " ".join(out.split())
    assert _repo_files(site.repo) == archived
    assert not list(sandboxes.iterdir())
    assert sum(behind(site.standby_gtid(), before).values()) == behind_by


def _standby(site: Site) -> None:
    """A physical backup, commits after it, and the standby restored and started."""
    repo = ("--repo", str(site.repo))
    site.commit("before-backup", 2)
    site.medark(*repo, "mysql", "backup", "--dsn", site.primary.dsn)
    site.commit("after-backup", 2)
    wait_for(site.archived, 30, "the stream to archive the commits")
    restored = site.medark(*repo, "mysql", "restore", "--target-dir", str(site.standby_dir),
                           "--standby", "--start", "--port", str(site.standby_port),
                           "--json", "--timeout", "120").json()
    site.standby_pid = int(restored["pid"])


@dataclass
class Writer:
    """Inserts rows as the application account into the server the hook file names, the
    whole time; keeps every acknowledged row."""

    site: Site
    acks: list[str] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            port = int(self.site.hook_file.read_text().strip() or 0)
            done = subprocess.run(
                ["mariadb", "--no-defaults", "--protocol=TCP", "--host=127.0.0.1",
                 f"--port={port}", f"--user={APP_USER}", "--connect-timeout=2", "-e",
                 f"INSERT INTO his.visits (note) VALUES ('load-{n}')"],
                capture_output=True, check=False, timeout=60,
                env=dict(os.environ, MYSQL_PWD=APP_PASSWORD))
            if done.returncode == 0:
                self.acks.append(f"load-{n}")
            else:
                self.failures += 1
                time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def _fed(site: Site, port: int, notes: list[str], what: str) -> None:
    """`dr supervise` until the standby at `port` holds `notes`; a last pass exits 0."""
    def holds() -> bool:
        site.dr("supervise", "lis", "--json")
        return set(notes) <= set(sql("SELECT note FROM his.visits", port=port).split())

    wait_for(holds, 60, what)
    last = site.dr("supervise", "lis", "--json")
    assert last.returncode == 0, last.stdout + last.stderr


def _steps(result: Result) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in _outcome(result)["steps"]}


def test_switchover_and_failback_of_the_repository_feed_lose_no_acknowledged_write(
        site: Site) -> None:
    _standby(site)
    p = site.primary
    new_dsn = f"mysql://{BACKUP_USER}:{BACKUP_PASSWORD}@127.0.0.1:{site.standby_port}"
    writer = Writer(site)
    try:
        wait_for(lambda: len(writer.acks) >= 20, 30, "the writer to get going")
        done = site.dr("switchover", "lis", "--yes", "--json")
        # switched; the old primary is a standby, but nothing streams the new primary's
        # binlogs into the repository yet: exit 26, and the step says what to run
        assert done.returncode == 26, done.stdout + done.stderr
        switched = len(writer.acks)
        wait_for(lambda: len(writer.acks) >= switched + 20, 30, "writes to the new primary")
        outcome = _outcome(done)
        steps = _steps(done)
        assert steps["wait for standby"]["result"] == "ok"
        assert outcome["status"] == "succeeded"
        assert outcome["new_primary"].endswith(f":{site.standby_port}")
        reinstated = steps["reinstate old primary"]
        assert reinstated["result"] == "warning", reinstated
        assert f"medark@127.0.0.1:{p.port}: read-only, no replication" in reinstated["detail"]
        assert (f"mysql binlog-stream --dsn mysql://{BACKUP_USER}@127.0.0.1:"
                f"{site.standby_port}/" in reinstated["detail"])
        assert "repository offsite" in reinstated["detail"]
        assert site.hook_file.read_text().strip() == str(site.standby_port)
        assert site.standby_sql("SELECT @@read_only") == "0"
        assert p.value("@@read_only, @@gtid_strict_mode") == "1\t1"
        assert p.root_sql("SHOW ALL SLAVES STATUS") == ""
        # the old primary's applied position: nothing the new primary lacks
        assert not any(behind(p.value("@@gtid_binlog_pos"),
                              site.standby_sql("SELECT @@gtid_binlog_pos")).values())
        assert set(writer.acks[:switched]) <= site.notes_on_standby()

        # dr status: the feed does not advance, and says what to run
        status = site.dr("status", "lis", "--json")
        assert status.returncode == 26, status.stdout + status.stderr
        said = " ".join(status.stderr.split())
        assert "cannot advance" in said and "no binlogs of the primary (server 2" in said
        assert "binlog-stream --dsn" in said
        roles = {n["configured"]: n["role"] for n in status.json()["systems"][0]["nodes"]}
        assert roles == {"primary": "standby", "standby": "primary"}

        # the new primary's binlogs streamed into the repository: supervise feeds the old
        site.streams.append(site.stream_from(new_dsn))
        _fed(site, p.port, list(writer.acks), "the old primary to apply the new one's writes")

        # failback under the load: back to the configured roles
        back = site.dr("failback", "lis", "--yes", "--json")
        assert back.returncode == 0, back.stdout + back.stderr
        flipped = len(writer.acks)
        wait_for(lambda: len(writer.acks) >= flipped + 20, 30, "writes to the home primary")
    finally:
        writer.finish()
    steps = _steps(back)
    assert list(steps)[:4] == ["find roles", "reinstate configured primary",
                               "wait for catch-up", "preflight"], list(steps)
    assert steps["reinstate configured primary"]["result"] == "ok"
    assert steps["reinstate old primary"]["result"] == "ok", steps["reinstate old primary"]
    assert "fed from repository offsite" in steps["reinstate old primary"]["detail"]
    assert _outcome(back)["new_primary"].endswith(f":{p.port}")
    assert site.hook_file.read_text().strip() == str(p.port)
    assert p.value("@@read_only") == "0" and p.root_sql("SHOW ALL SLAVES STATUS") == ""
    assert site.standby_sql("SELECT @@read_only") == "1"
    assert site.standby_sql("SHOW ALL SLAVES STATUS") == ""
    assert "read-only=1" in (site.standby_dir / "medark-server.cnf").read_text()
    on_home = set(sql("SELECT note FROM his.visits", port=p.port).split())
    assert set(writer.acks) <= on_home, sorted(set(writer.acks) - on_home)[:5]
    status = site.dr("status", "lis", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    roles = {n["configured"]: n["role"] for n in status.json()["systems"][0]["nodes"]}
    assert roles == {"primary": "primary", "standby": "standby"}

    # the DR node applies the primary's later writes from the repository again
    later = site.commit("after-failback", 5)
    _fed(site, site.standby_port, [*writer.acks, *later], "the DR node to apply new writes")
    assert site.standby_gtid() == site.primary_gtid()
