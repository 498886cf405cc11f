"""Patient-data reads by the `medark` command in the audit trail (docs/audit.md, "What
the command line records"), as subprocesses on SQLite and the running PostgreSQL:
restore, dump, ls, find and diff each append one record (action, repository and
snapshot, result), a failed restore records `failed`, and `medark audit verify` passes
afterwards. The catalog is found by MEDARK_CATALOG or the configuration file; without
either nothing is recorded and nothing fails; a configured catalog that cannot record
refuses the read (exit 16) unless --allow-unaudited."""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_urls import KINDS, catalog_urls
from conftest import Cli
from plan_site import write_plan_config

CATALOG_ERROR = 16
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/medark_nowhere"
PLAN = """\
[systems.emr]
owner = "medical records office"
records = "inpatient"

[[systems.emr.sources]]
type = "files"
paths = ["{data}"]

[plans.emr]
system = "emr"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ last = 3, yearly = 30 }}
"""


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_access_e2e")


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "ward7"
    (data / "patient-4711").mkdir(parents=True)
    (data / "patient-4711" / "report.txt").write_text("diagnosis: fine\n")
    return data


def _backed_up(cli: Cli, tmp_path: Path) -> tuple[Path, str]:
    data = _data(tmp_path)
    cli("init")
    cli("backup", data)
    snap = cli("--json", "snapshots").json()[-1]["id"]
    return data, snap


def _records(cli: Cli, url: str) -> list[dict[str, Any]]:
    """The trail as `audit export` gives it (its own audit.export record not yet in it)."""
    out = cli("audit", "export", "--catalog", url, password=None).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_reads_are_recorded_and_the_trail_verifies(cli: Cli, tmp_path: Path,
                                                   url: str) -> None:
    data, snap = _backed_up(cli, tmp_path)
    cli.env["MEDARK_CATALOG"] = url
    file = data / "patient-4711" / "report.txt"
    cli("restore", "latest", "--target", tmp_path / "restored")
    cli("dump", snap[:8], file, "--target", tmp_path / "report.txt")
    cli("ls", "latest", data)
    cli("find", "report*")
    cli("diff", snap, "latest")
    failed = cli("restore", "deadbeef", "--target", tmp_path / "nowhere", check=False)
    assert failed.returncode != 0

    records = _records(cli, url)
    assert [r["action"] for r in records] == [
        "snapshot.restore", "snapshot.dump", "snapshot.browse", "snapshot.find",
        "snapshot.diff", "snapshot.restore"]
    repository = f"repository:{cli.repo}"
    for record in records[:5]:
        assert record["result"] == "ok"
        assert record["target"] == f"{repository} snapshot:{snap}"
        assert record["actor"] == f"cli:{getpass.getuser()}"
        assert record["source"] == socket.gethostname()
    restore, dump, browse, find, _diff, refused = records
    assert restore["detail"]["target_dir"] == str(tmp_path / "restored")
    assert restore["detail"]["files"] >= 3
    assert dump["detail"]["path"] == str(file)
    assert dump["detail"]["output"] == str(tmp_path / "report.txt")
    assert browse["detail"]["paths"] == [str(data)]
    assert find["detail"]["patterns"] == ["report*"]
    assert find["detail"]["hits"] == 1
    assert refused["result"] == "failed"
    assert refused["target"] == repository  # no snapshot was reached
    assert "deadbeef" in refused["detail"]["reason"]
    assert "password" not in json.dumps(records).lower()

    verified = cli("audit", "verify", "--catalog", url, password=None)
    assert "intact" in verified.stdout


def test_the_configuration_files_catalog_records(cli: Cli, tmp_path: Path) -> None:
    data = _data(tmp_path)
    config = write_plan_config(cli, tmp_path, PLAN, data=data)
    cli("backup", data)
    cli.env["MEDARK_CONFIG"] = str(config)
    cli("ls", "latest")
    records = _records(cli, f"sqlite:///{tmp_path / 'state' / 'catalog.sqlite'}")
    assert [(r["action"], r["result"]) for r in records] == [("snapshot.browse", "ok")]


def test_a_restore_that_fails_midway_records_failed(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    _data_dir, snap = _backed_up(cli, tmp_path)
    cli.env["MEDARK_CATALOG"] = url
    target = tmp_path / "blocked"
    target.write_text("a file where the directory should go\n")
    result = cli("restore", snap, "--target", target, check=False)
    assert result.returncode != 0
    (record,) = _records(cli, url)
    assert (record["action"], record["result"]) == ("snapshot.restore", "failed")
    assert record["target"].endswith(f"snapshot:{snap}")
    assert record["detail"]["error"]


def test_without_a_catalog_nothing_is_recorded(cli: Cli, tmp_path: Path) -> None:
    _backed_up(cli, tmp_path)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    keys_before = sorted((state / "medark").rglob("*")) if (state / "medark").exists() \
        else []
    restored = cli("restore", "latest", "--target", tmp_path / "restored")
    assert "audit" not in restored.stderr
    assert cli("ls", "latest").returncode == 0
    assert list((tmp_path / "restored").rglob("report.txt"))
    assert not list(tmp_path.rglob("*.audit-key"))
    keys_after = sorted((state / "medark").rglob("*")) if (state / "medark").exists() \
        else []
    assert keys_after == keys_before


def test_an_unreachable_catalog_refuses_the_read(cli: Cli, tmp_path: Path) -> None:
    _backed_up(cli, tmp_path)
    cli.env["MEDARK_CATALOG"] = UNREACHABLE
    target = tmp_path / "restored"
    refused = cli("restore", "latest", "--target", target, check=False)
    assert refused.returncode == CATALOG_ERROR
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to read patient data unaudited" in lines[0]
    assert "--allow-unaudited" in lines[0]
    assert not target.exists()  # refused before anything was read
    dumped = cli("dump", "latest", "/", "--target", tmp_path / "all.tar", check=False)
    assert dumped.returncode == CATALOG_ERROR
    assert not (tmp_path / "all.tar").exists()

    allowed = cli("restore", "latest", "--target", target, "--allow-unaudited")
    assert "not audited" in allowed.stderr
    assert list(target.rglob("report.txt"))


def test_an_unusable_audit_key_refuses_the_read(cli: Cli, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.sqlite"
    _backed_up(cli, tmp_path)
    cli.env["MEDARK_CATALOG"] = f"sqlite:///{catalog}"
    cli("ls", "latest")  # makes the key, beside the catalog
    key = Path(f"{catalog}.audit-key")
    key.chmod(0o644)
    refused = cli("ls", "latest", check=False)
    assert refused.returncode == CATALOG_ERROR
    assert "readable by others" in refused.stderr
    assert refused.stdout == ""
