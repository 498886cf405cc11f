"""`medark dr switchover` between two sites with their own addresses (issue 15), the
clients moved by a hook: a virtual IP carried from one site to the other, or (a DNS
record in miniature) an /etc/hosts-style file the clients read whenever they connect.

The sites are network namespaces behind a router namespace (tests/netns_sites.py): a
primary in main at 10.Y.1.2, its streaming standby in east at 10.Y.2.2, and 10.Y.9.9 on
main's `lo`. A client in the root namespace writes rows to 10.Y.9.9 (or to the address
the hosts file gives his-db) the whole time, each row its own transaction, reconnecting
on error, and records which site (cluster_name) acknowledged each. After `dr switchover
his` from the root namespace: exit 0, the VIP is on east's `lo` (or the file names east)
and answers from east, every acknowledged row is on east, main refuses writes at its
own address, and the reinstate step is skipped (commands control the servers). Clients
of a bare VIP or name see the moment of the switch as failed requests (a pooler is what
holds them): counted and printed with the switch time, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from conftest import Cli
from netns_sites import SLOT, Sites, SiteServer, netns_unavailable, two_sites
from pg_server import can_run_servers, wait_for


@dataclass
class Ack:
    n: int
    site: str
    at: float


@dataclass
class Writer:
    """One client writing rows, each its own transaction, to the host `target()` names
    when it connects (the VIP, or what the hosts file says), reconnecting after any error."""

    target: Callable[[], str]
    acks: list[Ack] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Writer:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        assert self.thread is not None
        self.thread.join(timeout=30)

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        n = 0
        while not self.stopping.is_set():
            n += 1
            try:
                if conn is None:
                    conn = psycopg.connect(f"host={self.target()} port=5432 user=postgres "
                                           "dbname=postgres", autocommit=True, connect_timeout=2)
                row = conn.execute("INSERT INTO rows_log (n) VALUES (%s) "
                                   "RETURNING current_setting('cluster_name')", (n,)).fetchone()
                assert row is not None
                self.acks.append(Ack(n, str(row[0]), time.monotonic()))
            except psycopg.Error as exc:
                self.failures.append((time.monotonic(), type(exc).__name__))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    def first_ack_at(self, site: str, after: float) -> Ack | None:
        return next((a for a in list(self.acks) if a.site == site and a.at > after), None)


HOOKS = {"vip": """#!/bin/sh
# Clients reach the primary at {vip}: put it on the new primary's site and route it there.
set -e
case "$MEDARK_DR_NEW_PRIMARY_HOST" in
  {main_host}) new={main}; old={east} ;;
  {east_host}) new={east}; old={main} ;;
  *) echo "vip-move: no site has $MEDARK_DR_NEW_PRIMARY_HOST" >&2; exit 2 ;;
esac
ip -n "$new" addr replace {vip}/32 dev lo
ip -n {wan} route replace {vip}/32 via "$MEDARK_DR_NEW_PRIMARY_HOST"
ip -n "$old" addr del {vip}/32 dev lo 2>/dev/null || true
echo "$new" >> {log}
""", "hosts": """#!/bin/sh
# Clients look his-db up in {hosts} whenever they connect: a DNS record, in miniature.
set -e
printf '%s his-db\\n' "$MEDARK_DR_NEW_PRIMARY_HOST" > {hosts}.new
mv {hosts}.new {hosts}
echo "$MEDARK_DR_NEW_PRIMARY_HOST" >> {log}
"""}


def write_hook(how: str, sites: Sites, work: Path) -> Path:
    hook = work / f"{how}-move"
    hook.write_text(HOOKS[how].format(
        vip=sites.vip, main_host=sites.host("main"), east_host=sites.host("east"),
        main=sites.ns("main"), east=sites.ns("east"), wan=sites.ns("wan"),
        hosts=work / "hosts", log=work / "moves.log"), encoding="utf-8")
    hook.chmod(0o755)
    return hook


def resolver(hosts: Path) -> Callable[[], str]:
    """The address /etc/hosts-style file `hosts` gives his-db, read at every call."""
    def lookup() -> str:
        for line in hosts.read_text(encoding="utf-8").splitlines():
            address, _, name = line.partition(" ")
            if name.strip() == "his-db":
                return address
        raise AssertionError(f"no his-db in {hosts}")
    return lookup


def _control(server: SiteServer) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in server.control().items()) + " }"


def config_text(primary: SiteServer, standby: SiteServer, hook: Path) -> str:
    return f"""
repositories.local = {{ site = "main", url = "/nonexistent/r", password_file = "/nonexistent/p" }}
systems.his = {{ owner = "IT", sources = [{{ type = "postgres", dsn = "{primary.dsn}" }}] }}
plans.his = {{ system = "his", repository = "local", schedule = "0 1 * * *", rpo = "1d", \
rto = "1h", retention = {{ daily = 14 }} }}
sites.main = {{ name = "main", location = "CN-SC" }}
sites.east = {{ name = "east", location = "CN-SC", role = "campus" }}

[dr.his]
feed = "stream"
slot = "{SLOT}"
fencing = "readonly"
primary = {{ kind = "postgres", site = "main", dsn = "{primary.dsn}", \
control = {_control(primary)} }}
standby = {{ kind = "postgres", site = "east", dsn = "{standby.dsn}", \
control = {_control(standby)} }}
client_switch = {{ type = "hook", command = "{hook}" }}
health = [{{ type = "sql", name = "writable", query = "SELECT NOT pg_is_in_recovery()", \
expect = "true" }}]
"""


@dataclass
class TwoSites:
    sites: Sites
    primary: SiteServer
    standby: SiteServer
    work: Path


@pytest.fixture
def two(tmp_path: Path) -> Iterator[TwoSites]:
    for reason in (can_run_servers(), netns_unavailable()):
        if reason is not None:
            pytest.skip(reason)
    with two_sites() as (sites, primary, standby):
        primary.sql("CREATE TABLE rows_log (n int PRIMARY KEY, at timestamptz DEFAULT now())")
        yield TwoSites(sites, primary, standby, tmp_path)
    assert sites.leftovers() == [], "namespaces or veths of the test are left"
    for server in (primary, standby):
        running = subprocess.run(["pgrep", "-f", f"{server.server.data}"], capture_output=True,
                                 text=True, check=False)
        assert running.stdout == "", f"a server of the test still runs: {running.stdout}"


@pytest.mark.parametrize("how", ["vip", "hosts"])
def test_a_switchover_moves_the_clients_to_the_dr_site(cli: Cli, two: TwoSites,
                                                        how: str) -> None:
    sites, main, east, work = two.sites, two.primary, two.standby, two.work
    config = work / "medark.toml"
    config.write_text(config_text(main, east, write_hook(how, sites, work)), encoding="utf-8")
    (work / "hosts").write_text(f"{main.host} his-db\n", encoding="utf-8")
    writer = Writer((lambda: sites.vip) if how == "vip" else resolver(work / "hosts"))
    writer.start()
    try:
        wait_for(lambda: len(writer.acks) >= 20, timeout=60, what="rows before the switch")
        started = time.monotonic()
        result = cli("dr", "switchover", "his", "--yes", "--json", "--config", config,
                     "--catalog", f"sqlite:///{work / 'catalog.db'}", check=False)
        ended = time.monotonic()
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for(lambda: writer.first_ack_at("east", started) is not None, timeout=30,
                 what="a row acknowledged by east")
        time.sleep(0.5)
    finally:
        writer.stop()
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["status"] == "succeeded", doc
    assert doc["new_primary"] == f"postgres@{east.host}:5432"
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["redirect clients"]["result"] == "ok", steps
    assert f"hook moved clients to {east.host}:5432" in steps["redirect clients"]["detail"]
    assert steps["reinstate old primary"]["result"] == "skipped", steps
    assert "not a data directory" in steps["reinstate old primary"]["detail"]

    if how == "vip":
        assert (work / "moves.log").read_text().split() == [sites.ns("east")]
        on_lo = {site: sites.in_ns(site, "ip", "-4", "addr", "show", "dev", "lo").stdout
                 for site in ("main", "east")}
        assert f"{sites.vip}/32" in on_lo["east"] and sites.vip not in on_lo["main"], on_lo
    else:
        assert (work / "hosts").read_text() == f"{east.host} his-db\n"
    with psycopg.connect(f"host={writer.target()} port=5432 user=postgres dbname=postgres",
                         connect_timeout=5) as conn:
        row = conn.execute("SELECT current_setting('cluster_name'), "
                           "pg_is_in_recovery()").fetchone()
    assert row == ("east", False)

    first_east = writer.first_ack_at("east", started)
    assert first_east is not None
    assert not [a for a in writer.acks if a.at > first_east.at and a.site != "east"]
    acked = {a.n for a in writer.acks}
    on_east = {int(n) for n in east.sql("SELECT string_agg(n::text, ',') FROM rows_log")
               .split(",")}
    assert acked - on_east == set(), "acknowledged rows missing on east"

    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        main.sql("INSERT INTO rows_log (n) VALUES (-1)")
    assert main.sql("SELECT pg_is_in_recovery()") == "False"  # fenced, not a standby

    last_main = max((a.at for a in writer.acks if a.site == "main"), default=started)
    print(f"\n{how} {sites.network}: switch_seconds={doc['switch_seconds']:.3f} "
          f"total_seconds={doc['total_seconds']:.3f}, command {ended - started:.3f} s; "
          f"writes stopped {first_east.at - last_main:.3f} s (last main ack to first "
          f"east ack); failed requests {len(writer.failures)} "
          f"{sorted({name for _, name in writer.failures})}; {len(acked)} rows acked, "
          "all on east")
