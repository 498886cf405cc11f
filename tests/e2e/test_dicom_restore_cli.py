"""`medark dicom restore` through the real command (issue 18, part 2): a PACS tree is
backed up twice (between the two, one instance is corrected and one study deleted), then
one study is pushed by C-STORE into a throwaway Orthanc, which must hold exactly that
study's instances with their data sets unchanged, or restored to a directory, byte for
byte. The snapshot is the newest that holds the study unless one is given. A PACS that
refuses instances gives exit 34, one it cannot reach or that rejects the association
33; every restore is audited, and refused before any read when it cannot be."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KDF, Cli
from dicom_samples import CHINESE_NAME, SampleTree, changed, write_instance, write_sample_tree
from orthanc_server import OrthancServer, can_run_orthanc, data_set, running_orthanc
from pg_server import free_port

REFUSED_PATIENT = "P000999"
REFUSING_FILTER = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.PatientID == '{REFUSED_PATIENT}' then error('refused by the test') end
  return true
end
"""


@dataclass
class World:
    cli: Cli
    tree: SampleTree
    originals: dict[str, bytes]
    """Each instance's bytes as the first backup read them, by SOP Instance UID."""
    first: str
    second: str
    corrected: str
    """SOP UID of the instance whose header changed between the backups."""
    deleted_study: str
    catalog_url: str
    tmp: Path


def _snapshot_id(result: Any) -> str:
    doc = [json.loads(line) for line in result.stdout.splitlines() if '"summary"' in line]
    return str(doc[-1]["snapshot_id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("dicom-restore")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    (tmp / "tmpdir").mkdir()
    env.update(TEST_KDF, MEDARK_REPO=str(tmp / "repo"), MEDARK_CACHE_DIR=str(tmp / "cache"),
               TMPDIR=str(tmp / "tmpdir"))
    cli = Cli(tmp / "repo", env)
    cli("init")
    tree = write_sample_tree(tmp / "pacs")
    originals = {i.sop_uid: tree.path(i).read_bytes() for i in tree.instances}
    first = _snapshot_id(cli("backup", tree.root, "--json"))
    fixed = changed(tree.instances[0], patient_name="张^三丰")
    write_instance(tree.root, fixed)
    later = time.time() + 5
    os.utime(tree.path(fixed), (later, later))
    tree.instances[0] = fixed
    deleted = tree.studies()[1]
    for instance in tree.study(deleted):
        tree.path(instance).unlink()
    second = _snapshot_id(cli("backup", tree.root, "--json"))
    return World(cli, tree, originals, first, second, fixed.sop_uid, deleted,
                 f"sqlite:///{tmp / 'catalog.sqlite'}", tmp)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = can_run_orthanc()
    if reason:
        pytest.skip(reason)
    with running_orthanc(check_called_aet=True, lua=REFUSING_FILTER) as server:
        yield server


@pytest.fixture
def pacs(orthanc: OrthancServer) -> OrthancServer:
    orthanc.delete_all()
    return orthanc


def _restore(world: World, *args: str | Path, check: bool = True) -> Any:
    return world.cli("dicom", "restore", *args, "--catalog", world.catalog_url,
                     check=check)


def _audit(world: World) -> list[dict[str, Any]]:
    out = world.cli("audit", "export", "--catalog", world.catalog_url, password=None).stdout
    return [r for r in (json.loads(line) for line in out.splitlines() if line.strip())
            if r["action"] == "dicom.restore"]


def test_to_pacs_exactly_the_study_arrives_unchanged(world: World,
                                                     pacs: OrthancServer) -> None:
    study = world.tree.instances[0].study_uid
    expected = world.tree.study(study)
    result = _restore(world, "--study", study, "--to-pacs", pacs.peer, "--json")
    doc = result.json()
    assert doc["snapshot_id"] == world.second  # the newest holding the study
    assert doc["instances"] == doc["push"]["stored"] == len(expected) == 5
    assert doc["push"]["failed"] == 0 and doc["destination"] == pacs.peer
    assert pacs.study_uids() == [study]
    assert pacs.sop_instance_uids() == sorted(i.sop_uid for i in expected)
    for instance in expected:  # the corrected instance as the second backup read it
        assert data_set(pacs.instance_file(instance.sop_uid)) == data_set(
            world.tree.path(instance).read_bytes())
    assert list((world.tmp / "tmpdir").iterdir()) == []  # nothing put on disk

    # a PACS that refuses a study's instances: each named, exit 34
    refused_study = next(i.study_uid for i in world.tree.instances
                         if i.patient_id == REFUSED_PATIENT)
    refused = _restore(world, "--study", refused_study, "--to-pacs", pacs.peer, "--json",
                       check=False)
    assert refused.returncode == 34
    docs = refused.json_lines()
    assert len(docs) == 1  # the summary already says it: no second error document
    push = docs[0]["push"]
    assert (push["stored"], push["failed"]) == (0, 2)
    assert {r["status_code"] for r in push["results"]} == {"0xA700"}
    failed_lines = [line for line in refused.stderr.splitlines()
                    if line.startswith("failed:")]
    assert len(failed_lines) == 2 and all("0xA700" in line for line in failed_lines)
    assert "2 of 2 instance(s) were not stored" in refused.stderr
    assert pacs.study_uids() == [study]

    records = _audit(world)
    stored = next(r for r in records if r["detail"]["study_uid"] == study
                  and r["detail"]["to"] == "pacs")
    assert stored["result"] == "ok" and world.second in stored["target"]
    detail = stored["detail"]
    assert detail["instances"] == 5 and detail["destination"] == pacs.peer
    assert (detail["stored"], detail["failed"]) == (5, 0)
    failed = next(r for r in records if r["detail"]["study_uid"] == refused_study)
    assert failed["result"] == "failed"
    assert failed["detail"]["error"] == "pacs_store_failed"
    assert failed["detail"]["failed"] == 2
    assert CHINESE_NAME not in json.dumps(records, ensure_ascii=False)


def test_one_series_from_an_older_snapshot(world: World, pacs: OrthancServer) -> None:
    first = world.tree.instances[0]
    result = _restore(world, "--study", first.study_uid, "--series", first.series_uid,
                      "--snapshot", world.first[:8], "--to-pacs", pacs.peer)
    assert "Summary: 3 of 3 instance(s)" in result.stdout and "0 failed" in result.stdout
    assert pacs.sop_instance_uids() == sorted(i.sop_uid for i in
                                              world.tree.series(first.series_uid))
    # the first snapshot holds the instance as it was before its correction
    original = world.originals[world.corrected]
    assert data_set(pacs.instance_file(world.corrected)) == data_set(original)


def test_to_a_directory_byte_for_byte_with_metadata(world: World, tmp_path: Path) -> None:
    study = world.tree.studies()[3]  # GB18030 names, implicit VR
    target = tmp_path / "restored"
    result = _restore(world, "--study", study, "--target", target)
    expected = world.tree.study(study)
    assert f"restored {len(expected)} instance(s) of study {study}" in result.stdout
    assert f"{len(expected)} file(s) read back and verified" in result.stdout
    restored = sorted(p for p in target.rglob("*") if p.is_file())
    assert restored == sorted(target / str(world.tree.path(i)).lstrip("/")
                              for i in expected)
    for instance in expected:
        source = world.tree.path(instance)
        copy = target / str(source).lstrip("/")
        assert copy.read_bytes() == source.read_bytes()
        assert copy.stat().st_mtime_ns == source.stat().st_mtime_ns
        assert copy.stat().st_mode == source.stat().st_mode

    # a study deleted before the second backup: from the first, the newest holding it
    older = tmp_path / "older"
    doc = _restore(world, "--study", world.deleted_study, "--target", older,
                   "--json").json()
    assert doc["snapshot_id"] == world.first
    restored = sorted(p for p in older.rglob("*") if p.is_file())
    assert len(restored) == doc["instances"] == 2
    for path in restored:
        assert path.read_bytes() == world.originals[path.name.removesuffix(".dcm")]

    records = {r["detail"]["study_uid"]: r for r in _audit(world)}
    assert records[study]["detail"]["to"] == "directory"
    assert records[study]["detail"]["destination"] == str(target)
    assert records[study]["detail"]["instances"] == len(expected)
    assert world.first in records[world.deleted_study]["target"]


def test_a_peer_that_cannot_take_the_study_is_one_line(world: World,
                                                       pacs: OrthancServer) -> None:
    study = world.tree.instances[0].study_uid
    wrong = pacs.peer.replace("ORTHANC@", "ELSEWHERE@")
    for peer, says in ((wrong, "Called AE title not recognised"),
                       (f"ORTHANC@127.0.0.1:{free_port()}", "cannot connect")):
        result = _restore(world, "--study", study, "--to-pacs", peer, check=False)
        assert result.returncode == 33, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and peer in lines[0]
    assert pacs.instances() == []
    bad = _restore(world, "--study", study, "--to-pacs", "ORTHANC@127.0.0.1", check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "AET@host:port" in bad.stderr
    unknown = _restore(world, "--study", "1.2.3.4", "--target", world.tmp / "none",
                       check=False)
    assert unknown.returncode == 1
    assert "study 1.2.3.4 is in no snapshot's DICOM catalog" in unknown.stderr
    assert not (world.tmp / "none").exists()


def test_an_unrecordable_restore_is_refused_before_any_read(world: World,
                                                           pacs: OrthancServer) -> None:
    study = world.tree.instances[0].study_uid
    result = world.cli("dicom", "restore", "--study", study, "--to-pacs", pacs.peer,
                       "--catalog", "postgresql://postgres@127.0.0.1:1/medark_nowhere",
                       check=False)
    assert result.returncode == 16
    assert "refusing to read patient data unaudited" in result.stderr
    assert pacs.instances() == []


def test_no_patient_data_left_outside_the_repository(world: World) -> None:
    needles = [CHINESE_NAME.encode("utf-8"), b"Smith^John", b"P000123"]
    for root in (world.tmp / "cache", world.tmp / "tmpdir"):
        for path in root.rglob("*"):
            if path.is_file():
                assert not any(n in path.read_bytes() for n in needles), path
