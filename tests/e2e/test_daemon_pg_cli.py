"""The daemon with a PostgreSQL system: the WAL stream it supervises carries the base
backup's WAL and every commit after it (an RPO of seconds, measured by `pg status`), and
stops cleanly with the daemon."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import MEDARK, Cli
from pg_server import PgServer, can_run_servers, running_server
from plan_site import write_plan_config

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))

PLAN = """\
[systems.his]
name = "HIS"
owner = "it"

[[systems.his.sources]]
type = "postgres"
dsn = "{dsn}"
stream = true

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1min"
rto = "15min"
retention = {{ daily = 7 }}
"""


@pytest.fixture
def server() -> Iterator[PgServer]:
    with running_server() as pg:
        yield pg


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_daemon_streams_wal_and_measures_an_rpo_of_seconds(
        cli: Cli, tmp_path: Path, server: PgServer) -> None:
    config = write_plan_config(cli, tmp_path, PLAN, dsn=server.dsn)
    server.sql("CREATE TABLE vitals AS SELECT g AS id FROM generate_series(1, 5000) g")
    env = {k: v for k, v in cli.env.items() if not k.startswith("MEDARK_PASSWORD")}
    daemon = subprocess.Popen([MEDARK, "--json", "daemon", "--config", str(config),
                               "--poll", "0.2"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def jobs() -> list[dict[str, object]]:
        found: list[dict[str, object]] = cli("jobs", "--json", "--config", config,
                                             password=None).json()
        return found

    def newest_wal_after(moment: datetime) -> bool:
        status = cli("pg", "status", "--json", "--dsn", server.dsn, check=False)
        if status.returncode != 0:
            return False
        archived = json.loads(status.stdout)["newest_wal_archived"]
        return archived is not None and datetime.fromisoformat(
            archived.replace("Z", "+00:00")) >= moment

    try:
        _until(lambda: any(j["kind"] == "backup" and j["status"] == "succeeded"
                           for j in jobs()), 120, "the base backup")
        committed = datetime.now(UTC)
        server.sql("INSERT INTO vitals VALUES (-1)")  # never switched out: only a stream
        _until(lambda: newest_wal_after(committed), 60, "the commit's WAL to be streamed")
        streaming = [j for j in jobs() if j["kind"] == "stream:postgres"]
        assert [j["status"] for j in streaming] == ["running"]
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    streamed = [j for j in jobs() if j["kind"] == "stream:postgres"]
    assert [j["status"] for j in streamed] == ["succeeded"]  # stopped cleanly
    assert "his" in server.sql("SELECT slot_name FROM pg_replication_slots")
    verdicts = cli("--json", "compliance", "--profile", "三甲", "--level", "1", "--config",
                   config, password=None, check=False).json_lines()
    doc = next(d for d in verdicts if d.get("message_type") == "compliance")
    rpo = next(v for v in doc["verdicts"] if v["requirement"] == "三甲.local.rpo")
    assert rpo["status"] == "pass", rpo  # measured from the streamed WAL's age
