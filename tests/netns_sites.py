"""Two sites on one machine for DR tests: network namespaces joined through a router.

    root 10.Y.0.1 --veth-- 10.Y.0.2 [wan] 10.Y.1.1 --veth-- 10.Y.1.2 [main]
                                          10.Y.2.1 --veth-- 10.Y.2.2 [east]

`wan` forwards (ip_forward set inside it: the root namespace's sysctls stay as they
are); main and east route everything through it; the root namespace gets only a route
for 10.Y.0.0/16, so the tests, `medark` and its clients reach both sites as a hospital's
machines would, by address. A virtual IP 10.Y.9.9 sits on main's `lo` with wan's route
pointing at main, until a hook moves both. Y is random (100-199), checked against the
root's routes; the namespaces' names carry a random tag. `close()` ends what runs in
them and deletes them and the veths, whatever a test left behind.

A PostgreSQL primary in main and its streaming standby in east (pg_basebackup run inside
east from main's address) listen on 5432 at their site's address, run as the postgres
OS user (tests/pg_server.py) with `cluster_name` naming their site.
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psycopg
from pg_server import PgServer, chown_pg, make_base, pg_bin, wait_for

SLOT = "medark_standby"
PORT = 5432
SITES = ("main", "east")


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {done.stderr.strip()}")
    return done


def netns_unavailable() -> str | None:
    """None when network namespaces can be made here, else the reason."""
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    name = f"mdk-probe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"ip netns add fails here: {made.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


def _free_octet() -> int:
    """A Y whose 10.Y.0.0/16 overlaps no route or address of the root namespace."""
    taken = []
    for listing in (_ip("-4", "route", "show", "table", "all").stdout,
                    _ip("-4", "-o", "addr", "show").stdout):
        for word in listing.split():
            with suppress(ValueError):
                if word[0].isdigit():
                    taken.append(ipaddress.ip_network(word, strict=False))
    for y in random.sample(range(100, 200), 100):
        net = ipaddress.ip_network(f"10.{y}.0.0/16")
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return y
    raise RuntimeError("no free 10.Y.0.0/16 for the test sites")


@dataclass
class Sites:
    """Namespaces `main`, `east`, `wan` named `mdk-<tag>-<role>` on network 10.`y`.0.0/16."""

    tag: str
    y: int
    made: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"mdk-{self.tag}-{role}"

    def host(self, site: str) -> str:
        return f"10.{self.y}.{SITES.index(site) + 1}.2"

    @property
    def vip(self) -> str:
        return f"10.{self.y}.9.9"

    @property
    def network(self) -> str:
        return f"10.{self.y}.0.0/16"

    @property
    def root_veth(self) -> str:
        return f"mdk{self.tag}r"

    def in_ns(self, role: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns(role), *argv],
                              capture_output=True, text=True, check=False, timeout=120)

    def leftovers(self) -> list[str]:
        """Namespaces and the root veth of this run that still exist."""
        names = _ip("netns", "list").stdout.split()
        found = [n for n in names if n.startswith(f"mdk-{self.tag}-")]
        if _ip("link", "show", self.root_veth, check=False).returncode == 0:
            found.append(self.root_veth)
        return found

    def close(self) -> None:
        """Kill what still runs in the namespaces (by pid), delete them and the veth."""
        for name in self.made:
            for pid in _ip("netns", "pids", name, check=False).stdout.split():
                with suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        _ip("link", "del", self.root_veth, check=False)
        for name in self.made:
            _ip("netns", "del", name, check=False)


def build_sites() -> Sites:
    sites = Sites(secrets.token_hex(3), _free_octet())
    y = sites.y
    try:
        for role in ("wan", *SITES):
            _ip("netns", "add", sites.ns(role))
            sites.made.append(sites.ns(role))
            _ip("-n", sites.ns(role), "link", "set", "lo", "up")
        wan = sites.ns("wan")
        _ip("netns", "exec", wan, "sysctl", "-qw", "net.ipv4.ip_forward=1")  # wan's own
        _ip("link", "add", sites.root_veth, "type", "veth", "peer", "name", "r0", "netns", wan)
        _ip("addr", "add", f"10.{y}.0.1/24", "dev", sites.root_veth)
        _ip("link", "set", sites.root_veth, "up")
        _ip("-n", wan, "addr", "add", f"10.{y}.0.2/24", "dev", "r0")
        _ip("-n", wan, "link", "set", "r0", "up")
        for i, site in enumerate(SITES, start=1):
            ns, near = sites.ns(site), f"s{i}"
            _ip("-n", wan, "link", "add", near, "type", "veth", "peer", "name", "w0",
                "netns", ns)
            _ip("-n", wan, "addr", "add", f"10.{y}.{i}.1/24", "dev", near)
            _ip("-n", wan, "link", "set", near, "up")
            _ip("-n", ns, "addr", "add", f"10.{y}.{i}.2/24", "dev", "w0")
            _ip("-n", ns, "link", "set", "w0", "up")
            _ip("-n", ns, "route", "add", "default", "via", f"10.{y}.{i}.1")
        _ip("route", "add", sites.network, "via", f"10.{y}.0.2")
        _ip("-n", sites.ns("main"), "addr", "add", f"{sites.vip}/32", "dev", "lo")
        _ip("-n", wan, "route", "add", f"{sites.vip}/32", "via", sites.host("main"))
    except BaseException:
        sites.close()
        raise
    return sites


@dataclass
class SiteServer:
    """A PostgreSQL server running in a site's namespace on `host`:5432."""

    sites: Sites
    site: str
    server: PgServer

    @property
    def host(self) -> str:
        return self.sites.host(self.site)

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={PORT} user=postgres dbname=postgres"

    def pg_ctl(self, *args: str) -> list[str]:
        """pg_ctl run as the postgres user inside the site's namespace."""
        return ["ip", "netns", "exec", self.sites.ns(self.site), "runuser", "-u", "postgres",
                "--", self.server.tool("pg_ctl"), "-D", str(self.server.data), *args]

    def control(self) -> dict[str, str]:
        """`control = { start, stop, status }` commands for the DR configuration."""
        log = str(self.server.base / "server.log")
        return {"start": shlex.join(self.pg_ctl("-l", log, "-w", "-t", "60", "start")),
                "stop": shlex.join(self.pg_ctl("-m", "fast", "-w", "stop")),
                "status": shlex.join(self.pg_ctl("status"))}

    def start(self) -> None:
        done = subprocess.run(shlex.split(self.control()["start"]), capture_output=True,
                              text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start in {self.site}: {done.stderr[-300:]}\n"
                               f"{self.server.log()}")

    def sql(self, query: str) -> str:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(query)
            row = cur.fetchone() if cur.description else None
        return "" if row is None else str(row[0])


def _settings(site: str) -> dict[str, str]:
    return {"listen_addresses": "'*'", "port": str(PORT), "cluster_name": f"'{site}'",
            "wal_log_hints": "on", "hot_standby": "on", "wal_keep_size": "'64MB'",
            "wal_receiver_status_interval": "1s"}


@contextmanager
def two_sites() -> Iterator[tuple[Sites, SiteServer, SiteServer]]:
    """The sites, a primary in main and a standby streaming from it in east; all of it
    stopped and deleted afterwards."""
    bin_dir = pg_bin()
    assert bin_dir is not None, "PostgreSQL server programs are not installed"
    sites = build_sites()
    servers: list[SiteServer] = []
    try:
        primary = SiteServer(sites, "main", PgServer(make_base(), PORT, bin_dir,
                                                     settings=_settings("main")))
        servers.append(primary)
        primary.server.init()
        with open(primary.server.data / "pg_hba.conf", "a", encoding="utf-8") as f:
            f.write(f"host all all {sites.network} trust\n"
                    f"host replication all {sites.network} trust\n")
        primary.start()
        primary.sql(f"SELECT pg_create_physical_replication_slot('{SLOT}')")
        standby = SiteServer(sites, "east", PgServer(make_base(), PORT, bin_dir))
        servers.append(standby)
        data = standby.server.data
        data.mkdir(mode=0o700)
        chown_pg(data)
        done = sites.in_ns("east", "runuser", "-u", "postgres", "--",
                           standby.server.tool("pg_basebackup"), "-h", primary.host, "-p",
                           str(PORT), "-U", "postgres", "-D", str(data), "-R", "-S", SLOT,
                           "-X", "stream", "-c", "fast", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"pg_basebackup in east: {done.stderr[-500:]}")
        with open(data / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            f.write(f"cluster_name = 'east'\nunix_socket_directories = "
                    f"'{standby.server.base}'\n")
        standby.start()
        wait_for(lambda: primary.sql("SELECT count(*) FROM pg_stat_replication "
                                     "WHERE state = 'streaming'") == "1",
                 timeout=60, what="east to stream from main", detail=standby.server.log)
        yield sites, primary, standby
    finally:
        for s in servers:
            with suppress(Exception):  # teardown must reach the namespaces below
                s.server.stop()
            shutil.rmtree(s.server.base, ignore_errors=True)
        sites.close()
