"""/metrics for application-level DR, served as the daemon serves it (service/jobs.py
serve_metrics) over a real primary/standby pair (tests/pg_pair.py) and a real catalog:
the standby lag in bytes and seconds, the switch time and end of the newest succeeded
drill and switch-over, whether the newest drill succeeded; and a standby that accepts
connections but never answers leaves its system without a lag sample (never a 0) while
scrapes go on answering."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from dr_site import dr_nodes, pg_nodes
from pg_pair import PgPair, pg_pair
from pg_server import can_run_servers
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from medark.catalog.dr_records import DrStep
from medark.catalog.store import Catalog
from medark.config.loader import load_config
from medark.service.jobs import serve_metrics
from medark.service.metrics import DrLag, plan_registry
from medark.util import clock

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _config(pair: PgPair, silent_port: int, catalog: str) -> str:
    p, s = pair.primary, pair.standby
    return f"""
[catalog]
url = "{catalog}"

[sites.main]
location = "CN-SC"

[sites.east]
location = "CN-SC"
role = "campus"

[repositories.local]
site = "main"
url = "/nonexistent/medark"
password_file = "/nonexistent/password"

[systems.his]
owner = "IT"

[[systems.his.sources]]
type = "postgres"
dsn = "{p.dsn}"

[systems.lis]
owner = "lab"

[[systems.lis.sources]]
type = "files"
paths = ["/nonexistent"]

[plans.his]
system = "his"
repository = "local"
schedule = "0 1 * * *"
rpo = "1d"
rto = "1h"
retention = {{ daily = 14 }}

[dr.his]
slot = "{pair.slot}"

""" + pg_nodes(p, s) + dr_nodes(
        "lis", p.dsn, f"host=127.0.0.1 port={silent_port} user=postgres dbname=postgres")


class SilentServer:
    """Accepts TCP connections and never says a word (a hung node); `accepted` counts
    the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.closed = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:  # accepted while closing: nobody else will close it
                    conn.close()
                    return
                self.held.append(conn)  # read nothing, answer nothing
                self.accepted += 1

    def wait(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.accepted < count:
            assert time.monotonic() < deadline, f"fewer than {count} connections came"
            time.sleep(0.05)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for conn in self.held:
                conn.close()
        with contextlib.suppress(OSError):  # already shut
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def pair() -> Iterator[PgPair]:
    with pg_pair() as built:
        yield built


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        return _parse(reply.read().decode())


def _parse(text: str) -> Samples:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record(catalog: Catalog) -> None:
    """A drill healthy in 12.5 s, a switch-over whose clients were held 0.4 s and whose
    application was healthy 3.5 s after they were held, then a drill that failed."""
    drill = catalog.start_dr_action("his", "drill", "daemon")
    catalog.finish_dr_action(drill, "succeeded", switch_seconds=12.5)
    switch = catalog.start_dr_action("his", "switchover", "operator")
    at = clock.now()
    for name, offset, seconds in (("preflight", -0.2, 0.2), ("hold clients", 0.0, 0.01),
                                  ("redirect clients", 0.3, 0.1),
                                  ("health checks", 2.5, 1.0),
                                  ("reinstate old primary", 3.5, 20.0)):
        catalog.record_step(switch, DrStep(name, at + timedelta(seconds=offset), seconds,
                                           "ok"))
    catalog.finish_dr_action(switch, "succeeded", switch_seconds=0.4)
    broken = catalog.start_dr_action("his", "drill", "daemon")
    catalog.finish_dr_action(broken, "failed", error="health check web: HTTP 503")


def test_metrics_export_the_dr_lag_and_the_last_switch(pair: PgPair, tmp_path: Path) -> None:
    silent = SilentServer()
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    path = tmp_path / "medark.toml"
    path.write_text(_config(pair, silent.port, url), encoding="utf-8")
    config = load_config(path)
    catalog = Catalog(url)
    _record(catalog)
    port = _free_port()
    server = serve_metrics(f"127.0.0.1:{port}", config, catalog)
    his, lis = (("system", "his"),), (("system", "lis"),)
    try:
        deadline = time.monotonic() + 60
        while ("medark_dr_standby_lag_bytes", his) not in (found := _scrape(port)):
            assert time.monotonic() < deadline, "no lag reading within 60 s"
            time.sleep(0.2)
        assert found[("medark_dr_standby_lag_bytes", his)] == 0  # caught up, read
        assert found[("medark_dr_standby_lag_seconds", his)] == 0
        assert found[("medark_dr_standby_lag_timestamp_seconds", his)] > 0
        drill = (("kind", "drill"), ("system", "his"))
        switchover = (("kind", "switchover"), ("system", "his"))
        assert found[("medark_dr_last_switch_seconds", drill)] == 12.5
        # from holding the clients to the health checks passing: not the 0.4 s of held
        # writes, nor the 20 s reinstatement afterwards
        assert found[("medark_dr_last_switch_seconds", switchover)] == pytest.approx(3.5)
        assert found[("medark_dr_last_switch_timestamp_seconds", switchover)] > 0
        assert found[("medark_dr_last_switch_timestamp_seconds", drill)] > 0
        assert ("medark_dr_last_switch_seconds", (("kind", "failover"), ("system", "his"))) \
            not in found
        assert found[("medark_dr_last_drill_success", his)] == 0  # the newest one failed

        # lis's standby is hung: the reading waits in the background, scrapes answer;
        # a quick-cycling reader shows the attempt end (its next one connects again)
        lag = DrLag(config, every=0.2, connect_timeout=1).start()
        registry = plan_registry(config, catalog, lag=lag)
        try:
            silent.wait(silent.accepted + 1)  # a reading is stuck on the hung node
            during = _parse(generate_latest(registry).decode())
            assert ("medark_dr_standby_lag_bytes", lis) not in during
            silent.wait(silent.accepted + 1)  # that reading ended, the next one began
            after = _parse(generate_latest(registry).decode())
        finally:
            lag.stop()
        assert after[("medark_dr_standby_lag_bytes", his)] == 0
        for name in ("medark_dr_standby_lag_bytes", "medark_dr_standby_lag_seconds",
                     "medark_dr_standby_lag_timestamp_seconds",
                     "medark_dr_last_drill_success"):
            assert (name, lis) not in after, name  # unknown: no sample, never 0
        assert not [key for key in after if key[0].startswith("medark_dr_last_switch")
                    and ("system", "lis") in key[1]]
    finally:
        server.shutdown()
        server.server_close()
        silent.close()
        catalog.close()
