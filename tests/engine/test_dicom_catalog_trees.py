"""An unchanged PACS tree with more directories than the catalog trees kept in memory
(engine/dicom_catalog.py `_TREES_KEPT`, lowered so that an Orthanc tree's 65,536 leaf
nodes are not all held): every directory's catalog is still reused, nothing parsed or
stored again, the same catalog tree named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dicom_samples import Instance, uid, write_instance

from medark.engine.backup import Backup
from medark.engine.backup_model import BackupOptions
from medark.engine.dicom_catalog import _TREES_KEPT, CatalogBuilder
from medark.repo.compression import CompressionSpec
from medark.repo.crypto import DEFAULT_SUITE
from medark.repo.repository import Repository
from medark.snapshot.model import Snapshot
from medark.storage.local import LocalBackend
from medark.util.progress import NullProgress


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", DEFAULT_SUITE,
                        CompressionSpec("zstd", 3), cache_dir=tmp_path / "cache")
    yield r
    r.close()


def _backup(repo: Repository, root: Path) -> Snapshot:
    builder = CatalogBuilder(repo, repo.config.chunker, repo.flush)  # type: ignore[arg-type]
    return Backup(repo, BackupOptions(paths=[str(root)], host="pacs1", workers=2,
                                      observer=builder), NullProgress()).run().snapshot


def test_more_directories_than_trees_kept_are_all_reused(repo: Repository,
                                                         tmp_path: Path) -> None:
    root = tmp_path / "orthanc"
    first_level = _TREES_KEPT + 8
    for a in range(first_level):  # <hh>/<hh>/<uuid>, two leaves under each
        for b in range(2):
            study, series = a + 1, b + 1
            write_instance(root, Instance(f"{a:02x}/{b:02x}/i{a}-{b}", f"P{study}", "张^三",
                                          uid(study), uid(study, series),
                                          uid(study, series, 1), pixels=bytes(16)))
    first = _backup(repo, root)
    assert first.dicom_catalog["instances"] == first_level * 2
    again = _backup(repo, root)
    assert again.dicom_catalog == first.dicom_catalog
    dicom = again.summary["dicom"]
    assert dicom["parsed"] == 0 and dicom["carried"] == first_level * 2
    assert dicom["catalog_stored"] == 0
