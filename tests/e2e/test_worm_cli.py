"""Immutable retention (issue 4, WORM) through the real `medark` command on moto's S3
server: Object Lock on every object, an attacker's deletes and overwrites, forget/prune
skipping locked snapshots, check reporting lock state, legal holds."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import s3_server
from conftest import Cli

URL = s3_server.endpoint()
pytestmark = pytest.mark.skipif(URL is None, reason="moto's S3 server is not installed")


def _client() -> Any:
    return boto3.client("s3", endpoint_url=URL, region_name="us-east-1",
                        aws_access_key_id="medark-test", aws_secret_access_key="medark-test")


@pytest.fixture
def bucket() -> str:
    return f"medark-worm-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3cli(cli: Cli, bucket: str) -> Cli:
    cli.env.update(s3_server.CREDENTIALS)
    cli.env["MEDARK_REPO"] = f"s3:{URL}/{bucket}/repo"
    return cli


def _data(root: Path, name: str = "a.dcm", size: int = 40_000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(os.urandom(size))
    return root


def _keys(bucket: str, part: str) -> list[str]:
    pages = _client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []) if f"/{part}/" in o["Key"])


def _versions(bucket: str, key: str) -> list[dict[str, Any]]:
    answer = _client().list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in answer.get("Versions", []) if v["Key"] == key]


def test_every_object_is_locked_and_survives_an_attacker(s3cli: Cli, bucket: str,
                                                         tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    init = s3cli("init", "--lock-days", "2", "--json").json()
    assert init["object_lock"]["days"] == 2 and init["object_lock"]["mode"] == "compliance"
    first = s3cli("backup", data, "--json").json()["snapshot_id"]
    _data(data, "b.dcm")
    second = s3cli("backup", data, "--json").json()["snapshot_id"]
    client = _client()
    for part in ("data", "index", "snapshots", "keys"):
        keys = _keys(bucket, part)
        assert keys, part
        for key in keys:
            head = client.head_object(Bucket=bucket, Key=key)
            assert head["ObjectLockMode"] == "COMPLIANCE", key
    assert not _keys(bucket, "locks")  # lock files are deleted, not left locked

    # An attacker with the client's credentials: permanent deletes are refused ...
    snap_key = f"repo/snapshots/{first}"
    version = _versions(bucket, snap_key)[0]["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.delete_object(Bucket=bucket, Key=snap_key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    pack = _keys(bucket, "data")[0]
    # ... so it hides and overwrites instead: a delete marker and a new version.
    client.delete_object(Bucket=bucket, Key=snap_key)
    client.delete_object(Bucket=bucket, Key=f"repo/snapshots/{second}")
    for key in _keys(bucket, "data"):
        client.put_object(Bucket=bucket, Key=key, Body=b"encrypted by ransomware")
    assert len(_versions(bucket, pack)) == 2  # the original is kept

    listed = {s["id"] for s in s3cli("snapshots", "--json").json()}
    assert listed == {first, second}
    check = s3cli("check", "--read-data", "--json").json()
    assert check["num_errors"] == 0
    tampered = {t["object"] for t in check["tampered_objects"]}
    assert f"snapshots/{first}" in tampered and pack.removeprefix("repo/") in tampered
    s3cli("restore", first, "--target", tmp_path / "out", "--verify")
    restored = tmp_path / "out" / str(data).lstrip("/") / "a.dcm"
    assert restored.read_bytes() == (data / "a.dcm").read_bytes()


def test_delete_batch_of_locked_versions_is_refused(s3cli: Cli, bucket: str,
                                                     tmp_path: Path) -> None:
    s3cli("init", "--lock-days", "1")
    s3cli("backup", _data(tmp_path / "data"))
    client = _client()
    objects = [{"Key": key, "VersionId": _versions(bucket, key)[0]["VersionId"]}
               for key in _keys(bucket, "data") + _keys(bucket, "snapshots")]
    answer = client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert not answer.get("Deleted")
    assert {e["Code"] for e in answer["Errors"]} == {"AccessDenied"}
    s3cli("check", "--read-data")


def test_forget_prune_keeps_locked_snapshots_and_says_so(s3cli: Cli, tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    s3cli("init", "--lock-days", "3")
    old = s3cli("backup", data, "--json").json()["snapshot_id"]
    _data(data, "b.dcm")
    s3cli("backup", data)
    result = s3cli("forget", "--keep-last", "1", "--prune")
    assert f"snapshot {old[:8]} is locked (compliance) until " in result.stdout
    assert "kept" in result.stdout
    ids = {s["id"] for s in s3cli("snapshots", "--json").json()}
    assert old in ids and len(ids) == 2
    docs = s3cli("forget", "--keep-last", "1", "--json").json_lines()
    kept = next(d for d in docs if isinstance(d, dict) and d.get("message_type") == "kept_locked")
    assert kept["snapshots"][0]["id"] == old and kept["snapshots"][0]["until"]
    explicit = s3cli("forget", old)
    assert "is locked" in explicit.stdout
    s3cli("restore", old, "--target", tmp_path / "out", "--verify")
    s3cli("check", "--read-data")


def test_a_locked_snapshot_keeps_its_tags(s3cli: Cli, tmp_path: Path) -> None:
    s3cli("init", "--lock-days", "3")
    snap = s3cli("backup", _data(tmp_path / "data"), "--json").json()["snapshot_id"]
    result = s3cli("tag", "--add", "renamed", snap)
    assert f"snapshot {snap[:8]} is locked (compliance) until " in result.stderr
    assert "modified 0 snapshot(s)" in result.stdout
    [listed] = s3cli("snapshots", "--json").json()
    assert listed["id"] == snap and listed["tags"] == []


def test_prune_skips_packs_still_locked(s3cli: Cli, bucket: str, tmp_path: Path) -> None:
    """A snapshot gone (here: governance retention bypassed, as an admin may) leaves its
    packs unused but still locked: prune keeps them, one line each, and fails nothing."""
    data = _data(tmp_path / "data")
    s3cli("init", "--lock-days", "1", "--lock-mode", "governance")
    gone = s3cli("backup", data, "--json").json()["snapshot_id"]
    (data / "a.dcm").unlink()
    _data(data, "b.dcm")
    s3cli("backup", data)
    client = _client()
    key = f"repo/snapshots/{gone}"
    for v in _versions(bucket, key):
        client.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"],
                             BypassGovernanceRetention=True)
    result = s3cli("prune")
    assert "is locked until " in result.stdout and ": kept" in result.stdout
    summary = s3cli("prune", "--json").json()
    assert summary["locked"] and all(item["until"] for item in summary["locked"])
    s3cli("check", "--read-data")
    s3cli("restore", "latest", "--target", tmp_path / "out", "--verify")


def test_check_and_status_report_each_snapshots_lock(s3cli: Cli, tmp_path: Path) -> None:
    s3cli("init", "--lock-days", "5", "--lock-mode", "governance")
    snap = s3cli("backup", _data(tmp_path / "data"), "--json").json()["snapshot_id"]
    text = s3cli("check").stdout
    assert f"{snap[:8]}  locked (governance) until " in text
    doc = s3cli("check", "--json").json()
    assert doc["lock_policy"] == "5 days (governance mode)"
    (state,) = doc["snapshot_locks"]
    assert state["id"] == snap and state["locked"] and state["mode"] == "governance"
    status = s3cli("snapshot", "status", "--json").json()
    assert status[0]["until"] == state["until"]


def test_legal_hold_and_release(s3cli: Cli, bucket: str, tmp_path: Path) -> None:
    """A legal hold on a repository without a lock period (bucket with Object Lock)."""
    _client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    data = _data(tmp_path / "data")
    s3cli("init")
    held = s3cli("backup", data, "--json").json()["snapshot_id"]
    _data(data, "b.dcm")
    s3cli("backup", data)
    out = s3cli("snapshot", "hold", held[:8], "--reason", "case 2026-17").stdout
    assert "under legal hold" in out and "S3 legal hold set on" in out
    client = _client()
    key = f"repo/snapshots/{held}"
    assert client.head_object(Bucket=bucket, Key=key)["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(botocore.exceptions.ClientError):
        client.delete_object(Bucket=bucket, Key=key,
                             VersionId=_versions(bucket, key)[0]["VersionId"])
    forget = s3cli("forget", "--keep-last", "1", "--prune")
    assert f"snapshot {held[:8]} is under legal hold since" in forget.stdout
    doc = s3cli("check", "--json").json()
    state = next(s for s in doc["snapshot_locks"] if s["id"] == held)
    assert state["legal_hold"] and state["hold_reason"] == "case 2026-17"
    s3cli("snapshot", "release", held[:8])
    assert client.head_object(Bucket=bucket, Key=key)["ObjectLockLegalHoldStatus"] == "OFF"
    s3cli("forget", "--keep-last", "1", "--prune")
    assert held not in {s["id"] for s in s3cli("snapshots", "--json").json()}
    s3cli("check", "--read-data")


def test_lock_needs_object_lock(s3cli: Cli, bucket: str, cli: Cli, tmp_path: Path) -> None:
    _client().create_bucket(Bucket=bucket)  # without Object Lock
    result = s3cli("init", "--lock-days", "7", check=False)
    assert result.returncode == 13, result.stderr
    assert "has no Object Lock" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    cli.env["MEDARK_REPO"] = str(tmp_path / "local")
    local = cli("init", "--lock-days", "7", check=False)
    assert local.returncode == 13 and "cannot lock objects" in local.stderr


def test_legal_hold_on_a_local_repository(initialized: Cli, tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    held = initialized("backup", data, "--json").json()["snapshot_id"]
    _data(data, "b.dcm")
    initialized("backup", data)
    assert "hold marker" in initialized("snapshot", "hold", held).stdout
    forget = initialized("forget", "--keep-last", "1", "--prune")
    assert "under legal hold" in forget.stdout
    assert held in {s["id"] for s in initialized("snapshots", "--json").json()}
    initialized("snapshot", "release", held)
    initialized("forget", "--keep-last", "1", "--prune")
    assert held not in {s["id"] for s in initialized("snapshots", "--json").json()}
    initialized("check", "--read-data")


def test_an_archived_wal_segment_keeps_the_old_packs_it_shares_locked(
        s3cli: Cli, bucket: str, tmp_path: Path) -> None:
    """The all-zero tail of every WAL segment is one blob in the first segment's pack:
    each new record extends that pack's lock, or an attacker could delete it later."""
    import datetime as dt

    s3cli("init", "--lock-days", "2")
    system_id = "7301234567890123456"

    def segment(n: int) -> Path:
        seg = tmp_path / "pg_wal" / f"00000001000000000000000{n}"
        seg.parent.mkdir(exist_ok=True)
        seg.write_bytes((os.urandom(200_000) + bytes(16 * 1024 * 1024))[:16 * 1024 * 1024])
        return seg

    s3cli("pg", "wal-push", "--system-id", system_id, segment(1))
    client = _client()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    packs = _keys(bucket, "data")
    for key in packs:  # as if written long ago: the lock ends within the hour
        client.put_object_retention(Bucket=bucket, Key=key, BypassGovernanceRetention=True,
                                    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon})
    shutil.rmtree(tmp_path / "cache")  # another host: no remembered expiries
    s3cli("pg", "wal-push", "--system-id", system_id, segment(2))
    horizon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2) - dt.timedelta(minutes=5)
    extended = [k for k in packs
                if client.head_object(Bucket=bucket, Key=k)["ObjectLockRetainUntilDate"]
                >= horizon]
    assert extended, "the pack holding the shared zero block was not extended"


def test_release_refuses_while_a_hold_marker_cannot_be_verified(
        s3cli: Cli, bucket: str, tmp_path: Path) -> None:
    """Fail closed (issue 13): a marker nothing can verify may hold a snapshot sharing
    objects with the released one, so no S3 legal hold is lifted and nothing recorded."""
    _client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    data = _data(tmp_path / "data")
    s3cli("init")
    held = s3cli("backup", data, "--json").json()["snapshot_id"]
    s3cli("snapshot", "hold", held)
    bad = "holds/" + "e7" * 32
    client = _client()
    client.put_object(Bucket=bucket, Key=f"repo/{bad}", Body=b"not a sealed marker")
    markers = _keys(bucket, "holds")
    result = s3cli("snapshot", "release", held, check=False)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"hold marker {bad} cannot be read or verified" in line
    assert "release lifts no S3 legal hold" in line and "`medark check`" in line
    for key in (f"repo/snapshots/{held}", "repo/config"):
        assert client.head_object(Bucket=bucket, Key=key)["ObjectLockLegalHoldStatus"] == "ON"
    assert _keys(bucket, "holds") == markers
    check = s3cli("check", check=False)
    assert check.returncode == 1 and f"hold marker {bad}" in check.stderr
