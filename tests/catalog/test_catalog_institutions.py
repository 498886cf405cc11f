"""A regional center's catalog holds every hospital's jobs, alerts and DR actions, and two
hospitals may both call a plan "his": the catalog's reads narrowed to one institution
(None: every row, as the single hospital's CLI and daemon read), compliance and the
report data judged on one institution's jobs only, on SQLite and the running PostgreSQL;
migration 0011 goes down and up again."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, inspect

from medark.catalog import job_queue as jq
from medark.catalog.audit_query import count_between, records_between
from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.statuses import FAILED, SUCCEEDED
from medark.catalog.store import MIGRATIONS, Catalog
from medark.scheduler.runner import Step
from medark.service.compliance import compliance
from medark.service.plans import load_plans_text
from medark.service.report_data import gather_period
from medark.util import clock

CONFIG = """\
[hospital]
name = "县人民医院"
tier = "三乙"
level = 3

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/srv/medark/local"
password_file = "/etc/medark/password"

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
rpo = "1h"
rto = "30min"
retention = { daily = 30 }
"""


@pytest.fixture(params=KINDS)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from catalog_urls(request.param, tmp_path / "catalog.db", "medark_scoped")


def _job(catalog: Catalog, institution: str, status: str, hours_ago: float) -> None:
    started = clock.now() - timedelta(hours=hours_ago)
    assert jq.record_remote(
        catalog, origin_key=f"{institution}-agent:{hours_ago}", institution=institution,
        agent=f"{institution}-agent", plan="his", kind="backup", status=status,
        scheduled_for=None, started_at=started, finished_at=started + timedelta(minutes=1),
        error=None if status == SUCCEEDED else "disk full", snapshot_id=None,
        bytes_added=1000, details=None)


def _never_launched(step: Step) -> subprocess.CompletedProcess[str]:
    """Compliance of files needs no child; the report's repository statistics fail."""
    assert step.argv[-1] == "stats", step
    return subprocess.CompletedProcess(step.argv, 1, "", "not read\n")


def test_reads_are_narrowed_to_one_institution(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    try:
        _job(catalog, "hosp-a", SUCCEEDED, 0.5)
        _job(catalog, "hosp-b", FAILED, 0.25)
        _job(catalog, "hosp-b", SUCCEEDED, 30)
        now = clock.now()
        newest_a = catalog.latest("his", "backup", SUCCEEDED, now, "hosp-a")
        newest_b = catalog.latest("his", "backup", SUCCEEDED, now, "hosp-b")
        assert newest_a is not None and newest_a.institution == "hosp-a"
        assert newest_b is not None and newest_b.institution == "hosp-b"
        assert catalog.latest("his", "backup", SUCCEEDED, now, "hosp-c") is None
        assert catalog.latest("his", "backup", None, now) is not None  # every institution
        day = now - timedelta(days=2)
        assert {j.institution for j in catalog.jobs_between(day, now, "hosp-b")} == {"hosp-b"}
        assert len(catalog.jobs_between(day, now)) == 3

        catalog.raise_alert("job_failed:his", "job_failed", "his", "A", institution="hosp-a")
        catalog.raise_alert("job_failed:his:b", "job_failed", "his", "B",
                            institution="hosp-b")
        catalog.raise_alert("local", "job_failed", "his", "the daemon's own")
        assert [a.summary for a in catalog.alerts(institution="hosp-a")] == ["A"]
        assert catalog.alerts(institution="hosp-a")[0].institution == "hosp-a"
        assert [a.summary for a in catalog.alerts()] == ["the daemon's own", "B", "A"]

        for institution in ("hosp-a", "hosp-b", None):
            action = catalog.start_dr_action(f"his-{institution}", "drill", "ops",
                                             institution=institution)
            catalog.finish_dr_action(action, SUCCEEDED, switch_seconds=3.0)
        assert [r.system for r in catalog.dr_history(institution="hosp-b")] == ["his-hosp-b"]
        assert len(catalog.dr_history()) == 3

        for institution in ("hosp-a", "hosp-b", "hosp-b", None):
            append(catalog, AuditEntry("someone", "10.0.0.1", "login", "someone", "failed",
                                       institution))
        later = clock.now() + timedelta(seconds=1)
        assert count_between(catalog, day, later, "hosp-b") == 2
        assert count_between(catalog, day, later) == 4
        assert [r.institution for r in records_between(
            catalog, day, later, ["login"], institution="hosp-a")] == ["hosp-a"]
    finally:
        catalog.close()


def test_compliance_and_reports_count_only_the_institutions_jobs(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    config = load_plans_text(CONFIG)
    try:
        _job(catalog, "hosp-a", SUCCEEDED, 0.05)  # within 三乙's 15 minutes
        _job(catalog, "hosp-b", SUCCEEDED, 30)  # a day late
        now = clock.now()

        def rpo(institution: str | None) -> str:
            verdicts = compliance(config, catalog, "三乙", 3, False, now,
                                  _never_launched, institution)
            found = [v for v in verdicts if v.requirement.id == "三乙.local.rpo"]
            assert len(found) == 1, [v.requirement.id for v in verdicts]
            return found[0].measured.status

        assert rpo("hosp-a") == "pass"
        assert rpo("hosp-b") == "fail"
        assert rpo("hosp-c") == "fail"  # nothing measured
        # unnarrowed (as the single hospital's CLI reads): the newest row recorded, B's,
        # stands for every "his" — what the institution filter prevents
        assert rpo(None) == "fail"

        label = f"{now.astimezone(config.zone):%Y-%m}"
        if now.astimezone(config.zone).day == 1 and now.astimezone(config.zone).hour < 1:
            pytest.skip("the month began less than an hour ago")
        catalog.raise_alert("a", "job_failed", "his", "A's", institution="hosp-a")
        report = gather_period(config, catalog, "monthly", label, clock.now(),
                               _never_launched, "hosp-a")
        assert [a["summary"] for a in report.alerts] == ["A's"]
        assert report.systems[0].succeeded == 1
    finally:
        catalog.close()


def test_the_migration_goes_down_and_up(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    catalog.raise_alert("k", "job_failed", "his", "kept", institution="hosp-a")
    catalog.close()
    engine = create_engine(catalog_url.replace("postgresql://", "postgresql+psycopg://"))
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0010_grants")
    with engine.connect() as connection:
        assert "reports" not in inspect(connection).get_table_names()
        assert "institution" not in {c["name"] for c in
                                     inspect(connection).get_columns("alerts")}
    engine.dispose()
    again = Catalog(catalog_url)
    try:
        assert [(a.summary, a.institution) for a in again.alerts()] == [("kept", None)]
    finally:
        again.close()
