"""PACS consistency groups end to end (docs/pacs.md), as issue 18's test list says: a real
Orthanc whose index is in a throwaway PostgreSQL cluster archiving through `medark pg
wal-push`; studies loaded by C-STORE with dcmtk's `storescu`, and a second storescu loader
sending studies during `group backup`; the PACS storage and database destroyed, then
`group restore` of both stores to the point; Orthanc started on the restored pair holds
every instance of the point, byte-identical, no index row lacks its file, and its own
/tools/find answers as the source did for what the point holds; files written after the
point are kept and marked; a file gone from the storage is filled from the previous
point or reported (exit 35), and studies deleted during the scan lose nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PASSWORD, TEST_KDF
from dicom_samples import CHINESE_NAME, Instance, encode, new_study, sample_instances
from group_site import GroupSite, pacs_plan, site_head
from orthanc_server import OrthancServer, can_run_orthanc
from pg_server import can_run_servers, free_port, repo_site

STORESCU = shutil.which("storescu")
REASON = (can_run_servers() or can_run_orthanc("postgresql")
          or (None if STORESCU else "storescu is not installed (Debian package dcmtk)"))
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))


class ClusterOrthanc(OrthancServer):
    """Orthanc with its PostgreSQL index in the test's own (archiving) cluster."""

    port: int = 0

    def config(self) -> dict[str, Any]:
        conf = super().config()
        conf["PostgreSQL"]["Port"] = self.port
        return conf


@dataclass
class World(GroupSite):
    pacs: ClusterOrthanc

    @property
    def index_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.server.port} user=postgres dbname=orthanc"

    def stored(self) -> set[str]:
        root = self.pacs.storage_dir
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}




@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with repo_site(PASSWORD, TEST_KDF) as site:
        pacs: ClusterOrthanc | None = None
        try:
            site.server.sql("CREATE DATABASE orthanc")
            pacs_base = site.base / "orthanc"
            pacs_base.mkdir()
            pacs = ClusterOrthanc(pacs_base, index="postgresql", pg_database="orthanc")
            pacs.port = site.server.port
            pacs.start()
            config = site.base / "medark.toml"
            config.write_text(site_head(site.repo) + pacs_plan(
                f"host=127.0.0.1 port={site.server.port} user=postgres dbname=orthanc",
                pacs.storage_dir, "orthanc"))
            config.chmod(0o644)
            yield World(**site.parts(), config=config, pacs=pacs)
        finally:
            if pacs is not None:
                if pacs._proc is not None:
                    pacs._proc.kill()  # a throwaway: its graceful stop takes seconds
                pacs.stop()


def storescu(pacs: OrthancServer, instances: list[Instance], where: Path) -> None:
    """C-STORE the instances into the PACS with dcmtk's storescu, as a modality sends
    them (one association)."""
    assert STORESCU is not None
    where.mkdir(parents=True, exist_ok=True)
    files = []
    for instance in instances:
        path = where / f"{instance.sop_uid}.dcm"
        path.write_bytes(encode(instance))
        files.append(str(path))
    done = subprocess.run([STORESCU, "-aet", "MODALITY", "-aec", pacs.aet, "127.0.0.1",
                           str(pacs.dicom_port), *files], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    for path in files:
        os.unlink(path)


FINDS: dict[str, tuple[str, dict[str, str]]] = {
    "patient id": ("Study", {"PatientID": "P000123"}),
    "chinese name": ("Study", {"PatientName": CHINESE_NAME}),
    "modality CT": ("Series", {"Modality": "CT"}),
    "modality MR": ("Series", {"Modality": "MR"}),
}
"""Orthanc's own /tools/find, at the study and series levels."""


def find_answers(pacs: OrthancServer, level: str, query: dict[str, str]
                 ) -> dict[str, tuple[dict[str, Any], frozenset[str]]]:
    """Orthanc's find answer: each resource's main tags and its instances' SOP UIDs."""
    answer = pacs.http.post("/tools/find", json={"Level": level, "Query": query,
                                                 "Expand": True})
    answer.raise_for_status()
    out = {}
    for found in answer.json():
        tags = dict(found["MainDicomTags"], **found.get("PatientMainDicomTags", {}))
        kind = "studies" if level == "Study" else "series"
        sops = frozenset(i["MainDicomTags"]["SOPInstanceUID"]
                         for i in pacs.get(f"/{kind}/{found['ID']}/instances"))
        out[found["ID"]] = (tags, sops)
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def index_paths(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT uuid FROM attachedfiles").fetchall()
    return {f"{u[0:2]}/{u[2:4]}/{u}" for (u,) in rows}


def test_group_point_restores_index_and_files_that_agree(world: World) -> None:
    pacs = world.pacs
    first_load = sample_instances()[:8]
    storescu(pacs, first_load, world.base / "modality")
    assert {i.sop_uid for i in first_load} <= set(pacs.sop_instance_uids())
    # an orphan in the storage: present, never referenced (kept, marked after the point)
    orphan = pacs.storage_dir / "zz" / "zz" / f"zzzz{uuid.uuid4()}"[:36]
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"not in the index")
    stop = threading.Event()
    arrived: list[str] = []

    def keep_uploading() -> None:
        n = 40
        while not stop.is_set() and n < 400:  # until the backup ends: past the point
            study = new_study(n, count=2)
            storescu(pacs, study, world.base / "loader")
            arrived.extend(i.sop_uid for i in study)
            n += 1

    loader = threading.Thread(target=keep_uploading, name="uploads")
    loader.start()
    try:
        first = world.as_postgres("--json", "group", "backup", "pacs", "--config",
                                  str(world.config))
        sent = len(arrived)  # one more study, surely after the point
        while len(arrived) == sent and loader.is_alive():
            loader.join(timeout=0.05)
    finally:
        stop.set()
        loader.join()
    assert first.returncode == 0, first.stderr
    doc = first.json()
    counts = doc["counts"]
    assert counts["missing"] == 0 and counts["filled"] == 0
    assert counts["referenced"] == counts["references"] >= 8
    relative_orphan = str(orphan.relative_to(pacs.storage_dir))
    assert relative_orphan in doc["after_point"]
    assert doc["database"]["base_backup"], "a base backup was taken before the point"
    assert arrived, "studies kept arriving during the backup"

    # what the source PACS answers and stores, taken before it is destroyed
    source_files = {sop: sha256(pacs.instance_file(sop)) for sop in pacs.sop_instance_uids()}
    source_disk = {rel: sha256((pacs.storage_dir / rel).read_bytes())
                   for rel in world.stored()}
    source_finds = {name: find_answers(pacs, *q) for name, q in FINDS.items()}
    assert all(source_finds.values()), "every find has answers at the source"
    with destroyed(world):
        restored_point(world, doc, relative_orphan, set(arrived), source_files, source_disk,
                       source_finds)

    point = world.as_root("--json", "group", "check", doc["snapshot_id"])
    assert point.returncode == 0, point.stderr
    assert point.json()["rows_without_files"] == []

    early = world.as_root("group", "restore", "--time", "2000-01-01T00:00:00Z",
                          "--target-dir", str(world.base / "x"), "--files-target",
                          str(world.base / "y"))
    assert early.returncode == 24, early.stderr
    assert "no point of the group at or before" in early.stderr


@contextmanager
def destroyed(world: World) -> Iterator[None]:
    """The PACS's storage and its database cluster gone from their places (stopped,
    moved away out of reach) for the block; put back and started again after it, for
    the module's next test."""
    pacs, server = world.pacs, world.server
    if pacs._proc is not None:
        pacs._proc.kill()
    pacs.stop()
    server.stop()
    storage, data = pacs.storage_dir, server.data
    gone_storage, gone_data = world.base / "destroyed-storage", world.base / "destroyed-db"
    storage.rename(gone_storage)
    data.rename(gone_data)
    try:
        assert not storage.exists() and not data.exists()
        yield
    finally:
        gone_storage.rename(storage)
        gone_data.rename(data)
        server.start()
        pacs.start()


def restored_point(world: World, doc: dict[str, Any], relative_orphan: str, arrived: set[str],
                   source_files: dict[str, str], source_disk: dict[str, str],
                   source_finds: dict[str, dict[str, tuple[dict[str, Any], frozenset[str]]]],
                   ) -> None:
    """Restore the group's point into new places and judge the pair against the source."""
    pacs = world.pacs
    files_target = world.base / "restored-files"
    data_dir = world.base / "restored-db"
    port = free_port()
    restored = world.as_root(
        "group", "restore", doc["snapshot_id"], "--target-dir", str(data_dir),
        "--files-target", str(files_target), "--start", "--port", str(port),
        "--archive-mode-off", "--medark-command", world.medark, "--password-file",
        str(world.password_file), "--timeout", "300")
    assert restored.returncode == 0, restored.stderr
    prose = " ".join(restored.stdout.split())  # (wrapped to the terminal's width)
    assert f"recovery target {doc['database']['lsn']}" in prose, restored.stdout
    assert f"started on port {port}" in prose, restored.stdout
    root = files_target / str(pacs.storage_dir).lstrip("/")
    try:
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=orthanc"
        in_index = index_paths(dsn)
        on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        assert in_index, "the restored index holds the point's instances"
        assert in_index <= on_disk, f"rows without files: {sorted(in_index - on_disk)}"
        unreferenced = on_disk - in_index
        assert relative_orphan in unreferenced
        assert unreferenced <= set(doc["after_point"]), "every file beyond the index is marked"
        for rel in in_index:  # byte-identical to what the PACS stored
            assert sha256((root / rel).read_bytes()) == source_disk[rel], rel
        # Orthanc itself on the restored pair: every instance it lists gives its file
        # back, byte-identical to what the source PACS stored
        again = ClusterOrthanc(root.parent, index="postgresql", pg_database="orthanc")
        again.port = port
        again.start()
        try:
            restored_uids = again.sop_instance_uids()
            assert len(restored_uids) == len(in_index) == doc["counts"]["referenced"]
            assert set(restored_uids) <= set(source_files)
            for sop in restored_uids:
                assert sha256(again.instance_file(sop)) == source_files[sop], sop
            # its own find answers as the source's did for the instances of the point:
            # the resources holding one of them, their tags, those of their instances
            point = frozenset(restored_uids)
            assert point & arrived, "the loader's studies before the point are in it"
            assert arrived - point, "studies sent after the point are not in it"
            for name, query in FINDS.items():
                expected = {rid: (tags, sops & point)
                            for rid, (tags, sops) in source_finds[name].items()
                            if sops & point}
                assert expected, f"the point holds answers to {name}"
                assert find_answers(again, *query) == expected, name
        finally:
            if again._proc is not None:
                again._proc.kill()
            again.stop()
        check = world.as_root("--json", "group", "check", doc["snapshot_id"], "--dsn", dsn,
                              "--files-root", str(root))
        assert check.returncode == 0, check.stderr
        report = check.json()
        assert report["rows_without_files"] == []
        assert relative_orphan in report["files_without_rows"]
    finally:
        world.server.stop(data_dir)


def test_a_file_gone_during_the_scan_is_filled_or_reported(world: World) -> None:
    pacs = world.pacs
    storescu(pacs, sample_instances()[8:], world.base / "modality")
    before = world.as_postgres("group", "backup", "pacs", "--config", str(world.config))
    assert before.returncode == 0, before.stderr
    assert "group snapshot" in before.stdout and "saved" in before.stdout
    referenced = sorted(index_paths(world.index_dsn))
    keep, *studies = pacs.studies()
    instance = pacs.get(f"/studies/{keep}/instances")[0]["ID"]
    u = pacs.get(f"/instances/{instance}/attachments/dicom/info")["Uuid"]
    gone_path = f"{u[0:2]}/{u[2:4]}/{u}"
    gone = pacs.storage_dir / gone_path
    kept_bytes = gone.read_bytes()
    gone.unlink()  # as if deleted during the scan: the index still names it
    fresh = new_study(9000, count=1)[0]  # past the loader's studies
    pacs.upload(encode(fresh))
    new_path = sorted(index_paths(world.index_dsn) - set(referenced))[0]
    (pacs.storage_dir / new_path).unlink()  # never backed up before: cannot be filled

    # studies deleted through the PACS while the next point is taken and scanned:
    # before the point they leave the index too, during the scan they are filled from
    # the previous point, after it they are still there: never missing
    deleter = threading.Thread(target=lambda: [
        pacs.http.delete(f"/studies/{study}").raise_for_status() for study in studies[-2:]])
    deleter.start()
    try:
        # as the daemon runs it (scheduler/runner.py): the group given by options
        after = world.as_postgres("--json", "group", "backup", "--name", "pacs", "--pacs",
                                  "orthanc", "--root", str(pacs.storage_dir), "--dsn",
                                  world.index_dsn)
    finally:
        deleter.join()
    assert after.returncode == 35, after.stderr
    doc = after.json()
    assert gone_path in doc["filled"]
    assert doc["missing"] == [new_path]
    assert doc["counts"]["missing"] == 1

    check = world.as_root("group", "check", doc["snapshot_id"])
    assert check.returncode == 35
    assert f"row without file: {new_path}" in check.stdout
    assert "1 index row(s) without their file" in check.stderr
    # the point's files as a group restore reads them (its tree's files/, here with
    # the plain restore: the database part is the first test's)
    files = world.base / "filled-files"
    wanted = f"/files{pacs.storage_dir}/{gone_path}"
    done = world.as_root("restore", doc["snapshot_id"], "--target", str(files),
                         "--include", wanted)
    assert done.returncode == 0, done.stderr
    assert (files / wanted.lstrip("/")).read_bytes() == kept_bytes
