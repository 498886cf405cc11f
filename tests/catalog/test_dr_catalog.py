"""DR actions in the catalog, on SQLite and the running PostgreSQL: an action with its
steps and measurements is kept and listed; one DR action per system at a time, held by
the database itself (processes racing for a system: exactly one wins); a claim whose
process died is released; the migration goes down and up again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, inspect

from medark.catalog.dr_records import DrStep
from medark.catalog.statuses import FAILED, ROLLED_BACK, RUNNING, SUCCEEDED
from medark.catalog.store import MIGRATIONS, Catalog
from medark.errors import CatalogError, SwitchRefused
from medark.util import clock

CLAIM = """\
import sys
from medark.catalog.store import Catalog
from medark.errors import SwitchRefused
catalog = Catalog(sys.argv[1])
try:
    action = catalog.start_dr_action("his", "switchover", sys.argv[2])
    print("claimed", action, flush=True)
except SwitchRefused as exc:
    print("refused", exc.exit_code, exc, flush=True)
sys.stdin.read()  # holds the claim (alive) until the test closes stdin
"""


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_dr")


def test_an_action_keeps_its_steps_and_measurements(url: str) -> None:
    catalog = Catalog(url)
    action = catalog.start_dr_action("his", "failover", "zhang.wei")
    started = clock.now()
    catalog.record_step(action, DrStep("fence", started, 0.125, "ok", "stopped his-db-1"))
    catalog.record_step(action, DrStep("promote", started + timedelta(seconds=1), 0.5, "ok"))
    loss = {"bytes": 8192, "seconds": 1.5, "last_replayed": "0/3000060",
            "last_known": "0/3002060"}
    catalog.finish_dr_action(action, SUCCEEDED, switch_seconds=0.74, data_loss=loss)
    drill = catalog.start_dr_action("his", "drill", "daemon")
    catalog.finish_dr_action(drill, FAILED, error="health check web: HTTP 503")
    other = catalog.start_dr_action("lis", "switchover", "li.na")
    catalog.close()

    again = Catalog(url)
    assert [a.id for a in again.dr_history("his")] == [drill, action]
    assert [a.id for a in again.dr_history()] == [other, drill, action]
    done = again.dr_history("his")[1]
    assert (done.kind, done.status, done.requested_by) == ("failover", SUCCEEDED, "zhang.wei")
    assert (done.switch_seconds, done.data_loss) == (0.74, loss)
    assert [(s.name, s.seconds, s.result, s.detail) for s in done.steps] == [
        ("fence", 0.125, "ok", "stopped his-db-1"), ("promote", 0.5, "ok", "")]
    assert done.steps[0].started == started
    assert done.finished_at is not None and done.finished_at >= done.started_at
    public = done.public()
    assert public["steps"][1]["name"] == "promote" and public["data_loss"] == loss
    assert again.dr_history("his")[0].error == "health check web: HTTP 503"
    running = again.running_dr_action("lis")
    assert running is not None and (running.id, running.status) == (other, RUNNING)
    assert again.running_dr_action("his") is None
    again.close()


def test_a_second_action_on_a_system_is_refused_until_the_first_ends(url: str) -> None:
    catalog = Catalog(url)
    first = catalog.start_dr_action("his", "switchover", "zhang.wei")
    with pytest.raises(SwitchRefused) as caught:
        catalog.start_dr_action("his", "failover", "li.na")
    assert caught.value.exit_code == 30
    message = str(caught.value)
    assert f"switchover #{first} by zhang.wei" in message and "\n" not in message
    assert catalog.start_dr_action("lis", "drill", "daemon") is not None  # another system
    catalog.finish_dr_action(first, ROLLED_BACK, error="standby did not catch up")
    second = catalog.start_dr_action("his", "failover", "li.na")
    assert second != first
    assert [a.status for a in catalog.dr_history("his")] == [RUNNING, ROLLED_BACK]
    catalog.close()


def test_processes_racing_for_a_system_get_one_claim(url: str) -> None:
    Catalog(url).close()  # the schema first: the race is for the claim, not the migration
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, url, f"operator{i}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    assert all(p.stdout is not None for p in procs)
    firsts = [p.stdout.readline().split() for p in procs if p.stdout is not None]
    outputs = [p.communicate(input="", timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert sorted(words[0] for words in firsts) == ["claimed", "refused", "refused",
                                                    "refused"], firsts
    assert {words[1] for words in firsts if words[0] == "refused"} == {"30"}
    catalog = Catalog(url)
    [only] = catalog.dr_history("his")
    assert only.status == RUNNING  # its process is gone now, but nobody reaped it yet
    catalog.close()


def test_a_claim_whose_process_died_is_released(url: str) -> None:
    Catalog(url).close()
    script = ("import sys; from medark.catalog.store import Catalog; "
              "print(Catalog(sys.argv[1]).start_dr_action('his', 'switchover', 'ops'))")
    dead = int(subprocess.run([sys.executable, "-c", script, url], check=True,
                              capture_output=True, text=True, timeout=120).stdout)
    catalog = Catalog(url)
    mine = catalog.start_dr_action("his", "failover", "ops")
    [new, old] = catalog.dr_history("his")
    assert (new.id, new.status, old.id, old.status) == (mine, RUNNING, dead, FAILED)
    assert old.error is not None and "interrupted" in old.error
    catalog.close()


def test_misuse_is_refused(url: str) -> None:
    catalog = Catalog(url)
    with pytest.raises(ValueError, match="unknown DR action"):
        catalog.start_dr_action("his", "takeover", "ops")
    action = catalog.start_dr_action("his", "drill", "ops")
    with pytest.raises(ValueError, match="cannot end as 'running'"):
        catalog.finish_dr_action(action, RUNNING)
    catalog.finish_dr_action(action, SUCCEEDED, switch_seconds=12.0)
    with pytest.raises(CatalogError, match="not running"):
        catalog.finish_dr_action(action, FAILED)
    with pytest.raises(CatalogError, match="not running"):
        catalog.record_step(action, DrStep("late", clock.now(), 0.0, "ok"))
    assert catalog.dr_history("his")[0].status == SUCCEEDED
    catalog.close()


def test_the_migration_goes_down_and_up(url: str) -> None:
    Catalog(url).close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        alembic = AlembicConfig()
        alembic.set_main_option("script_location", str(MIGRATIONS))
        alembic.attributes["connection"] = connection
        indexes = {i["name"]: i for i in inspect(connection).get_indexes("dr_actions")}
        assert indexes["uq_dr_actions_running"]["unique"]
        command.downgrade(alembic, "0003_alert_delivery")
        assert not inspect(connection).has_table("dr_actions")
    engine.dispose()
    catalog = Catalog(url)  # upgraded again on open
    assert catalog.start_dr_action("his", "drill", "ops") > 0
    catalog.close()
