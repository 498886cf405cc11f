"""The job catalog on SQLite (embedded) and on the running PostgreSQL: migrations on open,
jobs recorded and listed, a schedule slot taken once, orphans of a killed daemon failed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, inspect

from medark.catalog.models import FAILED, RUNNING, SUCCEEDED
from medark.catalog.store import Catalog, redacted
from medark.errors import CatalogError


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from catalog_urls(request.param, tmp_path / "state" / "catalog.sqlite",
                            "medark_catalog")


def test_jobs_are_recorded_and_listed_newest_first(url: str) -> None:
    catalog = Catalog(url)
    slot = datetime(2026, 11, 27, 1, 0, tzinfo=timezone(timedelta(hours=8)))
    first = catalog.start("his", "backup", scheduled_for=slot)
    assert first is not None
    catalog.finish(first, SUCCEEDED, bytes_added=1234, snapshot_id="ab" * 32,
                   rpo_seconds=42.5, details={"files_new": 3})
    second = catalog.start("lis", "backup")
    assert second is not None
    catalog.finish(second, FAILED, error="medark: repository /x does not exist")
    catalog.close()

    again = Catalog(url)  # reopened: the schema is current, nothing to migrate
    jobs = again.jobs()
    assert [j.id for j in jobs] == [second, first]
    done = jobs[1]
    assert (done.status, done.bytes_added, done.rpo_seconds) == (SUCCEEDED, 1234, 42.5)
    assert done.scheduled_for == slot and done.scheduled_for.utcoffset() == timedelta(0)
    assert done.details == {"files_new": 3}
    assert done.started_at is not None and done.finished_at is not None
    assert done.finished_at >= done.started_at
    assert [j.plan for j in again.jobs(plan="lis")] == ["lis"]
    assert [j.id for j in again.jobs(status=FAILED)] == [second]
    again.close()


def test_a_schedule_slot_runs_once(url: str) -> None:
    catalog = Catalog(url)
    slot = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert catalog.start("his", "backup", scheduled_for=slot) is not None
    assert catalog.start("his", "backup", scheduled_for=slot) is None  # a restarted daemon
    assert catalog.start("his", "restore_test", scheduled_for=slot) is not None
    assert catalog.start("his", "backup") is not None  # `medark run` takes no slot
    assert catalog.start("his", "backup") is not None
    catalog.close()


def test_jobs_of_a_killed_process_are_marked_failed(url: str) -> None:
    catalog = Catalog(url)
    dead = catalog.start("pacs", "backup")
    alive = catalog.start("his", "backup")
    assert dead is not None and alive is not None
    reaped = catalog.reap_orphans(alive=lambda _pid: False)
    assert set(reaped) == {dead, alive}  # both ran in this (test) process: "dead" here
    assert {j.status for j in catalog.jobs()} == {FAILED}
    assert all("interrupted" in (j.error or "") for j in catalog.jobs())
    live = catalog.start("emr", "backup")
    assert catalog.reap_orphans() == []  # this process is alive: its job stays running
    assert [j.status for j in catalog.jobs(plan="emr")] == [RUNNING]
    assert live is not None
    catalog.close()


def test_the_migration_creates_the_schema_alembic_tracks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    Catalog(url).close()
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"jobs", "alembic_version"} <= tables


def test_unusable_catalogs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="use sqlite:///PATH or postgresql"):
        Catalog("mysql://x")
    with pytest.raises(CatalogError) as caught:
        Catalog("postgresql://medark:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(caught.value) and "medark:***@127.0.0.1:1" in str(caught.value)
    assert redacted("postgresql://u:p@h/db") == "postgresql://u:***@h/db"


def test_processes_creating_a_new_catalog_at_once_all_open_it(url: str) -> None:
    """The daemon and `medark jobs` may both be first: neither may fail on the other's
    half-made schema."""
    script = ("import sys; from medark.catalog.store import Catalog; "
              "Catalog(sys.argv[1]).close()")
    procs = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    catalog = Catalog(url)
    assert catalog.start("his", "backup") is not None
    catalog.close()


def test_the_head_revision_is_alembics_head() -> None:
    """Opening a current catalog skips Alembic by comparing with head_revision()."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from medark.catalog.store import MIGRATIONS, head_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == head_revision()
