"""forget never makes a kept consistency-group point unrestorable (engine/group_retention.py,
docs/pacs.md "Retention"): on a real repository holding two base backups, the WAL
between them, two files snapshots and two group points, a policy that would drop the
first point's base backup, files snapshot and WAL keeps them while the point stays, and
`group restore` still finds its base backup with no WAL gap; once the policy drops the
point itself, its parts go as usual."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD, Cli

from medark.engine.group_retention import group_holds, point_needs
from medark.engine.pg_retention import wal_to_expire
from medark.engine.pg_wal import WAL_PREFIX, WalArchive
from medark.engine.pg_window import Target
from medark.errors import TargetOutOfRange
from medark.repo.repository import Repository
from medark.service import pg
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots, save_snapshot, save_tree
from medark.sources.postgres.wal import format_lsn, parse_lsn, segment_name
from medark.storage.local import LocalBackend
from medark.util import clock

SYS = "7000000000000000042"
SEG = 16 * 1024 * 1024
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


@dataclass
class Site:
    cli: Cli
    b1: Snapshot
    b2: Snapshot
    f1: Snapshot
    f2: Snapshot
    p1: Snapshot
    p2: Snapshot

    def open(self) -> Repository:
        return Repository.open(LocalBackend(self.cli.repo), PASSWORD.encode(),
                               self.cli.repo.parent / "inproc-cache")

    def ids(self) -> set[str]:
        repo = self.open()
        try:
            return {s.id for s in all_snapshots(repo)}
        finally:
            repo.close()

    def segments(self) -> set[int]:
        repo = self.open()
        try:
            return {int(n.rsplit("/", 1)[-1][16:], 16)
                    for n in repo.list_names(f"{WAL_PREFIX}{SYS}/")}
        finally:
            repo.close()


def _save(repo: Repository, at: datetime, paths: list[str], tags: list[str],
          source: dict[str, object]) -> Snapshot:
    snap = Snapshot(time=at, tree=save_tree(repo, []), paths=paths, hostname="pacs1",
                    tags=["plan=pacs", *tags], source=source)
    repo.flush()
    save_snapshot(repo, snap)
    return snap


def _base(repo: Repository, seg: int, at: datetime) -> Snapshot:
    start = seg * SEG + 0x28
    return _save(repo, at, [f"/postgres/{SYS}"], [], {
        "kind": "postgres", "system_id": SYS, "start_lsn": format_lsn(start),
        "stop_lsn": format_lsn(start + 0x1000), "timeline": 1, "segment_size": SEG,
        "stop_time": clock.format_time(at + timedelta(minutes=1))})


def _point(repo: Repository, seg: int, at: datetime, files: Snapshot,
           recorded_base: Snapshot) -> Snapshot:
    return _save(repo, at, ["/group/pacs"], ["group", "group=pacs"], {
        "kind": "group", "group": "pacs", "pacs": "orthanc", "root": "/srv/pacs",
        "database": {"kind": "postgres", "system_id": SYS, "timeline": 1,
                     "lsn": format_lsn(seg * SEG + 0x500),
                     "time": clock.format_time(at), "base_backup": recorded_base.id},
        "files_snapshot": files.id, "counts": {}})


@pytest.fixture
def site(cli: Cli) -> Iterator[Site]:
    cli("init")
    repo = Repository.open(LocalBackend(cli.repo), PASSWORD.encode(),
                           cli.repo.parent / "inproc-cache")
    try:
        archive = WalArchive(repo, SYS)
        for segno in range(2, 14):
            archive.push(segment_name(1, segno), bytes([segno]) * 64, "archive_command")
        day2 = T0 + timedelta(days=2)
        b1 = _base(repo, 2, T0)
        f1 = _save(repo, T0 + timedelta(hours=1), ["/srv/pacs"], ["pacs"], {})
        p1 = _point(repo, 5, T0 + timedelta(hours=1), f1, b1)
        b2 = _base(repo, 10, day2)
        f2 = _save(repo, day2 + timedelta(hours=1), ["/srv/pacs"], ["pacs"], {})
        p2 = _point(repo, 12, day2 + timedelta(hours=1), f2, b2)
    finally:
        repo.close()
    yield Site(cli, b1, b2, f1, f2, p1, p2)


def _restorable(site: Site, point: Snapshot) -> Snapshot:
    """The base backup `group restore` of `point` chooses (WalGap if the WAL is gone)."""
    repo = site.open()
    try:
        lsn = parse_lsn(str(point.source["database"]["lsn"]))
        request = pg.RestoreRequest(target_dir="/nonexistent", target=Target("lsn", lsn=lsn),
                                    system_id=SYS, medark_command="medark", location="",
                                    password_file=None, password=b"")
        chosen, _system = pg.plan_restore(repo, request)
        return chosen
    finally:
        repo.close()


def test_a_kept_point_keeps_its_base_backup_wal_and_files_snapshot(site: Site) -> None:
    assert _restorable(site, site.p1).id == site.b1.id
    # keep-last 1 per host/paths would drop b1, f1 (and p1, were it not tagged to stay)
    dry = site.cli("--json", "forget", "--keep-last", "1", "--keep-tag", "group",
                   "--dry-run")
    docs = dry.json_lines()
    points = next(d for d in docs if isinstance(d, dict)
                  and d.get("message_type") == "group_points")
    assert points["dry_run"] is True
    by_id = {p["id"]: p for p in points["points"]}
    assert by_id[site.p1.id]["base_backup"] == site.b1.id
    assert by_id[site.p1.id]["wal_from"] == segment_name(1, 2)
    assert by_id[site.p1.id]["wal_to"] == segment_name(1, 5)
    assert by_id[site.p1.id]["files_snapshot"] == site.f1.id
    assert by_id[site.p2.id]["base_backup"] == site.b2.id
    assert {k["id"] for k in points["kept"]} == {site.b1.id, site.f1.id}
    assert not any(isinstance(d, dict) and d.get("message_type") == "wal_expired"
                   for d in docs)

    done = site.cli("forget", "--keep-last", "1", "--keep-tag", "group")
    assert (f"snapshot {site.b1.short_id} kept: the base backup of group point "
            f"{site.p1.short_id}") in done.stdout
    assert f"snapshot {site.f1.short_id} kept: the files snapshot" in done.stdout
    assert "2 group point(s) remain" in done.stdout
    assert "expired" not in done.stdout
    assert site.ids() == {s.id for s in (site.b1, site.b2, site.f1, site.f2, site.p1,
                                         site.p2)}
    assert site.segments() == set(range(2, 14))
    assert _restorable(site, site.p1).id == site.b1.id
    assert _restorable(site, site.p2).id == site.b2.id

    # the command line cannot remove what a kept point needs either
    named = site.cli("forget", site.b1.id)
    assert f"snapshot {site.b1.short_id} kept: the base backup" in named.stdout
    assert site.b1.id in site.ids()

    # the policy drops the first point: its base backup, files snapshot and WAL go
    gone = site.cli("forget", "--keep-last", "1")
    assert "kept: the base backup" not in gone.stdout
    assert site.ids() == {s.id for s in (site.b2, site.f2, site.p2)}
    assert site.segments() == set(range(10, 14))
    assert _restorable(site, site.p2).id == site.b2.id
    with pytest.raises(TargetOutOfRange, match="before the oldest base backup"):
        _restorable(site, site.p1)


def test_a_point_restores_from_the_newest_base_backup_before_its_lsn(site: Site) -> None:
    """Not the one recorded at backup time: the one `group restore` chooses."""
    repo = site.open()
    try:
        every = all_snapshots(repo)
        late = _base(repo, 4, T0 + timedelta(minutes=30))  # ends before p1's LSN
        every.append(late)
        assert point_needs(every, site.p1).base_backup is late
        holds = group_holds(every, {late.id, site.b1.id})
        assert set(holds.held) == {late.id}
        assert "the base backup of group point" in holds.held[late.id]
        assert holds.wal_from() == {SYS: 4 * SEG + 0x28}
        # pg_retention keeps the WAL a point needs even beside only newer backups
        assert len(wal_to_expire(repo, [site.b2])) == 8  # segments 2..9
        assert wal_to_expire(repo, [site.b2], holds.wal_from()) == sorted(
            n for n in repo.list_names(f"{WAL_PREFIX}{SYS}/") if int(n[-8:], 16) < 4)
        orphan = point_needs([s for s in every if s.id not in {late.id, site.b1.id}],
                             site.p1)
        assert orphan.base_backup is None
        assert orphan.problem is not None and "cannot be restored" in orphan.problem
        bare = Snapshot(time=T0, tree=b"\0" * 32, paths=["/group/pacs"], hostname="h",
                        source={"kind": "group", "group": "pacs"})
        assert point_needs(every, bare).problem == (
            "its record names no database point (LSN): it cannot be restored")
        assert group_holds([*every, bare], {late.id}).held.keys() == {late.id}
    finally:
        repo.close()

    both = site.cli("--json", "forget", "--keep-last", "1", "--keep-tag", "group=pacs")
    doc = next(d for d in both.json_lines() if isinstance(d, dict)
               and d.get("message_type") == "group_points")
    assert {k["id"] for k in doc["kept"]} == {late.id, site.f1.id}
    assert "and 0 newer" not in str(doc)
    assert site.b1.id not in site.ids()
    assert site.segments() == set(range(4, 14))
    assert _restorable(site, site.p1).id == late.id
