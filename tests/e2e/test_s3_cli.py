"""Every engine command on an S3 repository (moto's server on 127.0.0.1), through the
real `medark` command: nothing above the backend may assume a filesystem."""

from __future__ import annotations

import filecmp
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import s3_server
from conftest import MEDARK, PASSWORD, Cli
from tcp_proxy import CuttableProxy

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


def _proxied(s3cli: Cli) -> tuple[CuttableProxy, str]:
    """The repository through a proxy the test can cut; (proxy, bucket)."""
    assert URL is not None
    host, port = URL.removeprefix("http://").split(":")
    proxy = CuttableProxy(host, int(port))
    bucket = s3cli.env["MEDARK_REPO"].split("/")[3]
    s3cli.env["MEDARK_REPO"] = f"s3:http://127.0.0.1:{proxy.port}/{bucket}/repo"
    return proxy, bucket


def _landed(bucket: str, kind: str = "data") -> int:
    """How many objects of a kind (data = packs, index) the store holds."""
    import boto3

    client = boto3.client("s3", endpoint_url=URL)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"repo/{kind}/")
    return int(listed.get("KeyCount", 0))


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _big_tree(root: Path) -> Path:
    root.mkdir()
    for i in range(80):
        (root / f"img{i:02}.dcm").write_bytes(os.urandom(1_000_000))
    return root


def test_a_backup_rides_out_a_dropped_connection(s3cli: Cli, tmp_path: Path) -> None:
    proxy, bucket = _proxied(s3cli)
    try:
        s3cli("init")
        data = _big_tree(tmp_path / "data")
        backup = subprocess.Popen([MEDARK, "backup", str(data), "--json"],
                                  env=dict(s3cli.env, MEDARK_PASSWORD=PASSWORD),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait(lambda: _landed(bucket) >= 1, 120, "a pack to land")
        proxy.cut()  # every connection reset, new ones refused, for two seconds
        time.sleep(2)
        proxy.mend()
        _out, err = backup.communicate(timeout=300)
        assert backup.returncode == 0, err
        s3cli("check", "--read-data")
    finally:
        proxy.close()


def test_after_the_link_fails_a_rerun_sends_only_what_did_not_land(s3cli: Cli,
                                                                   tmp_path: Path) -> None:
    proxy, bucket = _proxied(s3cli)
    try:
        s3cli("init")
        data = _big_tree(tmp_path / "data")
        env = dict(s3cli.env, MEDARK_PASSWORD=PASSWORD, MEDARK_BACKEND_ATTEMPTS="2")
        # paced (about 10 s for the whole tree) so the link fails halfway
        backup = subprocess.Popen([MEDARK, "backup", str(data), "--limit-upload", "8000"],
                                  env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # two index files: at least two packs (32 MiB of the 80 MB) landed and indexed
        _wait(lambda: _landed(bucket, "index") >= 2, 120, "two packs to be indexed")
        proxy.cut()  # and it stays down: the backup gives up
        _out, err = backup.communicate(timeout=300)
        assert backup.returncode == 1, err
        lines = err.strip().splitlines()  # the failure, and that the lock stayed behind
        assert "Traceback" not in err and lines[-1].startswith("medark: saving ")
        assert all("lock" in line for line in lines[:-1])
        proxy.mend()
        rerun = s3cli("backup", data, "--json").json()
        assert rerun["data_added_packed"] < 0.65 * 80_000_000, rerun
        s3cli("check", "--read-data")
        s3cli("restore", "latest", "--target", tmp_path / "out")
        restored = tmp_path / "out" / str(data).lstrip("/")
        assert all((restored / p.name).read_bytes() == p.read_bytes() for p in data.iterdir())
    finally:
        proxy.close()
