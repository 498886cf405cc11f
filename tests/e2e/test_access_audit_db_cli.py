"""`medark pg restore` and `mysql restore` in the audit trail (docs/audit.md, "What the
command line records"): a restore of a backup from a throwaway PostgreSQL or MariaDB
server appends one `db.restore` record naming the repository and the backup's snapshot;
one refused for a target directory in use records `failed`; `audit verify` passes
afterwards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from mysql_server import MariaServer
from mysql_server import can_run_servers as maria_unavailable
from mysql_server import make_base as maria_base
from pg_server import PgServer, can_run_servers, running_server

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))


@pytest.fixture
def server() -> Iterator[PgServer]:
    with running_server() as pg:
        yield pg


def test_pg_restore_is_recorded(cli: Cli, server: PgServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    cli("init")
    cli("pg", "backup", "--dsn", server.dsn, "--archive-timeout", "0",
        "--pg-bin", server.bin_dir)
    snap = cli("--json", "snapshots").json()[-1]["id"]
    cli.env["MEDARK_CATALOG"] = url
    target = tmp_path / "restored"
    cli("pg", "restore", "--target-dir", target, "--backup-only", "--pg-bin", server.bin_dir)
    assert (target / "PG_VERSION").exists()
    in_use = tmp_path / "in-use"
    in_use.mkdir()
    (in_use / "PG_VERSION").write_text("15\n")
    refused = cli("pg", "restore", "--target-dir", in_use, "--backup-only", check=False)
    assert refused.returncode != 0

    out = cli("audit", "export", "--catalog", url, password=None).stdout
    restored, failed = [json.loads(line) for line in out.splitlines()]
    assert (restored["action"], restored["result"]) == ("db.restore", "ok")
    assert restored["target"] == f"repository:{cli.repo} snapshot:{snap}"
    assert restored["detail"]["engine"] == "postgresql"
    assert restored["detail"]["target_dir"] == str(target)
    assert restored["detail"]["recovery_target"] == "immediate"
    assert (failed["action"], failed["result"]) == ("db.restore", "failed")
    assert failed["detail"]["target_dir"] == str(in_use)
    assert "intact" in cli("audit", "verify", "--catalog", url, password=None).stdout


@pytest.fixture
def maria() -> Iterator[MariaServer]:
    reason = maria_unavailable()
    if reason is not None:
        pytest.skip(reason)
    base = maria_base()
    server = MariaServer(base, log_bin=False)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        for extra in base.parent.glob(base.name + "*"):
            shutil.rmtree(extra, ignore_errors=True)


def test_mysql_restore_is_recorded(cli: Cli, maria: MariaServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    cli("init")
    cli("mysql", "backup", "--dsn", maria.dsn, "--logical")
    snap = cli("--json", "snapshots").json()[-1]["id"]
    cli.env["MEDARK_CATALOG"] = url
    target = maria.base.parent / f"{maria.base.name}-restored"  # the mysql user's reach
    cli("mysql", "restore", "--target-dir", target, "--backup-only", "--timeout", "120")
    out = cli("audit", "export", "--catalog", url, password=None).stdout
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert (record["action"], record["result"]) == ("db.restore", "ok")
    assert record["target"] == f"repository:{cli.repo} snapshot:{snap}"
    assert record["detail"]["engine"] == "mariadb"
    assert record["detail"]["recovery_target"] == "backup"
