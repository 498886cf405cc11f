"""The S3 backend's Object Lock capability against moto's server: retention on write
(single and multipart), removal refused while locked, and reads of the original version
behind an attacker's delete markers and overwrites."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import s3_server

from medark.errors import ObjectLocked, ObjectNotFound
from medark.storage import s3
from medark.storage.objectlock import ObjectLockBackend, object_lock
from medark.storage.s3 import S3Backend, open_s3

URL = s3_server.endpoint()
pytestmark = pytest.mark.skipif(URL is None, reason="moto's S3 server is not installed")


def _client() -> Any:
    return boto3.client("s3", endpoint_url=URL, region_name="us-east-1",
                        aws_access_key_id="medark-test", aws_secret_access_key="medark-test")


def _backend(locked: bool = True) -> tuple[S3Backend, str]:
    bucket = f"medark-lock-{uuid.uuid4().hex[:12]}"
    backend = open_s3(f"{URL}/{bucket}/repo")
    if locked:
        backend.create_locked()
    else:
        backend.create()
    return backend, bucket


def test_capability_reports_whether_the_bucket_locks() -> None:
    locked, _ = _backend()
    plain, _ = _backend(locked=False)
    assert isinstance(locked, ObjectLockBackend) and object_lock(locked) is locked
    assert locked.object_lock_enabled()
    assert not plain.object_lock_enabled()


def test_rule_locks_new_objects_and_remove_is_refused() -> None:
    backend, _bucket = _backend()
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    backend.set_retention_rule(lambda name: None if name.startswith("locks/")
                               else ("compliance", until))
    backend.save("data/aa/one", b"x" * 100)
    backend.save("locks/l1", b"lock")
    found = backend.retention("data/aa/one")
    assert found.mode == "compliance" and found.until == until and not found.legal_hold
    assert backend.retention("locks/l1").until is None
    with pytest.raises(ObjectLocked) as refused:
        backend.remove("data/aa/one")
    assert refused.value.until == until
    backend.remove("locks/l1")  # unlocked: every version goes
    assert [i.name for i in backend.list("")] == ["data/aa/one"]
    backend.set_retention("data/aa/one", until + timedelta(days=3), "compliance")
    assert backend.retention("data/aa/one").until == until + timedelta(days=3)
    backend.set_legal_hold("data/aa/one", True)
    assert backend.retention("data/aa/one").legal_hold


def test_multipart_upload_gets_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 1024)
    backend, _bucket = _backend()
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    backend.set_retention_rule(lambda name: ("governance", until))
    big = tmp_path / "pack"
    big.write_bytes(b"p" * 6 * 1024 * 1024)
    backend.save_file("data/bb/big", str(big))
    assert backend.retention("data/bb/big").until == until
    assert backend.retention("data/bb/big").mode == "governance"


def test_originals_are_read_behind_delete_markers_and_overwrites() -> None:
    backend, bucket = _backend()
    until = datetime.now(UTC) + timedelta(days=1)
    backend.set_retention_rule(lambda name: ("compliance", until))
    backend.save("snapshots/s1", b"original snapshot")
    backend.save("data/cc/p1", b"original pack")
    client = _client()
    client.delete_object(Bucket=bucket, Key="repo/snapshots/s1")
    client.put_object(Bucket=bucket, Key="repo/data/cc/p1", Body=b"ransom note")
    fresh = open_s3(f"{URL}/{bucket}/repo")  # another process: knows no version ids
    assert fresh.load("snapshots/s1") == b"original snapshot"
    assert fresh.load("data/cc/p1", 9, 4) == b"pack"
    assert fresh.stat("data/cc/p1").size == len(b"original pack")
    names = sorted(i.name for i in fresh.list(""))
    assert names == ["data/cc/p1", "snapshots/s1"]
    tampered = {t.name: t for t in fresh.tampered()}
    assert tampered["snapshots/s1"].deleted and not tampered["snapshots/s1"].overwritten
    assert tampered["data/cc/p1"].overwritten == 1
    with pytest.raises(ObjectNotFound):
        fresh.load("data/cc/absent")


def test_plain_bucket_behaves_as_before() -> None:
    backend, _bucket = _backend(locked=False)
    backend.save("data/dd/x", b"abc")
    assert backend.load("data/dd/x") == b"abc"
    backend.remove("data/dd/x")
    assert list(backend.list("")) == []
