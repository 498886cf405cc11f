"""Audit anchors in a repository, on both catalogs: an anchor holds the chain head and is
noted in the trail; verify checks the chain against every anchor of its own trail; a
trail rewritten with the key, cut short, or renamed (its chain id changed), and an
object under audit/ that is no anchor, are each reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_urls import KINDS, catalog_urls
from sqlalchemy import create_engine, update

from medark.catalog import audit_trail
from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.audit_verify import verify
from medark.catalog.store import Catalog
from medark.errors import UsageError
from medark.repo.compression import parse_compression
from medark.repo.repository import Repository
from medark.service.audit_anchor import ANCHORS_PREFIX, anchor, anchors
from medark.storage.mem import MemoryBackend


@pytest.fixture(params=KINDS)
def catalog(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Catalog]:
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    for url in catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_anchor"):
        opened = Catalog(url)
        yield opened
        opened.close()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    opened = Repository.init(MemoryBackend(), b"pw", "aes-256-gcm",
                             parse_compression("zstd:3"), tmp_path / "cache")
    yield opened
    opened.close()


def _key(tmp_path: Path) -> bytes:
    return bytes.fromhex((tmp_path / "audit.key").read_text().strip())


def _check(catalog: Catalog, repo: Repository, tmp_path: Path) -> list[str]:
    found, bad = anchors(repo)
    before, rows, after = audit_trail.snapshot(catalog)
    report = verify(before, rows, after, [_key(tmp_path)], found)
    return [f.line() for f in report.findings] + [f"unreadable {b.name}" for b in bad]


def test_anchors_hold_the_head_and_are_checked(catalog: Catalog, repo: Repository,
                                              tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to anchor"):
        anchor(catalog, repo, "cli:root", "cli")
    for i in range(3):
        append(catalog, AuditEntry("alice", "10.0.0.7", "browse", f"snapshot:{i}"))
    first = anchor(catalog, repo, "cli:root", "cli")
    assert (first.anchor.seq, first.record) == (3, 4)
    assert first.name.startswith(ANCHORS_PREFIX)
    second = anchor(catalog, repo, "cli:root", "cli")
    assert second.anchor.seq == 4
    found, bad = anchors(repo)
    assert sorted(a.seq for a in found) == [3, 4] and bad == []
    _head, rows, _ = audit_trail.snapshot(catalog)
    assert {a.hash for a in found} == {rows[2].hash, rows[3].hash}
    assert rows[3].action == "audit.anchor" and rows[3].detail["seq"] == 3
    assert _check(catalog, repo, tmp_path) == []
    before, rows, after = audit_trail.snapshot(catalog)
    report = verify(before, rows, after, [_key(tmp_path)], found)
    assert (report.anchors, report.anchored_seq) == (2, 4)


def test_a_renamed_trail_and_a_foreign_object_are_reported(catalog: Catalog,
                                                          repo: Repository,
                                                          tmp_path: Path) -> None:
    append(catalog, AuditEntry("alice", "10.0.0.7", "login"))
    anchor(catalog, repo, "cli:root", "cli")
    repo.save_unpacked(ANCHORS_PREFIX, b'{"type": "something else"}')
    engine = create_engine(catalog.url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(update(audit_trail.head).values(chain="f" * 32))
    engine.dispose()
    lines = _check(catalog, repo, tmp_path)
    assert lines[0].startswith("record 0: anchor: the repository holds 1 anchors, none of "
                               f"this trail (chain {'f' * 32})")
    assert len(lines) == 2 and lines[1].startswith(f"unreadable {ANCHORS_PREFIX}")
