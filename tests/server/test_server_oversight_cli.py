"""Alerts, compliance and reports of the management server over real HTTP on SQLite and
PostgreSQL catalogs: two hospitals whose plans are both called "his", each judged on its
own jobs; a monthly report generated in the background and downloaded as the PDF
`medark report` makes (its first page drawn with pdftoppm, to be looked at); a hospital
sees neither the other's alerts nor its reports; a report whose server process died is
closed as failed; the audit records of requests, results, downloads and refusals."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from server_site import Site, User, audit_records, code_of, site_fixture

from medark.catalog import job_queue as jq
from medark.catalog.statuses import FAILED, SUCCEEDED
from medark.catalog.store import Catalog
from medark.server.db import transaction
from medark.server.tables_reports import ReportRow
from medark.util import clock

site = site_fixture()

DOC = """\
[hospital]
name = "{title}"
tier = "三乙"
level = 3

[sites.main]
name = "主院区"
location = "CN-SC"

[repositories.local]
site = "main"
url = "/backup/{inst}"

[systems.his]
name = "HIS 医院信息系统"
owner = "信息科"

[[systems.his.sources]]
type = "files"
paths = ["/srv/his"]

[plans.his]
system = "his"
repository = "local"
schedule = "every 1h"
rpo = "15min"
rto = "1h"
retention = {{ daily = 30 }}
"""
HOSPITALS = {"county-a": "示例县人民医院", "county-b": "乡镇卫生院"}
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils is not installed")


def _hospitals(site: Site) -> None:
    """county-a and county-b, each with a configuration, a backup of its "his" (A's ten
    minutes ago, B's a day ago, B's newest attempt failed) and an open alert;
    county-c without a configuration. Once per site."""
    if "hospitals" in site.ready:
        return
    sysadmin = site.user("sysadmin")
    for name in (*HOSPITALS, "county-c"):
        made = sysadmin.call("POST", "/api/institutions",
                             json={"name": name, "title": HOSPITALS.get(name, name)})
        assert made.status_code == 201, made.text
    for name, title in HOSPITALS.items():
        saved = sysadmin.call("PUT", f"/api/institutions/{name}/config", json={
            "document": DOC.format(inst=name, title=title), "comment": "first",
            "base_version": None})
        assert saved.status_code == 200, saved.text
    catalog = Catalog(site.catalog)
    try:
        now = clock.now()
        for name, minutes, status in (("county-a", 10, SUCCEEDED), ("county-b", 1440, SUCCEEDED),
                                      ("county-b", 5, FAILED)):
            started = now - timedelta(minutes=minutes)
            assert jq.record_remote(
                catalog, origin_key=f"{name}-agent:{minutes}", institution=name,
                agent=f"{name}-agent", plan="his", kind="backup", status=status,
                scheduled_for=None, started_at=started,
                finished_at=started + timedelta(minutes=1),
                error=None if status == SUCCEEDED else "disk full", snapshot_id=None,
                bytes_added=4096, details=None)
        for name in HOSPITALS:
            catalog.raise_alert(f"job_failed:his:{name}", "job_failed", "his",
                                f"backup of his failed at {name}", {"error": "disk full"},
                                institution=name)
        catalog.raise_alert("job_failed:local", "job_failed", "local", "the center's own")
    finally:
        catalog.close()
    site.ready["hospitals"] = sysadmin  # a marker: done for this site


def test_compliance_of_each_institution_is_judged_on_its_own_jobs(site: Site) -> None:
    _hospitals(site)
    nurse_a = site.new_user("nurse-a", ["viewer"], "county-a")
    judged = nurse_a.call("GET", "/api/institutions/county-a/compliance")
    assert judged.status_code == 200, judged.text
    body = judged.json()
    assert (body["institution"], body["config_version"], body["profile"], body["level"]) == (
        "county-a", 1, "三乙", 3)
    rpo = {v["requirement"]: v for v in body["verdicts"]}["三乙.local.rpo"]
    assert rpo["system"] == "his" and rpo["measured"]["status"] == "pass", rpo
    assert sum(body["counts"].values()) == len(body["verdicts"])
    # the center sees county-b's own job: a day old, so its RPO fails
    center = site.user("auditadmin")
    other = center.call("GET", "/api/institutions/county-b/compliance",
                        params={"lang": "zh", "level": 2})
    assert other.status_code == 200, other.text
    rpo_b = {v["requirement"]: v for v in other.json()["verdicts"]}["三乙.local.rpo"]
    assert rpo_b["measured"]["status"] == "fail" and other.json()["level"] == 2
    assert other.json()["compliant"] is False
    # as of a moment before A's backup, A had nothing
    earlier = nurse_a.call("GET", "/api/institutions/county-a/compliance",
                           params={"at": clock.format_time(clock.now() - timedelta(hours=1))})
    rpo_then = {v["requirement"]: v for v in earlier.json()["verdicts"]}["三乙.local.rpo"]
    assert rpo_then["measured"]["status"] == "fail"

    outside = nurse_a.call("GET", "/api/institutions/county-b/compliance")
    assert outside.status_code == 403 and code_of(outside) == "out_of_scope"
    unknown = center.call("GET", "/api/institutions/nowhere/compliance")
    assert unknown.status_code == 404 and code_of(unknown) == "not_found"
    bare = center.call("GET", "/api/institutions/county-c/compliance")
    assert bare.status_code == 409 and code_of(bare) == "no_configuration"
    assert "county-c has no configuration yet" in bare.json()["error"]["message"]
    for params in ({"level": 9}, {"at": "yesterday"}, {"profile": "四甲"}, {"lang": "fr"},
                   {"sichuan": "maybe"}):
        bad = nurse_a.call("GET", "/api/institutions/county-a/compliance", params=params)
        assert bad.status_code == 422 and code_of(bad) == "invalid_request", (params, bad.text)
    denied = audit_records(site.catalog, "compliance.read")
    assert any(r["actor"] == "nurse-a" and r["result"] == "denied"
               and r["institution"] == "county-b" for r in denied)


def test_alerts_are_seen_within_scope(site: Site) -> None:
    _hospitals(site)
    nurse_a = site.new_user("nurse-a", ["viewer"], "county-a")
    mine = nurse_a.call("GET", "/api/alerts")
    assert mine.status_code == 200, mine.text
    assert [(a["institution"], a["summary"]) for a in mine.json()["alerts"]] == [
        ("county-a", "backup of his failed at county-a")]
    alert = mine.json()["alerts"][0]
    assert alert["open"] is True and alert["resolved_at"] is None
    assert alert["details"] == {"error": "disk full"} and alert["kind"] == "job_failed"
    assert alert["severity"] == "major"
    outside = nurse_a.call("GET", "/api/alerts", params={"institution": "county-b"})
    assert outside.status_code == 403 and code_of(outside) == "out_of_scope"

    center = site.user("auditadmin")
    every = [a["institution"] for a in center.call("GET", "/api/alerts").json()["alerts"]]
    assert every == [None, "county-b", "county-a"]
    only_b = center.call("GET", "/api/alerts", params={"institution": "county-b"}).json()
    assert [a["institution"] for a in only_b["alerts"]] == ["county-b"]
    catalog = Catalog(site.catalog)
    try:
        catalog.resolve_alert("job_failed:his:county-b")
    finally:
        catalog.close()
    still_open = center.call("GET", "/api/alerts", params={"open_only": True}).json()
    assert [a["institution"] for a in still_open["alerts"]] == [None, "county-a"]
    assert len(center.call("GET", "/api/alerts", params={"limit": 1}).json()["alerts"]) == 1
    for params in ({"limit": 0}, {"limit": 100000}, {"institution": "Bad Name"},
                   {"open_only": "perhaps"}):
        bad = center.call("GET", "/api/alerts", params=params)
        assert bad.status_code == 422 and code_of(bad) == "invalid_request", params


def _wait(user: User, report_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        found = user.call("GET", f"/api/reports/{report_id}")
        assert found.status_code == 200, found.text
        report: dict[str, Any] = found.json()["report"]
        if report["status"] in ("done", "failed") or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


@needs_poppler
def test_a_report_is_generated_and_downloaded(site: Site, tmp_path: Path) -> None:
    _hospitals(site)
    admin_a = site.new_user("admin-a", ["sysadmin"], "county-a")
    month = f"{clock.now():%Y-%m}"
    queued = admin_a.call("POST", "/api/institutions/county-a/reports",
                          json={"kind": "monthly", "period": month})
    assert queued.status_code == 202, queued.text
    report = queued.json()["report"]
    assert (report["institution"], report["kind"], report["period"], report["language"],
            report["config_version"], report["created_by"]) == (
        "county-a", "monthly", month, "zh", 1, "admin-a")
    assert report["status"] in ("queued", "running", "done")
    done = _wait(admin_a, report["id"])
    assert done["status"] == "done", done
    assert done["file_name"] == f"示例县人民医院-{month}-月度报告.pdf"

    pdf = admin_a.call("GET", f"/api/reports/{report['id']}/download")
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    data = pdf.content
    assert data.startswith(b"%PDF") and len(data) == done["size"]
    assert hashlib.sha256(data).hexdigest() == done["sha256"] == pdf.headers["x-content-sha256"]
    disposition = pdf.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="report-county-a-{month}.pdf"; ')
    assert disposition.isascii()
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == done["file_name"]
    saved = tmp_path / "report.pdf"
    saved.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(saved), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "示例县人民医院" in text and "乡镇卫生院" not in text
    assert "HIS 医院信息系统" in text
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(saved),
                    str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page*.png"))
    keep = os.environ.get("MEDARK_TEST_KEEP_PAGES")  # to look at the page drawn
    if keep:
        for page in tmp_path.glob("page*.png"):
            shutil.copy(page, Path(keep) / f"{site.catalog.split(':')[0]}-{page.name}")

    # the center's audit administrator sees it among every institution's
    center = site.user("auditadmin")
    listed = center.call("GET", "/api/reports", params={"institution": "county-a"}).json()
    assert [r["id"] for r in listed["reports"]] == [report["id"]]
    assert center.call("GET", f"/api/reports/{report['id']}/download").content == data

    # county-b's administrator sees none of it
    admin_b = site.new_user("admin-b", ["sysadmin"], "county-b")
    assert admin_b.call("GET", "/api/reports").json()["reports"] == []
    for path in (f"/api/reports/{report['id']}", f"/api/reports/{report['id']}/download"):
        hidden = admin_b.call("GET", path)
        assert hidden.status_code == 404 and code_of(hidden) == "not_found", path
    outside = admin_b.call("GET", "/api/reports", params={"institution": "county-a"})
    assert outside.status_code == 403 and code_of(outside) == "out_of_scope"
    refused = admin_b.call("POST", "/api/institutions/county-a/reports",
                           json={"kind": "monthly"})
    assert refused.status_code == 403 and code_of(refused) == "out_of_scope"

    requested = audit_records(site.catalog, "report.generate")
    assert [(r["actor"], r["result"], r["institution"]) for r in requested
            if r["result"] == "ok"] == [("admin-a", "ok", "county-a")]
    assert any(r["actor"] == "admin-b" and r["result"] == "denied" for r in requested)
    results = [(r["actor"], r["target"], r["result"], r["detail"].get("sha256"))
               for r in audit_records(site.catalog, "report.finish")]
    assert results == [("server", f"report:{report['id']}", "ok", done["sha256"])]
    downloads = [(r["actor"], r["result"]) for r in audit_records(site.catalog, "report.download")]
    assert downloads.count(("admin-a", "ok")) == 1 and ("auditadmin", "ok") in downloads
    assert ("admin-b", "denied") in downloads


def test_report_requests_are_checked(site: Site) -> None:
    _hospitals(site)
    admin_a = site.new_user("admin-a", ["sysadmin"], "county-a")
    base = "/api/institutions/county-a/reports"
    for body in ({"kind": "monthly", "period": "2026-Q4"},
                 {"kind": "quarterly", "period": "2026-11"},
                 {"kind": "monthly", "period": "2099-01"},
                 {"kind": "monthly", "period": "2026-13"},
                 {"kind": "yearly"}, {"kind": "monthly", "language": "fr"},
                 {"kind": "monthly", "colour": "blue"}, {}):
        bad = admin_a.call("POST", base, json=body)
        assert bad.status_code == 422 and code_of(bad) == "invalid_request", (body, bad.text)
    none = site.user("sysadmin").call("POST", "/api/institutions/county-c/reports",
                                      json={"kind": "monthly"})
    assert none.status_code == 409 and code_of(none) == "no_configuration"
    nurse_a = site.new_user("nurse-a", ["viewer"], "county-a")
    for method, path in (("POST", base), ("GET", "/api/reports"), ("GET", "/api/reports/1"),
                         ("GET", "/api/reports/1/download")):
        forbidden = nurse_a.call(method, path, json={"kind": "monthly"} if method == "POST"
                                 else None)
        assert forbidden.status_code == 403 and code_of(forbidden) == "forbidden", path
    assert admin_a.call("GET", "/api/reports/999999").status_code == 404


def test_an_unfinished_or_interrupted_report_is_not_served(site: Site) -> None:
    _hospitals(site)
    admin_a = site.new_user("admin-a", ["sysadmin"], "county-a")
    dead = subprocess.Popen(["true"])
    dead.wait()
    catalog = Catalog(site.catalog)
    try:
        with transaction(catalog) as session:
            rows = [ReportRow(institution="county-a", kind="monthly", period="2026-10",
                              language="zh", status=status, config_version=1,
                              file_name="x.pdf", created_by="admin-a",
                              created_at=clock.now(), worker=worker)
                    for status, worker in (("queued", "elsewhere:1"),
                                           ("running", f"{socket.gethostname()}:{dead.pid}"))]
            session.add_all(rows)
            session.flush()
            waiting, interrupted = rows[0].id, rows[1].id
    finally:
        catalog.close()
    not_ready = admin_a.call("GET", f"/api/reports/{waiting}/download")
    assert not_ready.status_code == 409 and code_of(not_ready) == "report_not_ready"
    closed = _wait(admin_a, interrupted)
    assert closed["status"] == "failed" and "interrupted" in closed["error"]
    gone = admin_a.call("GET", f"/api/reports/{interrupted}/download")
    assert gone.status_code == 409 and "interrupted" in gone.json()["error"]["message"]
    left = admin_a.call("GET", f"/api/reports/{waiting}").json()["report"]
    assert left["status"] == "queued"  # another host's process: not judged from here

    # the worker makes a queued report, or says why it could not (no such version)
    worker = [sys.executable, "-m", "medark.server.report_worker"]
    env = {**site.env, "MEDARK_CATALOG": site.catalog}
    catalog = Catalog(site.catalog)
    try:
        with transaction(catalog) as session:
            session.get(ReportRow, waiting).config_version = 99
    finally:
        catalog.close()
    made = subprocess.run([*worker, str(waiting)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert made.returncode == 0 and "Traceback" not in made.stderr, made.stderr
    failed = admin_a.call("GET", f"/api/reports/{waiting}").json()["report"]
    assert failed["status"] == "failed" and "no configuration version 99" in failed["error"]
    again = subprocess.run([*worker, str(waiting)], env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert again.returncode == 0  # settled already: nothing to do
    wrong = subprocess.run([*worker, "first"], env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert wrong.returncode == 2 and wrong.stderr.startswith("usage: ")
