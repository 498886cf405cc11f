"""Repository locations to backends: a typo must never silently become a local directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from medark.errors import UsageError
from medark.storage.local import LocalBackend
from medark.storage.mem import MemoryBackend
from medark.storage.registry import open_backend


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
    ["", "local:", "s3:bucket/prefix", "sftp+ssh://host/repo", "rest-server:http://x", "b2:b"],
)
def test_bad_locations_are_usage_errors(location: str) -> None:
    with pytest.raises(UsageError):
        open_backend(location)
