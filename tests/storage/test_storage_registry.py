"""Repository locations to backends: a typo must never silently become a local directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from medark.errors import UsageError
from medark.storage.local import LocalBackend
from medark.storage.mem import MemoryBackend
from medark.storage.registry import open_backend
from medark.storage.s3 import S3Location


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/srv/backup", "/srv/backup"),
        ("local:/srv/backup", "/srv/backup"),
        ("./rel:with:colons", "rel:with:colons"),
        ("C:\\backup", "C:\\backup"),
        ("plain/relative", "plain/relative"),
    ],
)
def test_paths_open_local_backends(location: str, expected: str) -> None:
    backend = open_backend(location)
    assert isinstance(backend, LocalBackend)
    assert backend.root == Path(expected).absolute()


def test_mem_scheme() -> None:
    assert isinstance(open_backend("mem:"), MemoryBackend)


@pytest.mark.parametrize(
    "location",
    ["", "local:", "s3:", "s3:https://host", "s3:https://host/Not_A_Bucket",
     "sftp+ssh://host/repo", "rest-server:http://x", "b2:b"],
)
def test_bad_locations_are_usage_errors(location: str) -> None:
    with pytest.raises(UsageError):
        open_backend(location)


@pytest.mark.parametrize(("location", "bucket", "prefix", "endpoint"), [
    ("s3:https://minio.hospital.local:9000/backups/his", "backups", "his",
     "https://minio.hospital.local:9000"),
    ("s3:http://127.0.0.1:9000/backups", "backups", "", "http://127.0.0.1:9000"),
    ("s3:oss-cn-chengdu.example.com/pacs-archive/a/b", "pacs-archive", "a/b",
     "https://oss-cn-chengdu.example.com"),
    ("s3://backups/his", "backups", "his", None),
])
def test_s3_locations(location: str, bucket: str, prefix: str, endpoint: str | None) -> None:
    parsed = S3Location.parse(location.removeprefix("s3:"))
    assert (parsed.bucket, parsed.prefix, parsed.endpoint) == (bucket, prefix, endpoint)
    assert parsed.key("config") == (f"{prefix}/config" if prefix else "config")
