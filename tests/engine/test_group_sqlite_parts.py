"""A group point on Orthanc's SQLite index holds its index in its own tree (docs/pacs.md,
"A group on SQLite"): forget keeps only its files snapshot with it and reports no
problem, and copy brings that snapshot and no base backup nor WAL
(engine/group_retention.py, service/copy_group.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from medark.engine.group_retention import group_holds, point_needs
from medark.service.copy_group import with_group_parts
from medark.snapshot.model import Snapshot

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def snap(snap_id: str, source: dict[str, object], paths: list[str]) -> Snapshot:
    return Snapshot(time=T0, tree=b"\0" * 32, paths=paths, hostname="pacs", source=source,
                    id=snap_id)


FILES = snap("f" * 64, {}, ["/var/lib/orthanc/db"])
POINT = snap("a" * 64, {"kind": "group", "group": "pacs", "pacs": "orthanc",
                        "root": "/var/lib/orthanc/db", "files_snapshot": FILES.id,
                        "database": {"kind": "sqlite", "path": "/var/lib/orthanc/db/index",
                                     "time": "2026-11-03T08:00:00Z", "size": 8192}},
             ["/group/pacs"])


def test_a_sqlite_point_needs_its_files_snapshot_only() -> None:
    need = point_needs([FILES, POINT], POINT)
    assert need.problem is None and need.base_backup is None and need.wal_from is None
    doc = need.public()
    assert doc["database"] == "sqlite" and doc["lsn"] is None
    assert doc["files_snapshot"] == FILES.id and doc["files_snapshot_present"]
    holds = group_holds([FILES, POINT], {FILES.id})
    assert holds.wal_from() == {}, "no WAL is kept for it"
    assert "the files snapshot of group point aaaaaaaa" in holds.held[FILES.id]
    assert "SQLite index at 2026-11-03T08:00:00Z" in holds.held[FILES.id]


def test_copy_of_a_sqlite_point_brings_its_files_snapshot() -> None:
    chosen, parts = with_group_parts([FILES, POINT], [POINT])
    assert {s.id for s in chosen} == {FILES.id, POINT.id}
    assert [s.id for s in parts[0].added] == [FILES.id]
    assert parts[0].public()["problem"] is None
