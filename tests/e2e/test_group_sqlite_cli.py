"""A consistency group on Orthanc's SQLite index, end to end (docs/pacs.md, "A group on
SQLite"): a real Orthanc holding its index alone while it runs, studies with Chinese
names uploaded; `group backup` of the plan stops it with the configured stop command,
copies the index, starts it again and scans the storage; the storage and index are then
destroyed, `group restore` writes the index and the files back, and Orthanc started on
the restored pair gives every instance back byte-identical, with no index row lacking
its file. Without the commands, the locked index is one clear line."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest
from conftest import PASSWORD, Cli
from dicom_samples import encode, new_study, sample_instances
from group_site import pacs_plan, site_head, sqlite_source
from orthanc_server import OrthancServer, can_run_orthanc, running_orthanc

REASON = can_run_orthanc("sqlite")
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))



def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_point_on_sqlite_restores_orthanc_whole(cli: Cli, tmp_path: Path) -> None:
    cli.env["HOME"] = str(tmp_path / "home")
    cli("init")
    with running_orthanc(index="sqlite") as pacs:
        index = pacs.storage_dir / "index"  # IndexDirectory = StorageDirectory
        for instance in sample_instances():
            pacs.upload(encode(instance))
        locked = cli("--json", "group", "backup", "--name", "pacs", "--pacs", "orthanc",
                     "--root", pacs.storage_dir, "--sqlite", index, check=False)
        assert locked.returncode == 1, locked.stderr
        assert "is locked: Orthanc holds its SQLite index alone" in locked.stderr
        assert len(locked.stderr.strip().splitlines()) == 1, locked.stderr

        stop, start = pacs.service_commands()
        password_file = tmp_path / "password"
        password_file.write_text(PASSWORD)
        config = tmp_path / "medark.toml"
        config.write_text(site_head(cli.repo, password_file) + pacs_plan(
            "", pacs.storage_dir, "orthanc", database=sqlite_source(index, stop, start)))
        taken = cli("--json", "group", "backup", "pacs", "--config", config, check=False)
        assert taken.returncode == 0, taken.stderr
        pacs.reattached()  # the start command's Orthanc
        doc = taken.json()
        db = doc["database"]
        assert db["kind"] == "sqlite" and db["path"] == str(index) and db["stopped"]
        counts = doc["counts"]
        assert counts["references"] == counts["referenced"] == len(sample_instances())
        assert counts["missing"] == counts["filled"] == 0
        assert "index" not in doc["after_point"], "the live index is not scanned"
        source = {sop: sha256(pacs.instance_file(sop)) for sop in pacs.sop_instance_uids()}
        later = new_study(77, count=1)[0]  # after the point: not in it
        pacs.upload(encode(later))
        pacs.kill()
    # destroyed: storage and index gone with the throwaway Orthanc
    assert not pacs.base.exists()

    restored_dir, files = tmp_path / "restored-index", tmp_path / "restored-files"
    done = cli("group", "restore", "--time", db["time"], "--target-dir", restored_dir,
               "--files-target", files)
    assert f"SQLite index {restored_dir / 'index'}" in " ".join(done.stdout.split())
    restored_index = restored_dir / "index"
    assert stat.S_IMODE(restored_index.stat().st_mode) == 0o600
    root = files / str(pacs.storage_dir).lstrip("/")
    assert not (root / "index").exists()
    again = OrthancServer(tmp_path / "again", settings={
        "StorageDirectory": str(root), "IndexDirectory": str(restored_dir)})
    again.base.mkdir()
    try:
        again.start()
        restored = again.sop_instance_uids()
        assert sorted(source) == restored and later.sop_uid not in restored
        for sop in restored:
            assert sha256(again.instance_file(sop)) == source[sop], sop
    finally:
        again.kill()
    check = cli("--json", "group", "check", doc["snapshot_id"], "--index-sqlite",
                restored_index, "--files-root", root)
    assert check.json()["rows_without_files"] == []
    assert check.json()["references"] == counts["references"]
    assert cli("--json", "group", "check", doc["snapshot_id"]).json()[
        "rows_without_files"] == []
    twice = cli("group", "restore", doc["snapshot_id"], "--target-dir", restored_dir,
                "--files-target", tmp_path / "elsewhere", check=False)
    assert twice.returncode == 2 and "index already exists" in twice.stderr, twice.stderr

    # the plan's restore test restores the pair without a server and checks it
    verified = cli("--json", "verify", "pacs", "--config", config, "--catalog",
                   f"sqlite:///{tmp_path / 'catalog.sqlite'}", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    outcome = json.loads(verified.stdout.splitlines()[-1])
    step = outcome["steps"][0]
    assert step["restore"] == "group" and step["database"] == "sqlite"
    assert step["check"]["rows_without_files"] == 0
    shutil.rmtree(files)
