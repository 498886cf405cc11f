"""`medark verify PLAN`: restore tests through the real command — the newest points of a
plan restored into a sandbox and checked, the achieved RTO recorded; a failed check, a
plan without backups and a database plan without backups all fail, never verify
(database plans that verify: test_verify_db_cli.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import Cli, nothing_left_in
from plan_site import write_plan_config

pytestmark = pytest.mark.usefixtures("private_tmp")  # TMPDIR of its own: nothing_left_in

CONFIG = """\
[systems.pacs]
owner = "radiology"

[[systems.pacs.sources]]
type = "files"
paths = ["{data}"]

[[systems.pacs.sources]]
type = "command"
command = "sh -c 'echo CREATE TABLE studies'"
filename = "registry.sql"

[systems.his]
owner = "it"

[[systems.his.sources]]
type = "postgres"
dsn = "host=127.0.0.1 dbname=his"

[plans.pacs]
system = "pacs"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "30min"
retention = {{ daily = 7 }}
restore_test = {{ schedule = "0 3 * * 0", checks = ["{check}"] }}

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "15min"
retention = {{ daily = 7 }}
"""


def _setup(cli: Cli, tmp_path: Path, check: str) -> Path:
    data = tmp_path / "pacs"
    (data / "2026" / "11").mkdir(parents=True)
    for i in range(20):
        (data / "2026" / "11" / f"img{i}.dcm").write_bytes(os.urandom(30_000 + i))
    return write_plan_config(cli, tmp_path, CONFIG, data=data, check=check)


def test_a_plan_is_restored_checked_and_its_rto_recorded(cli: Cli, tmp_path: Path) -> None:
    config = _setup(cli, tmp_path, "grep -rq CREATE.TABLE .")
    nothing = cli("verify", "pacs", "--config", config, password=None, check=False)
    assert nothing.returncode == 1 and "no snapshot of" in nothing.stderr
    cli("run", "pacs", "--config", config, password=None)
    done = cli("--json", "verify", "pacs", "--config", config, password=None).json()
    assert done["status"] == "succeeded" and len(done["snapshot_ids"]) == 2
    assert sum(s["files"] for s in done["steps"]) == 21
    assert done["bytes_added"] == sum(30_000 + i for i in range(20)) + len("CREATE TABLE studies\n")
    assert 0 < done["rto_seconds"] < done["rto_target_seconds"]
    jobs = cli("jobs", "--json", "--config", config, password=None).json()
    test = [j for j in jobs if j["kind"] == "restore_test" and j["status"] == "succeeded"]
    assert len(test) == 1 and test[0]["details"]["rto_seconds"] > 0
    nothing_left_in(Path(os.environ["TMPDIR"]))  # the sandbox is gone


def test_verify_prints_the_rto_it_recorded_never_zero(cli: Cli, tmp_path: Path) -> None:
    """The line a person reads gives the RTO the catalog holds, to the millisecond under
    a second: a fast restore test once read "in 0.0s"."""
    config = _setup(cli, tmp_path, "true")
    cli("run", "pacs", "--config", config, password=None)
    line = cli("verify", "pacs", "--config", config, password=None).stdout
    took = re.search(r"file\(s\), in (\S+) \(RTO target 30min\)", line)
    assert took is not None, line
    jobs = cli("jobs", "--json", "--config", config, password=None).json()
    rto = next(j for j in jobs if j["kind"] == "restore_test")["details"]["rto_seconds"]
    millis = round(rto * 1000)
    assert took.group(1) == (f"{millis}ms" if millis < 1000 else f"{rto:.1f}s"), (line, rto)
    assert took.group(1) not in ("0s", "0.0s", "0ms")


def test_a_failing_check_fails_the_restore_test(cli: Cli, tmp_path: Path) -> None:
    config = _setup(cli, tmp_path, "grep -rq DROP.TABLE .")
    cli("run", "pacs", "--config", config, password=None)
    failed = cli("verify", "pacs", "--config", config, password=None, check=False)
    assert failed.returncode == 1 and "check 'grep -rq DROP.TABLE .' exited 1" in failed.stderr
    jobs = cli("jobs", "--json", "--status", "failed", "--config", config,
               password=None).json()
    assert [j["kind"] for j in jobs] == ["restore_test"]
    assert jobs[0]["details"]["rto_seconds"] is None  # a failed test measures no RTO


def test_a_database_plan_without_a_backup_fails_its_restore_test(cli: Cli,
                                                                 tmp_path: Path) -> None:
    config = _setup(cli, tmp_path, "true")
    result = cli("verify", "his", "--config", config, password=None, check=False)
    assert result.returncode == 1
    assert "no postgres backup of the plan to restore" in result.stderr
