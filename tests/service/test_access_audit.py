"""service/access_audit.py without the command: what a record names as the repository
(never a credential), and the record of a read interrupted by the operator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medark.catalog.audit_trail import read_records
from medark.catalog.store import Catalog
from medark.service.access_audit import audited, public_location


@pytest.mark.parametrize(("location", "shown"), [
    ("s3:https://AKIAKEY:s3cr/et@minio.local:9000/backups/his?token=abc",
     "s3:https://minio.local:9000/backups/his"),
    ("rest:https://clerk:p@ss@backup.local:8000/", "rest:https://backup.local:8000/"),
    ("s3://bucket/prefix", "s3://bucket/prefix"),
    ("local:/srv/medark", "local:/srv/medark"),
])
def test_the_repository_is_named_without_credentials(location: str, shown: str) -> None:
    assert public_location(location) == shown


def test_a_relative_path_is_made_absolute(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert public_location("repo") == os.path.join(str(tmp_path), "repo")


def test_an_interrupted_read_is_recorded_failed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    warnings: list[str] = []
    with pytest.raises(KeyboardInterrupt), audited(
            "snapshot.restore", str(tmp_path / "repo"), url, False, warnings.append,
            target_dir="/restore") as access:
        access.snapshot("ab" * 32)
        raise KeyboardInterrupt
    catalog = Catalog(url)
    try:
        (record,) = list(read_records(catalog))
    finally:
        catalog.close()
    assert (record.action, record.result) == ("snapshot.restore", "failed")
    assert record.target == f"repository:{tmp_path / 'repo'} snapshot:{'ab' * 32}"
    assert record.detail["error"] == "KeyboardInterrupt"
    assert record.detail["target_dir"] == "/restore"
    assert warnings == []
