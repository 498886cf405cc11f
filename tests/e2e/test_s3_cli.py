"""Every engine command on an S3 repository (moto's server on 127.0.0.1), through the
real `medark` command: nothing above the backend may assume a filesystem."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest
import s3_server
from conftest import Cli

URL = s3_server.endpoint()
pytestmark = pytest.mark.skipif(URL is None, reason="moto's S3 server is not installed")


@pytest.fixture
def s3cli(cli: Cli) -> Cli:
    assert URL is not None
    cli.env.update(s3_server.CREDENTIALS)
    cli.env["MEDARK_REPO"] = s3_server.new_location(URL)
    return cli


def _tree(root: Path) -> Path:
    (root / "studies" / "CT").mkdir(parents=True)
    (root / "studies" / "CT" / "img1.dcm").write_bytes(os.urandom(3_000_000))
    (root / "studies" / "CT" / "img2.dcm").write_bytes(b"DICM" * 500_000)
    (root / "his.sql").write_text("INSERT INTO orders VALUES (1);\n" * 20_000)
    return root


def test_engine_commands_work_unchanged_on_s3(s3cli: Cli, tmp_path: Path) -> None:
    data = _tree(tmp_path / "data")
    s3cli("init")
    first = s3cli("backup", data, "--json").json()
    assert first["files_new"] == 3
    (data / "his.sql").write_text("INSERT INTO orders VALUES (2);\n" * 20_000)
    second = s3cli("backup", data, "--json").json()
    assert second["files_changed"] == 1 and second["files_unmodified"] == 2
    s3cli("check", "--read-data")
    s3cli("restore", "latest", "--target", tmp_path / "out", "--verify")
    restored = tmp_path / "out" / str(data).lstrip("/")
    assert filecmp.cmpfiles(data, restored, ["his.sql"], shallow=False)[0] == ["his.sql"]
    assert (restored / "studies/CT/img1.dcm").read_bytes() == (
        data / "studies/CT/img1.dcm").read_bytes()
    s3cli("forget", "--keep-last", "1", "--prune")
    assert len(s3cli("snapshots", "--json").json()) == 1
    s3cli("check", "--read-data")


def test_missing_bucket_and_bad_credentials_are_one_line(s3cli: Cli) -> None:
    missing = s3cli("snapshots", check=False)
    assert missing.returncode == 10, missing.stderr
    s3cli("init")
    s3cli.env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    # moto accepts any signature; a credential moto refuses is an empty key id
    s3cli.env["AWS_ACCESS_KEY_ID"] = ""
    result = s3cli("snapshots", check=False)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
