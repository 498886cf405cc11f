"""A throwaway Patroni cluster for the DR switch-over benchmark: one etcd on loopback, two
Patroni nodes (Debian's patroni, PostgreSQL from /usr/lib/postgresql/N/bin, run as the
postgres OS user, REST API on free ports, ``use_pg_rewind: true``) and HAProxy as the
clients' entry point, the way Patroni's own example (``haproxy.cfg`` in its docs) does
it: a TCP frontend over both nodes, each checked through Patroni's REST API
(``option httpchk GET /primary``: 200 only on the leader), ``on-marked-down
shutdown-sessions``. Everything is stopped and removed by ``close()``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pg_server import chown_pg, free_port, make_base, wait_for

SCOPE = "medark-bench"


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (Patroni stops its PostgreSQL first)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@dataclass
class PatroniNode:
    name: str
    base: Path
    pg_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.pg_port} user=postgres dbname=postgres"

    @property
    def config(self) -> Path:
        return self.base / "patroni.yml"

    def api(self, path: str) -> int | None:
        return _http_status(f"http://127.0.0.1:{self.api_port}{path}")

    def log(self) -> str:
        try:
            return (self.base / "patroni.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


class PatroniCluster:
    """etcd + two Patroni nodes + HAProxy; `entry_dsn` is what the clients use."""

    def __init__(self, bin_dir: str, parameters: dict[str, str], haproxy_check: str,
                 loop_wait: int = 10, ttl: int = 30, retry_timeout: int = 10) -> None:
        self.bin_dir = bin_dir
        self.parameters = parameters
        self.haproxy_check = haproxy_check
        self.dcs = {"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout}
        self.base = make_base()
        self.etcd_port, self.etcd_peer = free_port(), free_port()
        self.haproxy_port = free_port()
        self.nodes = [PatroniNode(f"node{i}", self.base / f"node{i}") for i in (1, 2)]
        self.etcd: subprocess.Popen[bytes] | None = None
        self.haproxy: subprocess.Popen[bytes] | None = None

    @property
    def entry_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.haproxy_port} user=postgres dbname=postgres"

    def node_config(self, node: PatroniNode) -> str:
        """Patroni's YAML (JSON is YAML): DCS settings at Patroni's defaults unless given."""
        params = {"unix_socket_directories": str(node.base), **self.parameters}
        doc = {
            "scope": SCOPE, "namespace": "/service/", "name": node.name,
            "log": {"level": "INFO", "dir": str(node.base), "file_num": 2},
            "restapi": {"listen": f"127.0.0.1:{node.api_port}",
                        "connect_address": f"127.0.0.1:{node.api_port}"},
            "etcd3": {"hosts": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {**self.dcs, "maximum_lag_on_failover": 1048576,
                        "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                       "parameters": params}},
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.base / "data"), "bin_dir": self.bin_dir,
                "pgpass": str(node.base / "pgpass"),
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "postgres"},
                                   "rewind": {"username": "postgres"}},
                "parameters": {"unix_socket_directories": str(node.base)},
                "pg_hba": ["local all all trust", "host all all 127.0.0.1/32 trust",
                           "host replication all 127.0.0.1/32 trust"],
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                     "nosync": False},
        }
        return json.dumps(doc, indent=2)

    def haproxy_config(self) -> str:
        servers = "\n".join(
            f"    server {n.name} 127.0.0.1:{n.pg_port} maxconn 100 check port {n.api_port}"
            for n in self.nodes)
        return (
            "global\n    maxconn 200\n\n"
            "defaults\n    mode tcp\n    retries 2\n    timeout client 30m\n"
            "    timeout connect 4s\n    timeout server 30m\n    timeout check 5s\n\n"
            f"listen primary\n    bind 127.0.0.1:{self.haproxy_port}\n"
            "    option httpchk GET /primary\n    http-check expect status 200\n"
            f"    default-server {self.haproxy_check} on-marked-down shutdown-sessions\n"
            f"{servers}\n")

    def start(self) -> None:
        etcd_dir = self.base / "etcd"
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", str(etcd_dir),
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
             "--initial-cluster", f"bench=http://127.0.0.1:{self.etcd_peer}"],
            stdout=(self.base / "etcd.log").open("wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        wait_for(lambda: _http_status(f"http://127.0.0.1:{self.etcd_port}/health") == 200,
                 30, "etcd")
        for i, node in enumerate(self.nodes):
            node.base.mkdir(mode=0o700)
            node.config.write_text(self.node_config(node), encoding="utf-8")
            chown_pg(node.base)
            node.proc = subprocess.Popen(
                ["patroni", str(node.config)], user="postgres", group="postgres",
                extra_groups=[], cwd=str(node.base), stdin=subprocess.DEVNULL,
                stdout=(node.base / "patroni.out").open("wb"), stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
                     "HOME": str(node.base)})
            if i == 0:  # the first node bootstraps; the second clones it
                wait_for(lambda n=node: n.api("/primary") == 200, 120,
                         "the first Patroni node to lead", detail=node.log)
        self.wait_healthy(timeout=180)
        cfg = self.base / "haproxy.cfg"
        cfg.write_text(self.haproxy_config(), encoding="utf-8")
        self.haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
            stdout=(self.base / "haproxy.log").open("wb"), stderr=subprocess.STDOUT)
        # HAProxy counts a server up until its first check fails: wait for the checks,
        # then for every connection to reach the leader.
        time.sleep(3)
        self.wait_entry(self.leader().pg_port)

    def _entry_port(self) -> int | None:
        from dr_load import server_port
        try:
            return server_port(self.entry_dsn)
        except Exception:
            return None

    def leader(self) -> PatroniNode:
        for node in self.nodes:
            if node.api("/primary") == 200:
                return node
        raise RuntimeError("no Patroni node is the leader")

    def other(self, node: PatroniNode) -> PatroniNode:
        return self.nodes[1] if node is self.nodes[0] else self.nodes[0]

    def cluster(self) -> dict[str, object]:
        for node in self.nodes:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{node.api_port}/cluster", timeout=2) as resp:
                    doc = json.loads(resp.read())
                    if isinstance(doc, dict):
                        return doc
            except (OSError, ValueError):
                continue
        return {}

    def healthy(self) -> bool:
        """One leader, one replica that streams from it, and the REST API agreeing."""
        leaders = [n for n in self.nodes if n.api("/primary") == 200]
        replicas = [n for n in self.nodes if n.api("/replica") == 200]
        if len(leaders) != 1 or len(replicas) != 1 or leaders[0] is replicas[0]:
            return False
        from pg_server import PgServer
        probe = PgServer(self.base, leaders[0].pg_port, self.bin_dir)
        try:
            streaming = probe.sql(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        except Exception:
            return False
        members = self.cluster().get("members", [])
        pending = any(isinstance(m, dict) and m.get("pending_restart") for m in members) \
            if isinstance(members, list) else False
        return streaming == "1" and not pending

    def wait_healthy(self, timeout: float = 120.0) -> None:
        wait_for(self.healthy, timeout, "the Patroni cluster to have a leader and a "
                 "streaming replica", detail=lambda: json.dumps(self.cluster()))

    def wait_entry(self, port: int, timeout: float = 60.0) -> None:
        """Until 10 connections in a row through HAProxy reach `port`."""
        wait_for(lambda: all(self._entry_port() == port for _ in range(10)), timeout,
                 f"HAProxy to route only to {port}")

    def close(self) -> None:
        _stop(self.haproxy, 10)
        for node in self.nodes:
            _stop(node.proc)
        _stop(self.etcd, 10)
        for node in self.nodes:  # a PostgreSQL that outlived its Patroni
            pid_file = node.base / "data" / "postmaster.pid"
            try:
                pid = int(pid_file.read_text().splitlines()[0])
                os.kill(pid, signal.SIGQUIT)
                time.sleep(1)
            except (OSError, ValueError, IndexError):
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def versions(self) -> dict[str, str]:
        def first(cmd: list[str]) -> str:
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except OSError as exc:
                return f"unavailable ({exc})"
            lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
            return lines[0] if lines else ""
        return {"patroni": first(["patroni", "--version"]),
                "etcd": first(["etcd", "--version"]),
                "haproxy": first(["haproxy", "-v"])}
