"""Alert delivery in the catalog, on SQLite and the running PostgreSQL: a catalog made by
the previous release (revision 0002, with an alert in it) upgrades in place, and a
notice's delivery is recorded, claimed again once, and never overwritten by an older
notice's outcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, text

from medark.catalog.store import MIGRATIONS, Catalog, head_revision
from medark.util import clock

FIRING = {"state": "firing", "title": "[Medark] his: backup failed", "text": "Error: x",
          "details": {"kind": "backup"}}
RESOLVED = {**FIRING, "state": "resolved", "title": "[Medark] his: backup recovered"}


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_alerts")


def _engine_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def test_a_catalog_of_the_previous_release_upgrades_with_its_alerts(url: str) -> None:
    engine = create_engine(_engine_url(url))
    with engine.begin() as connection:
        alembic = AlembicConfig()
        alembic.set_main_option("script_location", str(MIGRATIONS))
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0002_alerts")
        connection.execute(text(
            "INSERT INTO alerts (key, kind, plan, opened_at, last_seen, summary) VALUES "
            "('job_failed:his:backup', 'job_failed', 'his', :now, :now, 'old')"),
            {"now": clock.now()})
    engine.dispose()

    catalog = Catalog(url)
    [old] = catalog.alerts()
    assert (old.key, old.summary, old.delivery) == ("job_failed:his:backup", "old", None)
    assert old.public()["delivery"] is None
    later = clock.now() + timedelta(days=1)
    assert catalog.claim_undelivered(later, later, set()) == []  # never resent
    engine = create_engine(_engine_url(url))
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert version == head_revision()
    catalog.close()


def test_a_delivery_is_recorded_claimed_once_and_superseded(url: str) -> None:
    catalog = Catalog(url)
    row = catalog.raise_alert("job_failed:his:backup", "job_failed", "his", FIRING["title"],
                              {"kind": "backup"}, FIRING, ["webhooks[0]", "email"])
    assert row is not None
    assert catalog.raise_alert("job_failed:his:backup", "job_failed", "his", "again") is None
    [pending] = catalog.alerts()
    assert pending.delivery is not None and pending.delivery.status == "pending"
    assert pending.public()["delivery"]["channels"] == ["webhooks[0]", "email"]

    catalog.record_delivery(row, "firing", {"email": "e-mail via mx:25: refused"}, 4)
    [undelivered] = catalog.alerts()
    delivery = undelivered.public()["delivery"]
    assert (delivery["status"], delivery["notice"], delivery["channels"], delivery["tries"]) \
        == ("undelivered", "firing", ["email"], 4)
    assert delivery["error"] == "e-mail via mx:25: refused"

    now = clock.now()
    assert catalog.claim_undelivered(now - timedelta(minutes=5), now, set()) == []  # too soon
    later = now + timedelta(minutes=10)
    assert catalog.claim_undelivered(later, later, {row}) == []  # being sent by this daemon
    [claimed] = catalog.claim_undelivered(later, later, set())
    assert claimed.id == row and claimed.notice == FIRING
    assert claimed.delivery is not None and claimed.delivery.channels == ["email"]
    assert catalog.claim_undelivered(now, now, set()) == []  # claimed: pending since now

    resolved = catalog.resolve_alert("job_failed:his:backup", RESOLVED, ["webhooks[0]", "email"])
    assert resolved is not None and resolved.delivery is not None
    assert (resolved.delivery.status, resolved.delivery.state) == ("pending", "resolved")
    catalog.record_delivery(row, "firing", {}, 1)  # the firing retry ends late: ignored
    [current] = catalog.alerts()
    assert current.delivery is not None and current.delivery.status == "pending"
    catalog.record_delivery(row, "resolved", {}, 2)
    [done] = catalog.alerts()
    assert done.delivery is not None
    assert (done.delivery.status, done.delivery.channels, done.delivery.tries) \
        == ("delivered", [], 2)
    catalog.close()


def test_an_alert_without_channels_tracks_no_delivery(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    catalog.raise_alert("rpo_breach:his", "rpo_breach", "his", "t", {}, FIRING, [])
    [alert] = catalog.alerts()
    assert alert.delivery is None
    catalog.close()
