"""The audit trail in the catalog, on SQLite and the running PostgreSQL: records are
numbered without gaps, each chained to the one before and signed; the key file is
0600 and made only for an empty trail; secrets in `detail` never reach a record; the
database refuses UPDATE and DELETE of a record."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from medark.catalog import audit_trail
from medark.catalog.audit_trail import AuditEntry, AuditSettings, append
from medark.catalog.store import Catalog
from medark.errors import CatalogError


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(tmp_path / "keys" / "audit.key"))
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_audit")


def _sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def test_records_are_numbered_chained_and_signed(url: str, tmp_path: Path) -> None:
    catalog = Catalog(url)
    seqs = [append(catalog, AuditEntry("alice", "10.0.0.7", "login")),
            append(catalog, AuditEntry("alice", "10.0.0.7", "restore", "system:his",
                                       institution="县人民医院",
                                       detail={"snapshot": "ab12cd34", "files": 3}))]
    assert seqs == [1, 2]
    head, rows, _ = audit_trail.snapshot(catalog)
    assert (head.seq, head.hash) == (2, rows[1].hash)
    assert rows[0].prev_hash == audit_trail.GENESIS
    assert rows[1].prev_hash == rows[0].hash
    assert rows[1].detail == {"snapshot": "ab12cd34", "files": 3}
    assert rows[1].institution == "县人民医院"
    key_file = tmp_path / "keys" / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = bytes.fromhex(key_file.read_text().strip())
    for row in rows:
        # the documented form (docs/audit.md), recomputed here by hand
        body = {"v": 1, "seq": row.seq, "at": row.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "actor": row.actor, "source": row.source, "action": row.action,
                "target": row.target, "result": row.result,
                "institution": row.institution, "detail": row.detail,
                "hash_alg": "sha256", "key_id": row.key_id, "prev_hash": row.prev_hash}
        data = json.dumps(body, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
        assert row.hash == hashlib.sha256(data).hexdigest()
        assert row.signature == hmac.new(key, row.hash.encode(), "sha256").hexdigest()
    catalog.close()


def test_sm3_records(url: str) -> None:
    catalog = Catalog(url)
    settings = AuditSettings("sm3", AuditSettings.from_environment().key_file)
    append(catalog, AuditEntry("daemon", "daemon", "backup", "plan:his"), settings)
    _head, rows, _ = audit_trail.snapshot(catalog)
    assert rows[0].hash_alg == "sm3"
    assert rows[0].hash == audit_trail.record_hash(rows[0])
    assert rows[0].hash != hashlib.sha256(b"").hexdigest()
    catalog.close()


def test_secrets_never_reach_a_record(url: str) -> None:
    catalog = Catalog(url)
    append(catalog, AuditEntry("bob", "10.0.0.8", "user.password", "user:bob",
                               detail={"password": "hunter2", "nested": {"token": "t0k"},
                                       "why": "first login"}))
    _head, rows, _ = audit_trail.snapshot(catalog)
    assert rows[0].detail == {"password": "***", "nested": {"token": "***"},
                              "why": "first login"}
    with pytest.raises(ValueError, match="result"):
        append(catalog, AuditEntry("bob", "cli", "login", result="maybe"))
    catalog.close()


def test_the_database_refuses_to_change_a_record(url: str) -> None:
    catalog = Catalog(url)
    append(catalog, AuditEntry("carol", "cli", "restore"))
    engine = create_engine(_sqlalchemy_url(url))
    for statement in ("UPDATE audit_trail SET actor = 'mallory'", "DELETE FROM audit_trail"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    engine.dispose()
    catalog.close()


def test_a_missing_key_is_made_only_for_an_empty_trail(url: str, tmp_path: Path) -> None:
    catalog = Catalog(url)
    append(catalog, AuditEntry("dave", "cli", "login"))
    other = AuditSettings("sha256", tmp_path / "elsewhere" / "audit.key")
    with pytest.raises(CatalogError, match="missing but the audit trail has 1 records"):
        append(catalog, AuditEntry("dave", "cli", "login"), other)
    catalog.close()


def test_a_key_others_can_read_is_refused(url: str, tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    loose.write_text("00" * 32)
    loose.chmod(0o644)
    catalog = Catalog(url)
    with pytest.raises(CatalogError, match="readable by others"):
        append(catalog, AuditEntry("erin", "cli", "login"), AuditSettings("sha256", loose))
    catalog.close()


APPENDER = """\
import sys
import time
from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.store import Catalog
catalog = Catalog(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # both start together, once both have imported and connected
for i in range(int(sys.argv[3])):
    append(catalog, AuditEntry(sys.argv[2], "10.0.0.1", "browse", f"snapshot:{i}"))
    time.sleep(0.001)  # as requests arrive: SQLite's busy wait would let one writer run on
"""


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_append_one_unbroken_chain(kind: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes, 500 records each, one catalog, a key file neither made yet: 1000
    records numbered 1–1000, one chain, both writers interleaved."""
    from medark.catalog.audit_verify import verify

    key_file = tmp_path / "audit.key"
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(key_file))
    for url in catalog_urls(kind, tmp_path / "catalog.sqlite", "medark_audit_race"):
        Catalog(url).close()  # migrated before the race: the race is the appends'
        writers = [subprocess.Popen([sys.executable, "-c", APPENDER, url, name, "500"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                   for name in ("server-a", "server-b")]
        for writer in writers:  # a writer still importing would let the other run alone
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.close()
        assert [w.wait(timeout=240) for w in writers] == [0, 0]
        for writer in writers:
            assert writer.stdout is not None
            writer.stdout.close()
        catalog = Catalog(url)
        before, rows, after = audit_trail.snapshot(catalog)
        assert [r.seq for r in rows] == list(range(1, 1001))
        assert before.seq == 1000
        key = bytes.fromhex(key_file.read_text().strip())
        report = verify(before, rows, after, [key])
        assert report.intact, [f.line() for f in report.findings[:5]]
        actors = [r.actor for r in rows]
        assert actors.count("server-a") == actors.count("server-b") == 500
        switches = sum(a != b for a, b in itertools.pairwise(actors))
        assert switches > 1, "the writers never interleaved: the test raced nothing"
        catalog.close()


def test_threads_share_transactions_and_keep_one_chain(url: str, tmp_path: Path) -> None:
    """Eight threads of one server process appending at once: group commit writes them
    in shared transactions, each caller gets its own record's number."""
    from concurrent.futures import ThreadPoolExecutor

    from medark.catalog.audit_verify import verify

    catalog = Catalog(url)

    def worker(name: str) -> list[int]:
        return [append(catalog, AuditEntry(name, "10.0.0.2", "browse", f"file:{i}"))
                for i in range(100)]

    with ThreadPoolExecutor(8) as pool:
        returned = list(pool.map(worker, [f"t{n}" for n in range(8)]))
    before, rows, after = audit_trail.snapshot(catalog)
    assert [r.seq for r in rows] == list(range(1, 801))
    assert sorted(s for seqs in returned for s in seqs) == list(range(1, 801))
    by_seq = {r.seq: r for r in rows}
    for n, seqs in enumerate(returned):
        assert all(by_seq[s].actor == f"t{n}" for s in seqs)  # each got its own record
        assert seqs == sorted(seqs)
    key = bytes.fromhex((tmp_path / "keys" / "audit.key").read_text().strip())
    assert verify(before, rows, after, [key]).intact
    assert audit_trail.append_many(catalog, [AuditEntry("x", "cli", "a"),
                                             AuditEntry("y", "cli", "b")]) == [801, 802]
    catalog.close()


def test_the_migration_goes_down_and_up(url: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import inspect

    from medark.catalog.store import MIGRATIONS

    catalog = Catalog(url)
    append(catalog, AuditEntry("alice", "cli", "login"))
    chain = audit_trail.read_head(catalog).chain
    catalog.close()
    engine = create_engine(_sqlalchemy_url(url))
    with engine.begin() as connection:
        alembic = AlembicConfig()
        alembic.set_main_option("script_location", str(MIGRATIONS))
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0004_dr_actions")
        assert not inspect(connection).has_table("audit_trail")
        assert not inspect(connection).has_table("audit_head")
    engine.dispose()
    catalog = Catalog(url)  # upgraded again on open: a new, empty trail with a new id
    assert audit_trail.read_head(catalog).chain != chain
    assert audit_trail.read_head(catalog).seq == 0
    catalog.close()
