"""The DICOM study search of a snapshot over real HTTP (GET …/snapshots/ID/dicom):
synthetic DICOM files (tests/dicom_samples.py) backed up by the real `medark backup` as
a hospital's PACS, searched by each filter (a Chinese
name among them), the cap, a snapshot whose backup made no catalog, a viewer of another
institution refused without a grant, the `dicom.find` audit records (and no patient
name in the server's log); a restore request naming studies by the catalog (`dicom`)
queued, and malformed ones refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from dicom_samples import CHINESE_NAME, SampleTree, uid, write_sample_tree
from server_site import (
    Site,
    User,
    audit_records,
    code_of,
    import_config,
    new_repository,
    pacs_config,
    run,
)
from server_site import _site as server_site

# one catalog kind: the search reads the repository; the audit trail's storage on both
# kinds is test_server_grants_cli.py's
site = pytest.fixture(scope="module", params=["sqlite"], name="site")(server_site)

A, B = "county-a", "county-b"


@dataclass
class World:
    site: Site
    users: dict[str, User]
    tree: SampleTree
    with_catalog: str
    without_catalog: str

    def base(self, snapshot: str) -> str:
        return f"/api/institutions/{B}/systems/pacs/snapshots/{snapshot}/dicom"


@pytest.fixture(scope="module")
def world(site: Site) -> World:
    """B's PACS tree backed up twice (with its DICOM catalog, then without), B's
    configuration saved; an operator and a viewer of B, a viewer of A."""
    sysadmin = site.user("sysadmin")
    for name in (A, B):
        made = sysadmin.call("POST", "/api/institutions", json={"name": name})
        assert made.status_code == 201, made.text
    tmp = site.tmp
    password_file = tmp / "repository-passwords" / "b-pacs.pass"
    repo, data = tmp / "b-repository", tmp / "b-pacs"
    new_repository(site.env, repo, password_file)
    tree = write_sample_tree(data)
    env = {**site.env, "MEDARK_PASSWORD_FILE": str(password_file)}
    ids = []
    for extra in ([], ["--no-dicom-catalog"]):
        done = run(env, "--repo", str(repo), "--json", "backup", "--tag", "plan=pacs",
                   "--tag", "system=pacs", *extra, str(data))
        assert done.returncode == 0, done.stderr
        ids.append(_snapshot_id(done.stdout))
    config = tmp / "b-medark.toml"
    config.write_text(pacs_config(repo, password_file, data), encoding="utf-8")
    import_config(site.env, site.catalog, B, config)
    users = {"b-op": site.new_user("dcm-b-op", ["operator"], B),
             "b-viewer": site.new_user("dcm-b-viewer", ["viewer"], B),
             "a-viewer": site.new_user("dcm-a-viewer", ["viewer"], A)}
    return World(site, users, tree, ids[0], ids[1])


def _snapshot_id(stdout: str) -> str:
    import json

    for line in reversed(stdout.splitlines()):
        doc = json.loads(line)
        if doc.get("message_type") == "summary":
            return str(doc["snapshot_id"])
    raise AssertionError(stdout)


def _search(world: World, user: str = "b-viewer", snapshot: str | None = None,
            **params: Any) -> Any:
    got = world.users[user].call("GET", world.base(snapshot or world.with_catalog[:12]),
                                 params=params)
    assert got.status_code == 200, got.text
    return got.json()


def _uids(reply: Any) -> list[str]:
    return [s["study_uid"] for s in reply["studies"]]


def test_every_filter_finds_its_studies(world: World) -> None:
    everything = _search(world)
    assert everything["catalog"] is True and everything["truncated"] is False
    assert everything["catalog_instances"] == len(world.tree.instances)
    assert everything["snapshot"] == world.with_catalog and everything["grant"] is None
    assert sorted(_uids(everything)) == world.tree.studies() and everything["total"] == 5
    first = next(s for s in everything["studies"] if s["study_uid"] == uid(1))
    assert first == {
        "study_uid": uid(1), "patient_id": "P000123", "patient_name": CHINESE_NAME,
        "accession": "ACC1001", "study_date": "20261103", "study_description": "胸部CT平扫",
        "modalities": ["CT"], "series_count": 2, "instances": 5,
        "size": sum(world.tree.path(i).stat().st_size for i in world.tree.study(uid(1))),
        "series": [{"series_uid": uid(1, n), "modality": "CT", "instances": count,
                    "size": sum(world.tree.path(i).stat().st_size
                                for i in world.tree.series(uid(1, n)))}
                   for n, count in ((1, 3), (2, 2))]}
    assert sorted(_uids(_search(world, name="张"))) == [uid(1), uid(2)]
    assert _uids(_search(world, name="smith")) == [uid(3)]  # any case
    assert _uids(_search(world, name="李")) == [uid(4)]  # GB18030 in the file
    assert sorted(_uids(_search(world, patient_id="P000123"))) == [uid(1), uid(2)]
    assert _uids(_search(world, accession="ACC3001")) == [uid(4)]
    assert _uids(_search(world, study_uid=uid(5))) == [uid(5)]
    mr = _search(world, modality="mr")
    assert sorted(_uids(mr)) == [uid(2), uid(5)]
    # a modality filter keeps only the matching series of a mixed study
    us = _search(world, modality="US")["studies"]
    assert [(s["study_uid"], s["modalities"], s["series_count"]) for s in us] == [
        (uid(4), ["US"], 1)]
    assert sorted(_uids(_search(world, date_from="2026-11-01", date_to="20261130"))) == [
        uid(1), uid(2)]
    assert sorted(_uids(_search(world, date_from="20261115"))) == [uid(5)]
    assert _uids(_search(world, name="张", date_to="20261105")) == [uid(1)]
    assert _search(world, patient_id="nobody")["studies"] == []
    capped = _search(world, limit=2)
    assert capped["truncated"] is True and capped["total"] == 5 and len(capped["studies"]) == 2
    bad = world.users["b-viewer"].call("GET", world.base(world.with_catalog),
                                       params={"date_from": "2026-13-01"})
    assert bad.status_code == 422 and "date_from" in bad.json()["error"]["message"]


def test_a_snapshot_without_a_catalog_says_so(world: World) -> None:
    reply = _search(world, snapshot=world.without_catalog, name="张")
    assert reply["catalog"] is False and reply["studies"] == []
    assert reply["catalog_instances"] == 0
    listed = world.users["b-viewer"].call(
        "GET", f"/api/institutions/{B}/systems/pacs/recovery").json()["points"]
    counts = {p["id"]: p["dicom_instances"] for p in listed}
    assert counts == {world.with_catalog: len(world.tree.instances),
                      world.without_catalog: None}
    missing = world.users["b-viewer"].call("GET", world.base("abcdef0123456789"))
    assert missing.status_code == 404


def test_another_institution_needs_a_grant_and_every_search_is_audited(world: World
                                                                       ) -> None:
    refused = world.users["a-viewer"].call("GET", world.base(world.with_catalog),
                                           params={"name": "张"})
    assert refused.status_code == 403 and code_of(refused) == "grant_required"
    _search(world, user="b-op", name="张", modality="CT")
    records = audit_records(world.site.catalog, "dicom.find", "grant.refused")
    refusal = [r for r in records if r["actor"] == "dcm-a-viewer"]
    assert [(r["action"], r["result"], r["detail"]["use"]) for r in refusal] == [
        ("grant.refused", "denied", "dicom.find")]
    mine = [r for r in records if r["actor"] == "dcm-b-op"]
    assert len(mine) == 1 and mine[0]["result"] == "ok" and mine[0]["institution"] == B
    detail = mine[0]["detail"]
    assert detail["filters"] == {"name": "张", "modality": "CT"}
    assert detail["snapshot"] == world.with_catalog
    assert (detail["studies"], detail["shown"], detail["instances"]) == (1, 1, 5)
    assert detail["study_uids"] == [uid(1)] and detail["grant"] is None
    failed = [r for r in records if r["action"] == "dicom.find" and r["result"] == "failed"]
    assert sorted(r["detail"]["error"] for r in failed) == ["not_found", "usage"]


def test_a_restore_names_studies_by_the_catalog(world: World) -> None:
    op = world.users["b-op"]
    url = f"/api/institutions/{B}/systems/pacs/restores"
    asked = {"snapshot": world.with_catalog[:12], "target": "scratch",
             "dicom": [{"study": uid(1), "series": [uid(1, 2)]}, {"study": uid(3)}]}
    made = op.call("POST", url, json=asked)
    assert made.status_code == 202, made.text
    assert made.json()["job"]["details"] == {
        "snapshot": world.with_catalog[:12], "target": "scratch",
        "dicom": [{"study": uid(1), "series": [uid(1, 2)]}, {"study": uid(3), "series": []}]}
    for wrong in ({**asked, "dicom": [{"study": "1.2.x"}]},
                  {**asked, "paths": ["/data/x.dcm"]},
                  {"time": "2026-12-01T00:00:00Z", "plan": "pacs", "target": "scratch",
                   "dicom": [{"study": uid(1)}]}):
        refused = op.call("POST", url, json=wrong)
        assert refused.status_code == 422 and code_of(refused) == "invalid_restore", wrong
    record = [r for r in audit_records(world.site.catalog, "snapshot.restore.request")
              if r["result"] == "ok"][-1]
    assert record["detail"]["dicom"] == [{"study": uid(1), "series": 1},
                                         {"study": uid(3), "series": 0}]


def test_no_patient_name_in_the_server_log(world: World) -> None:
    log = world.site.server.stop()
    assert "张" not in log and "Smith" not in log and "P000123" not in log

