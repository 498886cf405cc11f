"""The audit chain's format does not change with how records are written: trails written
by the code before the detail was encoded only once (data/audit_trail_v1*.json, made
with commit 7141f93's audit_trail.py, SHA-256 and SM3) pass `medark audit verify`,
alone and continued by today's code (a mixed trail); and the spliced hashed form equals
the documented canonical JSON for any detail."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from sqlalchemy import create_engine, update

from medark.catalog import audit_trail
from medark.catalog.audit_trail import (
    AuditEntry,
    append,
    append_many,
    canonical,
    format_at,
    hashed_bytes,
    hashed_fields,
    sqlite_stored_time,
)
from medark.catalog.store import Catalog

DATA = Path(__file__).parent / "data"


def _load(tmp_path: Path, name: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[str, dict[str, Any]]:
    """A new SQLite catalog holding the fixture's records and head, its key in place."""
    fixture = json.loads((DATA / name).read_text(encoding="utf-8"))
    key = tmp_path / "audit.key"
    key.write_text(fixture["key"] + "\n", encoding="ascii")
    key.chmod(0o600)
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(key))
    cli.env["MEDARK_AUDIT_KEY_FILE"] = str(key)
    url = f"sqlite:///{tmp_path}/catalog.sqlite"
    Catalog(url).close()  # migrated
    engine = create_engine(url)
    with engine.begin() as connection:
        rows = [{**r, "at": datetime.fromisoformat(r["at"]).replace(tzinfo=UTC)}
                for r in fixture["records"]]
        connection.execute(audit_trail.records.insert(), rows)
        head = fixture["head"]
        connection.execute(update(audit_trail.head).where(audit_trail.head.c.id == 1)
                           .values(seq=head["seq"], hash=head["hash"], chain=head["chain"]))
    engine.dispose()
    return url, fixture


def _verify(cli: Cli, url: str) -> dict[str, Any]:
    result = cli("audit", "verify", "--catalog", url, "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.mark.parametrize(("name", "alg"), [("audit_trail_v1.json", "sha256"),
                                           ("audit_trail_v1_sm3.json", "sm3")])
def test_an_old_trail_verifies_alone_and_continued(
        name: str, alg: str, tmp_path: Path, cli: Cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, fixture = _load(tmp_path, name, cli, monkeypatch)
    assert {r["hash_alg"] for r in fixture["records"]} == {alg}
    doc = _verify(cli, url)
    assert (doc["records"], doc["intact"]) == (4, True)

    monkeypatch.setenv("MEDARK_AUDIT_HASH", alg)
    catalog = Catalog(url)
    assert append(catalog, AuditEntry("bob", "cli", "restore", "system:lis",
                                      detail={"token": "s", "n": [1, (2, 3)]})) == 5
    assert append_many(catalog, [AuditEntry("db:u", "10.1.0.2", "db.read", "his/his/t",
                                            detail={"statement": "SELECT '?'", "rows": None}),
                                 AuditEntry("db:u", "10.1.0.2", "db.write")]) == [6, 7]
    _, records, _ = audit_trail.snapshot(catalog)
    catalog.close()
    assert records[4].prev_hash == fixture["head"]["hash"]
    assert records[4].detail == {"token": "***", "n": [1, [2, 3]]}
    doc = _verify(cli, url)
    assert (doc["records"], doc["intact"]) == (7, True)


@pytest.mark.parametrize("detail", [
    {}, {"a": 1}, {"z": None, "a": [1, 2.5, "é\n\"q\""], "m": {"b": {"c": True}}},
    {"statement": "SELECT '\u2028' FROM \"患者\"", "rows": 10**20, "x": -0.0},
])
@pytest.mark.parametrize("target", [None, "system:his", 'a"\\b\x01\u2028é'])
def test_the_spliced_form_is_the_canonical_json(detail: dict[str, Any],
                                                target: str | None) -> None:
    args = (12, "2026-12-06T09:00:00.000001Z", "alice", "10.0.0.7", "db.read", target,
            "ok", "县医院")
    tail = ("sm3", "a841bdc67632e6c9", "0" * 64)
    assert hashed_bytes(*args, canonical(detail), *tail) == canonical(
        hashed_fields(*args, detail, *tail))


@pytest.mark.parametrize("at", [datetime(2026, 12, 6, 9, 0, 0, 1, UTC),
                                datetime(2026, 1, 2, 23, 59, 59, 999999, UTC),
                                datetime(2026, 6, 1, tzinfo=UTC)])
def test_the_sqlite_time_is_what_sqlalchemy_stores(at: datetime) -> None:
    engine = create_engine("sqlite://")
    stored = audit_trail.records.c.at.type.dialect_impl(engine.dialect).bind_processor(
        engine.dialect)
    assert stored is not None
    assert sqlite_stored_time(format_at(at)) == stored(at)


def test_values_that_are_not_strings_hash_as_json_writes_them() -> None:
    """The spliced form writes strings itself; anything else goes through json."""
    for seq, source in ((7, 5), (True, "cli"), (8, None)):
        args = (seq, "2026-12-06T09:00:00.000001Z", "alice", source, "login", None,
                "ok", None)
        tail = ("sha256", "k", "0" * 64)
        assert hashed_bytes(*args, canonical({"n": 1}), *tail) == canonical(  # type: ignore[arg-type]
            hashed_fields(*args, {"n": 1}, *tail))  # type: ignore[arg-type]
