"""`medark audit verify|export|anchor` as a subprocess, on SQLite and the running
PostgreSQL, after tampering directly in the database as its administrator would (the
append-only triggers dropped first): a record edited, deleted, inserted, two swapped —
each named by number and kind, exit 31; an intact trail exits 0. A history rewritten
with the signing key itself passes the chain check but not the repository's anchors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_urls import KINDS, catalog_urls
from conftest import Cli
from sqlalchemy import Engine, create_engine, select, text, update

from medark.catalog import audit_trail
from medark.catalog.audit_trail import AuditEntry, append, records
from medark.catalog.store import Catalog

BROKEN = 31


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_audit_e2e")


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Path:
    path = tmp_path / "audit.key"
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(path))
    cli.env["MEDARK_AUDIT_KEY_FILE"] = str(path)
    return path


def _trail(url: str, count: int) -> None:
    catalog = Catalog(url)
    for i in range(1, count + 1):
        append(catalog, AuditEntry(f"user{i}", f"10.0.0.{i}", "restore", f"system:his{i}",
                                   institution="县医院", detail={"n": i}))
    catalog.close()


def _attacker(url: str) -> Engine:
    """The database's administrator: drops the append-only triggers first."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        for verb in ("update", "delete"):
            suffix = " ON audit_trail" if engine.dialect.name == "postgresql" else ""
            connection.execute(text(f"DROP TRIGGER audit_trail_no_{verb}{suffix}"))
    return engine


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(records).order_by(records.c.seq)))


def _forged(engine: Engine, seq: int, prev_hash: str, key: bytes | None) -> dict[str, Any]:
    """A record as the attacker builds it: the documented hash, signed with `key` if
    they have it, else with a key of their own."""
    template = _rows(engine)[0]
    at = audit_trail.stored_record(template).at
    fields = audit_trail.hashed_fields(seq, audit_trail.format_at(at), "mallory", "10.6.6.6",
                                       "restore", "system:his", "ok", "县医院", {},
                                       "sha256", template.key_id, prev_hash)
    digest = audit_trail.digest("sha256", audit_trail.canonical(fields))
    signing = key or b"m" * 32
    return {"seq": seq, "at": at, "actor": "mallory", "source": "10.6.6.6",
            "action": "restore", "target": "system:his", "result": "ok",
            "institution": "县医院", "detail": "{}", "hash_alg": "sha256",
            "key_id": template.key_id, "prev_hash": prev_hash, "hash": digest,
            "signature": audit_trail.mac("sha256", signing, digest.encode())}


def _verify(cli: Cli, url: str, *extra: str) -> tuple[int, list[str]]:
    result = cli("audit", "verify", "--catalog", url, *extra, check=False)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout.splitlines()


def test_an_intact_trail_verifies(cli: Cli, url: str, key_file: Path) -> None:
    code, lines = _verify(cli, url)  # a new catalog: no record, no key made yet
    assert (code, lines[-1].split(": ", 1)[1]) == (0, "0 records, head 0: intact")
    assert not key_file.exists()
    _trail(url, 5)
    code, lines = _verify(cli, url)
    assert code == 0, lines
    assert lines[-1].endswith(": 5 records, head 5: intact")
    doc = cli("audit", "verify", "--catalog", url, "--json").json()
    assert doc["intact"] is True and doc["records"] == 5 and doc["problems"] == []
    cli.env["MEDARK_CATALOG"] = url  # found as every other command finds it; no plan file
    assert cli("audit", "verify", "--json").json()["records"] == 5


def test_each_kind_of_tampering_is_named(cli: Cli, url: str, key_file: Path) -> None:
    _trail(url, 12)
    engine = _attacker(url)
    rows = _rows(engine)
    with engine.begin() as c:
        # a record edited
        c.execute(update(records).where(records.c.seq == 3).values(actor="someone.else"))
        # a record deleted
        c.execute(records.delete().where(records.c.seq == 5))
        # two records swapped
        c.execute(update(records).where(records.c.seq == 7).values(seq=-7))
        c.execute(update(records).where(records.c.seq == 8).values(seq=7))
        c.execute(update(records).where(records.c.seq == -7).values(seq=8))
        # a record inserted after the last, chained to it, hashed as documented
        c.execute(records.insert().values(**_forged(engine, 13, rows[-1].hash, None)))
    engine.dispose()
    code, lines = _verify(cli, url)
    assert code == BROKEN, lines
    problems = [line for line in lines if line.startswith("record ")]
    assert problems == [
        "record 3: edited: its content no longer matches its hash",
        "record 5: deleted: record 5 missing between the records before and after",
        "record 7: reordered: holds record 8, moved from its place",
        "record 8: reordered: holds record 7, moved from its place",
        "record 13: inserted: numbered beyond the chain head (record 12), and not signed "
        "by the audit key",
    ]
    assert lines[-1].endswith(": 12 records, head 12: 5 problems")
    doc = json.loads(cli("audit", "verify", "--catalog", url, "--json",
                         check=False).stdout)
    assert [(p["seq"], p["kind"]) for p in doc["problems"]] == [
        (3, "edited"), (5, "deleted"), (7, "reordered"), (8, "reordered"), (13, "inserted")]


def test_deleting_the_newest_records_and_recomputed_hashes(cli: Cli, url: str,
                                                           key_file: Path) -> None:
    """Cut off the end; rewrite a record recomputing its hash (no key); insert one with
    the head moved along so it is not beyond the head."""
    _trail(url, 8)
    engine = _attacker(url)
    rows = _rows(engine)
    with engine.begin() as c:
        c.execute(records.delete().where(records.c.seq >= 7))
        forged = _forged(engine, 2, rows[0].hash, None)
        c.execute(records.delete().where(records.c.seq == 2))
        c.execute(records.insert().values(**forged))
    engine.dispose()
    code, lines = _verify(cli, url)
    assert code == BROKEN
    assert [line for line in lines if line.startswith("record ")] == [
        "record 2: edited: its hash was recomputed without the audit key",
        "record 7: deleted: records 7–8 missing at the end (the chain head says 8 records)",
    ]


def test_a_rewrite_with_the_key_is_caught_by_the_anchor(cli: Cli, url: str,
                                                        key_file: Path) -> None:
    cli("init")
    _trail(url, 6)
    anchored = cli("audit", "anchor", "--catalog", url, "--json").json()
    assert (anchored["seq"], anchored["record"]) == (6, 7)
    code, lines = _verify(cli, url, "--repo", str(cli.repo))
    assert code == 0, lines
    assert lines[-1].endswith(": 7 records, head 7, 1 anchors up to record 6: intact")

    # the database administrator holding the key rewrites record 2 and everything after
    key = bytes.fromhex(key_file.read_text().strip())
    engine = _attacker(url)
    rows = _rows(engine)
    prev = rows[0].hash
    with engine.begin() as c:
        for row in rows[1:]:
            stored = audit_trail.stored_record(row)
            actor = "nobody" if row.seq == 2 else stored.actor
            fields = audit_trail.hashed_fields(
                row.seq, audit_trail.format_at(stored.at), actor, stored.source,
                stored.action, stored.target, stored.result, stored.institution,
                stored.detail, "sha256", stored.key_id, prev)
            digest = audit_trail.digest("sha256", audit_trail.canonical(fields))
            c.execute(update(records).where(records.c.seq == row.seq).values(
                actor=actor, prev_hash=prev, hash=digest,
                signature=audit_trail.mac("sha256", key, digest.encode())))
            prev = digest
        c.execute(update(audit_trail.head).values(hash=prev))
    engine.dispose()
    code, lines = _verify(cli, url)
    assert code == 0, lines  # the chain alone cannot tell
    code, lines = _verify(cli, url, "--repo", str(cli.repo))
    assert code == BROKEN, lines
    assert [line for line in lines if line.startswith("record ")] == [
        "record 6: anchor: differs from the anchor of "
        f"{anchored['anchored_at']}: the history up to record 6 was rewritten"]


def test_export_jsonl_and_csv(cli: Cli, url: str, key_file: Path, tmp_path: Path) -> None:
    _trail(url, 3)
    lines = cli("audit", "export", "--catalog", url, "--from", "2000-01-01",
                "--to", "2999-12-31").stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["seq"] for d in docs] == [1, 2, 3]
    assert docs[1]["institution"] == "县医院" and docs[1]["detail"] == {"n": 2}
    out = tmp_path / "audit.csv"
    cli("audit", "export", "--catalog", url, "--format", "csv", "--output", out)
    assert out.stat().st_mode & 0o777 == 0o600
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    # the first export was recorded in the trail as record 4
    assert [r["seq"] for r in table] == ["1", "2", "3", "4"]
    assert table[3]["action"] == "audit.export"
    assert json.loads(table[2]["detail"]) == {"n": 3}
    assert cli("audit", "export", "--catalog", url, "--from", "2999-01-01").stdout == ""
    bad = cli("audit", "export", "--catalog", url, "--from", "yesterday", check=False)
    assert bad.returncode == 2  # a usage error (README)
    assert bad.stderr.count("\n") == 1 and "--from 'yesterday'" in bad.stderr
    code, _lines = _verify(cli, url)
    assert code == 0


def test_without_the_key_verify_says_so(cli: Cli, url: str, key_file: Path,
                                        tmp_path: Path) -> None:
    _trail(url, 2)
    missing = tmp_path / "elsewhere.key"
    result = cli("audit", "verify", "--catalog", url, "--key-file", missing, check=False)
    assert result.returncode == 16
    assert result.stderr.strip().splitlines() == [
        f"medark: audit key {missing}: No such file or directory"]
    cli.env["MEDARK_AUDIT_KEY_FILE"] = str(missing)
    result = cli("audit", "verify", "--catalog", url, check=False)
    assert result.returncode == 16 and "is missing: give the key" in result.stderr
    assert key_file.read_text() not in result.stdout + result.stderr
