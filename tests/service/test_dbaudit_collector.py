"""The database audit collector (service/dbaudit.py) on a server_audit log that grows,
is rotated by renaming, truncated, and half written; and a collector that died between
storing a batch and saving its state: every line stored exactly once, in order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_urls import KINDS, catalog_urls

from medark.catalog.audit_trail import snapshot
from medark.catalog.audit_verify import verify
from medark.catalog.dbaudit_state import events, load_states, save_state
from medark.catalog.store import Catalog
from medark.config.loader import load_text
from medark.config.plans import MedarkConfig
from medark.scheduler.alerts import Alerter
from medark.service.dbaudit import Collector, audited_sources

CONFIG = """\
[catalog]
url = "sqlite:///{state}"

[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/nonexistent"

[systems.lis]
owner = "lab"

[[systems.lis.sources]]
type = "mariadb"
dsn = "host=127.0.0.1"
audit = {{ log = "{log}", format = "server_audit", every = "1s" }}

[plans.lis]
system = "lis"
repository = "local"
schedule = "every 1h"
rpo = "1h"
rto = "1h"
retention = {{ daily = 7 }}
"""


def line(n: int, op: str = "QUERY") -> str:
    body = f"'SELECT * FROM results WHERE id = {n}'" if op == "QUERY" else ""
    return f"20261206 10:00:{n % 60:02d},db1,tech{n},10.0.0.{n % 250},{n},{n},{op},lis,{body},0\n"


@pytest.fixture(params=KINDS)
def setup(request: pytest.FixtureRequest, tmp_path: Path
          ) -> Iterator[tuple[MedarkConfig, Catalog, Path]]:
    """On a SQLite and on a PostgreSQL catalog (the state table's `offset` is a reserved
    word there)."""
    log = tmp_path / "server_audit.log"
    config = load_text(CONFIG.format(state=tmp_path / "catalog.sqlite", log=log))
    for url in catalog_urls(request.param, tmp_path / "catalog.sqlite", "dbaudit"):
        catalog = Catalog(url)
        try:
            yield config, catalog, log
        finally:
            catalog.close()


def users(catalog: Catalog) -> list[str]:
    return [r.actor.removeprefix("db:") for r in events(catalog)]


def collect(config: MedarkConfig, catalog: Catalog) -> int:
    collector = Collector(config, catalog, audited_sources(config))
    return sum(r.events for r in collector.run_once())


def test_growth_rotation_truncation_and_partial_lines(
        setup: tuple[MedarkConfig, Catalog, Path]) -> None:
    config, catalog, log = setup
    log.write_text(line(1) + line(2, "CONNECT") + line(3)[:20])  # the last half written
    assert collect(config, catalog) == 2
    with open(log, "a") as f:
        f.write(line(3)[20:] + line(4))
    assert collect(config, catalog) == 2
    # rotation by renaming (the plugin's own): a line lands in the old file first
    with open(log, "a") as f:
        f.write(line(5))
    os.rename(log, log.with_name("server_audit.log.1"))
    log.write_text(line(6))
    assert collect(config, catalog) == 2
    assert users(catalog) == [f"tech{n}" for n in range(1, 7)]
    # truncated and rewritten shorter: read again from the start
    log.write_text(line(7))
    assert collect(config, catalog) == 1
    state = load_states(catalog)["lis"]
    assert any("truncated" in note for note in state.notes)
    assert users(catalog)[-1] == "tech7"
    assert collect(config, catalog) == 0
    records = list(events(catalog))
    assert records[1].action == "db.connect" and records[0].action == "db.read"
    assert records[0].detail["statement"] == "SELECT * FROM results WHERE id = ?"
    before, rows, after = snapshot(catalog)
    from medark.catalog.audit_trail import signer
    assert verify(before, rows, after, [signer(catalog).key]).intact


def test_a_collector_killed_before_saving_its_state_stores_nothing_twice(
        setup: tuple[MedarkConfig, Catalog, Path]) -> None:
    config, catalog, log = setup
    log.write_text(line(1) + line(2))
    assert collect(config, catalog) == 2
    stale = load_states(catalog)["lis"]
    with open(log, "a") as f:
        f.write(line(3) + line(4))
    assert collect(config, catalog) == 2
    save_state(catalog, stale)  # as if it died after storing 3 and 4, before saving
    assert collect(config, catalog) == 0
    assert users(catalog) == ["tech1", "tech2", "tech3", "tech4"]
    state = load_states(catalog)["lis"]
    assert any("resumed after stored event" in note for note in state.notes)
    with open(log, "a") as f:
        f.write(line(5))
    assert collect(config, catalog) == 1
    assert users(catalog)[-1] == "tech5"


def test_a_missing_log_is_the_collectors_error(
        setup: tuple[MedarkConfig, Catalog, Path]) -> None:
    config, catalog, log = setup
    results = Collector(config, catalog, audited_sources(config)).run_once()
    assert results[0].error == f"{log}: no such file or directory"
    state = load_states(catalog)["lis"]
    assert state.last_error == results[0].error and state.last_run_at is not None
    log.write_text(line(1))
    assert collect(config, catalog) == 1
    assert load_states(catalog)["lis"].last_error is None


def test_a_failing_collection_alerts_once_and_resolves(
        setup: tuple[MedarkConfig, Catalog, Path]) -> None:
    """A missing log, then a log of another format: each raises `dbaudit_failed:lis`
    once however many passes fail, and the first pass that succeeds resolves it."""
    config, catalog, log = setup
    notices: list[tuple[str, object]] = []
    alerter = Alerter(config, catalog, lambda kind, doc: notices.append((kind, doc["key"])))
    collector = Collector(config, catalog, audited_sources(config), alerter)
    try:
        for _ in range(3):
            assert collector.run_once()[0].error == f"{log}: no such file or directory"
        opened = catalog.alerts(open_only=True)
        assert [(a.key, a.kind) for a in opened] == [("dbaudit_failed:lis", "dbaudit_failed")]
        assert (opened[0].details or {})["error"] == f"{log}: no such file or directory"
        log.write_text(line(1))
        assert collector.run_once()[0].error is None
        assert catalog.alerts(open_only=True) == []

        with open(log, "a", encoding="utf-8") as f:  # the general log, not server_audit
            f.writelines(f"2026-12-06T10:00:{n:02d}.000000Z\t{n} Query\tSELECT {n}\n"
                         for n in range(20))
            f.write(line(2))
        result = collector.run_once()[0]
        assert (result.events, result.rejected) == (1, 20)
        assert result.error == (f"20 of 21 records are not log records of the configured "
                                f"format (the first at {log}:{len(line(1))})")
        assert collector.run_once()[0].error is None  # nothing new: collection recovered
        with open(log, "a", encoding="utf-8") as f:  # a few bad lines stay under the limit
            f.writelines(["garbage\n"] * 3 + [line(n) for n in range(3, 400)])
        assert collector.run_once()[0].error is None
    finally:
        alerter.close(5)
    assert [n for n in notices if n[0].startswith("alert_")] == [
        ("alert_firing", "dbaudit_failed:lis"), ("alert_resolved", "dbaudit_failed:lis"),
        ("alert_firing", "dbaudit_failed:lis"), ("alert_resolved", "dbaudit_failed:lis")]
    assert all(a.resolved_at is not None for a in catalog.alerts())
    assert load_states(catalog)["lis"].last_error is None
