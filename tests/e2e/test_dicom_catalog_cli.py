"""The DICOM catalog through the real `medark` command (issue 18, part 2): a backup of a
PACS tree records every DICOM header, a second backup reads only the new and changed
files' headers and carries the rest over, `dicom find` answers by each key with the
snapshots holding each study, `dicom verify` passes and fails when a record disagrees
with the file, the reads are audited, and no patient data lands outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, TEST_KDF, Cli
from dicom_samples import (
    CHINESE_NAME,
    SampleTree,
    changed,
    new_study,
    write_instance,
    write_sample_tree,
)

from medark.engine.dicom_catalog import InstanceRecord, save_records, snapshot_records
from medark.repo.repository import Repository
from medark.snapshot.store import find_snapshot, save_snapshot
from medark.storage.local import LocalBackend


@dataclass
class World:
    cli: Cli
    tree: SampleTree
    first: dict[str, Any]
    second: dict[str, Any]
    catalog_url: str
    tmp: Path


def _summary(result: Any) -> dict[str, Any]:
    return [json.loads(line) for line in result.stdout.splitlines()
            if '"summary"' in line][-1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Two backups of the sample tree: between them one instance's header is corrected
    and a new study of two instances arrives. Read-only for the tests below."""
    tmp = tmp_path_factory.mktemp("dicom")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_REPO=str(tmp / "repo"), MEDARK_CACHE_DIR=str(tmp / "cache"))
    cli = Cli(tmp / "repo", env)
    cli("init")
    tree = write_sample_tree(tmp / "pacs")
    catalog_url = f"sqlite:///{tmp / 'catalog.sqlite'}"
    first = _summary(cli("backup", tree.root, "--json"))
    fixed = changed(tree.instances[0], patient_name="张^三丰")
    write_instance(tree.root, fixed)
    later = time.time() + 5
    os.utime(tree.path(fixed), (later, later))
    added = new_study()
    for instance in added:
        write_instance(tree.root, instance)
    second = _summary(cli("backup", tree.root, "--json"))
    tree.instances[0] = fixed
    tree.instances.extend(added)
    return World(cli, tree, first, second, catalog_url, tmp)


def _find(world: World, *args: str) -> dict[str, Any]:
    return world.cli("dicom", "find", "--json", *args, "--catalog", world.catalog_url).json()


def test_backups_parse_only_new_and_changed_headers(world: World) -> None:
    first, second = world.first["dicom"], world.second["dicom"]
    assert first == {"instances": 14, "malformed": 1, "parsed": 15, "carried": 0,
                     "catalog_bytes": first["catalog_bytes"],
                     "catalog_stored": first["catalog_stored"]}
    assert 0 < first["catalog_stored"] < first["catalog_bytes"]
    assert second["parsed"] == 3  # the corrected instance and the new study's two
    assert second["carried"] == 14  # the 13 others and the malformed file
    assert (second["instances"], second["malformed"]) == (16, 1)
    snaps = world.cli("snapshots", "--json").json()
    assert [s["dicom_catalog"]["instances"] for s in snaps] == [14, 16]


def test_find_by_each_key(world: World) -> None:
    first, second = world.first["snapshot_id"], world.second["snapshot_id"]
    tree = world.tree

    def studies(*args: str) -> list[str]:
        return [s["study_uid"] for s in _find(world, *args)["studies"]]

    p123 = sorted({i.study_uid for i in tree.instances if i.patient_id == "P000123"})
    assert sorted(studies("--patient-id", "P000123")) == p123 and len(p123) == 3
    assert sorted(studies("--name", "张")) == p123
    assert studies("--name", "SMITH") == [tree.instances[7].study_uid]
    assert studies("--accession", "ACC1002") == [tree.instances[5].study_uid]
    study = tree.instances[0].study_uid
    assert studies("--study-uid", study) == [study]
    assert sorted(studies("--modality", "mr")) == sorted(
        {i.study_uid for i in tree.instances if i.modality == "MR"})
    assert sorted(studies("--date", "2026-11-01..20261130")) == sorted(
        {i.study_uid for i in tree.instances if "20261101" <= i.study_date <= "20261130"})
    assert sorted(studies("--date", "20261201..")) == sorted([tree.instances[12].study_uid,
                                                               added_uid(world)])

    doc = _find(world, "--study-uid", study)["studies"][0]
    assert doc["snapshots"] == [first, second]
    assert doc["patient_name"] == "张^三丰"  # the newest snapshot's header
    assert (doc["instances"], len(doc["series"])) == (5, 2)
    assert doc["size"] == sum(tree.path(i).stat().st_size for i in tree.study(study))
    new = _find(world, "--study-uid", added_uid(world))["studies"][0]
    assert new["snapshots"] == [second]
    assert _find(world, "--study-uid", added_uid(world), "--snapshot", first[:8])[
        "studies"] == []
    text = world.cli("dicom", "find", "--name", "三").stdout
    assert CHINESE_NAME in text and "胸部CT平扫" in text and first[:8] in text


def added_uid(world: World) -> str:
    return world.tree.instances[-1].study_uid


def test_verify_passes_and_sampling_checks_fewer(world: World) -> None:
    whole = world.cli("--json", "dicom", "verify", "latest").json()
    assert (whole["instances"], whole["checked"], whole["mismatches"]) == (16, 16, [])
    sampled = world.cli("--json", "dicom", "verify", world.first["snapshot_id"][:8],
                        "--sample", "25%").json()
    assert sampled["checked"] == 4 and sampled["mismatches"] == []


def test_a_record_that_disagrees_with_its_file_fails_verify(world: World,
                                                            tmp_path: Path) -> None:
    """A snapshot whose catalog names another SOP Instance UID for one file."""
    shutil.copytree(world.cli.repo, tmp_path / "repo")
    cli = Cli(tmp_path / "repo", dict(world.cli.env, MEDARK_REPO=str(tmp_path / "repo"),
                                      MEDARK_CACHE_DIR=str(tmp_path / "cache")))
    repo = Repository.open(LocalBackend(cli.repo), PASSWORD.encode(), tmp_path / "c2")
    try:
        snap = find_snapshot(repo, "latest")
        records = snapshot_records(repo, snap)
        bad = records[3]
        records[3] = InstanceRecord(**{**{f: getattr(bad, f) for f in bad.__slots__},
                                       "sop_uid": "1.2.3.4"})
        new_tree, _size, _stored = save_records(repo, repo.config.chunker, records)
        assert new_tree is not None
        repo.flush()
        snap.dicom_catalog = dict(snap.dicom_catalog, tree=new_tree.hex())
        snap.id = ""
        forged = save_snapshot(repo, snap)
    finally:
        repo.close()
    failed = cli("dicom", "verify", forged[:8], check=False)
    assert failed.returncode == 1
    lines = [line for line in failed.stdout.splitlines() if line.startswith("mismatch:")]
    assert lines == [f"mismatch: {bad.path}: SOPInstanceUID is {bad.sop_uid!r}, the "
                     "catalog says '1.2.3.4'"]
    assert "do not match its catalog" in failed.stderr


def test_finds_and_verifies_are_audited_without_patient_data(world: World) -> None:
    _find(world, "--patient-id", "P000123")
    world.cli("dicom", "verify", "latest", "--sample", "50%", "--catalog",
              world.catalog_url)
    out = world.cli("audit", "export", "--catalog", world.catalog_url, password=None).stdout
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    finds = [r for r in records if r["action"] == "dicom.find"]
    verifies = [r for r in records if r["action"] == "dicom.verify"]
    assert finds and verifies
    by_id = next(r for r in finds if r["detail"]["filters"] == {"patient_id": "P000123"})
    assert by_id["result"] == "ok"
    assert by_id["detail"]["studies"] == 3 and len(by_id["detail"]["study_uids"]) == 3
    assert world.second["snapshot_id"] in by_id["target"]
    assert verifies[-1]["detail"]["checked"] == 8
    dumped = json.dumps(records, ensure_ascii=False)
    assert "Smith" not in dumped and "三丰" not in dumped and "胸部" not in dumped
    refused = world.cli("dicom", "find", "--name", "张", "--catalog",
                        "postgresql://postgres@127.0.0.1:1/medark_nowhere", check=False)
    assert refused.returncode == 16  # fail closed, as every read of patient data
    assert "unaudited" in refused.stderr and "张" not in refused.stdout


def test_no_patient_data_outside_the_repository_blobs(world: World) -> None:
    needles = [s.encode() for s in ("P000123", "Smith^John", "ACC1001")]
    needles += [CHINESE_NAME.encode("utf-8"), "胸部CT平扫".encode()]
    for root in (world.cli.repo, world.tmp / "cache"):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(n in data for n in needles), path


def test_no_dicom_catalog_then_a_catalog_catches_up(world: World, tmp_path: Path) -> None:
    env = dict(world.cli.env, MEDARK_REPO=str(tmp_path / "repo"),
               MEDARK_CACHE_DIR=str(tmp_path / "cache"))
    cli = Cli(tmp_path / "repo", env)
    cli("init")
    off = _summary(cli("backup", world.tree.root, "--no-dicom-catalog", "--json"))
    assert "dicom" not in off
    assert "dicom_catalog" not in cli("snapshots", "--json").json()[0]
    assert cli("dicom", "find", "--name", "张").stdout.startswith("no matching study")
    on = _summary(cli("backup", world.tree.root, "--json"))
    assert on["dicom"]["parsed"] == 0 and on["dicom"]["instances"] == 16
    assert on["files_unmodified"] == on["total_files_processed"]  # nothing read again
    found = cli("dicom", "find", "--json", "--modality", "CT").json()
    assert {s["study_uid"] for s in found["studies"]} == {
        i.study_uid for i in world.tree.instances if i.modality == "CT"}


def test_a_quiet_backup_reuses_the_catalog_and_prune_keeps_it(world: World, tmp_path: Path) -> None:
    shutil.copytree(world.cli.repo, tmp_path / "repo")
    cli = Cli(tmp_path / "repo", dict(world.cli.env, MEDARK_REPO=str(tmp_path / "repo"),
                                      MEDARK_CACHE_DIR=str(tmp_path / "cache")))
    quiet = _summary(cli("backup", world.tree.root, "--json"))["dicom"]
    assert (quiet["parsed"], quiet["carried"], quiet["catalog_stored"]) == (0, 17, 0)
    trees = [s["dicom_catalog"]["tree"] for s in cli("snapshots", "--json").json()]
    assert len(trees) == 3 and trees[1] == trees[2] != trees[0]  # the same catalog
    cli("forget", world.first["snapshot_id"][:8])
    cli("prune")
    cli("check", "--read-data")
    assert cli("--json", "dicom", "verify", "latest").json()["checked"] == 16
    found = cli("dicom", "find", "--json", "--patient-id", "P000123").json()
    assert len(found["studies"]) == 3


def test_a_copy_to_another_key_carries_the_catalog(world: World, tmp_path: Path) -> None:
    """Another repository (its own master key: every id differs) gets the catalog
    re-encrypted with the snapshots, and answers and verifies as the source does."""
    dst = tmp_path / "offsite"
    cli = Cli(dst, dict(world.cli.env, MEDARK_REPO=str(dst),
                        MEDARK_CACHE_DIR=str(tmp_path / "cache")))
    cli("init")
    cli("copy", "--from-repo", world.cli.repo)
    snaps = cli("snapshots", "--json").json()
    assert [s["dicom_catalog"]["instances"] for s in snaps] == [14, 16]
    source = world.cli("snapshots", "--json").json()
    assert snaps[1]["dicom_catalog"]["tree"] != source[1]["dicom_catalog"]["tree"]
    found = cli("dicom", "find", "--json", "--name", "张").json()["studies"]
    assert len(found) == 3 and all(len(s["snapshots"]) >= 1 for s in found)
    assert cli("--json", "dicom", "verify", "latest").json()["checked"] == 16
