"""`copy` never sends a consistency-group point without what it restores from
(service/copy_group.py, docs/pacs.md "Copy"): on a real repository holding two base
backups, the WAL between them, two files snapshots and two group points (the fixture of
test_group_retention.py), a copy whose filters or --keep-* pick a point alone, with the
archives off, also sends the point's base backup (the one `group restore` chooses), its
files snapshot and the WAL from that backup's start to the point, and says so; the
destination then plans the point's restore with no WAL gap."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from conftest import PASSWORD, Cli
from test_group_retention import SYS, T0, Site, _base, site  # noqa: F401  (fixture)

from medark.engine.pg_wal import WAL_PREFIX
from medark.engine.pg_window import Target
from medark.repo.repository import Repository
from medark.service import pg
from medark.snapshot.model import Snapshot
from medark.snapshot.store import all_snapshots
from medark.sources.postgres.wal import parse_lsn, segment_name
from medark.storage.local import LocalBackend


def _open(where: Path) -> Repository:
    return Repository.open(LocalBackend(where), PASSWORD.encode(), where.parent / "dst-cache")


def _destination(held: Site) -> tuple[Cli, list[Snapshot], set[int], Snapshot | None]:
    """The destination's snapshots, WAL segments, and the base backup its restore of
    the first point's LSN chooses (None: no WAL path to that point)."""
    dst = held.cli.repo.parent / "offsite"
    repo = _open(dst)
    try:
        snaps = all_snapshots(repo)
        segments = {int(n.rsplit("/", 1)[-1][16:24], 16)
                    for n in repo.list_names(f"{WAL_PREFIX}{SYS}/")}
        chosen = None
        if any(s.original == held.b1.id for s in snaps):
            lsn = parse_lsn(str(held.p1.source["database"]["lsn"]))
            request = pg.RestoreRequest(target_dir="/nonexistent",
                                        target=Target("lsn", lsn=lsn), system_id=SYS,
                                        medark_command="medark", location="",
                                        password_file=None, password=b"")
            chosen, _system = pg.plan_restore(repo, request)
        return held.cli, snaps, segments, chosen
    finally:
        repo.close()


def test_copy_sends_what_each_group_point_restores_from(site: Site) -> None:  # noqa: F811
    dst = site.cli.repo.parent / "offsite"
    site.cli("--repo", dst, "init")
    # --keep-last 1 among the group-tagged snapshots: the newest point alone
    first = site.cli("--repo", dst, "--json", "copy", "--from-repo", site.cli.repo,
                     "--no-archives", "--tag", "group", "--keep-last", "1")
    summary = first.json_lines()[-1]
    assert summary["message_type"] == "summary"
    [point] = summary["group_points"]
    assert point["id"] == site.p2.id and point["base_backup"] == site.b2.id
    assert set(point["added"]) == {site.b2.id, site.f2.id}
    assert (point["wal_from"], point["wal_to"]) == (segment_name(1, 10), segment_name(1, 12))
    assert point["wal_records"] == 3 and point["problem"] is None
    _cli, snaps, segments, _chosen = _destination(site)
    assert {s.original for s in snaps} == {site.p2.id, site.b2.id, site.f2.id}
    assert segments == {10, 11, 12}  # not 13: past the point; not 2..9: no point needs it

    # the older point by id: its own base backup (the newest ending before its LSN, not
    # the newer one already there) and files snapshot come along
    repo = site.open()
    try:  # a base backup that ends after p1's LSN: never the one p1 restores from
        late = _base(repo, 6, T0 + timedelta(hours=2))
    finally:
        repo.close()
    second = site.cli("--repo", dst, "copy", "--from-repo", site.cli.repo, "--no-archives",
                      site.p1.id)
    prose = " ".join(second.stdout.split())
    assert (f"group point {site.p1.short_id}: sent with its base backup "
            f"{site.b1.short_id}, files snapshot {site.f1.short_id} and WAL "
            f"{segment_name(1, 2)} to {segment_name(1, 5)} (4 record(s))") in prose
    assert "snapshots: 3 copied" in prose
    _cli, snaps, segments, chosen = _destination(site)
    originals = {s.original for s in snaps}
    assert originals == {site.p1.id, site.b1.id, site.f1.id, site.p2.id, site.b2.id,
                         site.f2.id}
    assert late.id not in originals
    assert segments == {2, 3, 4, 5, 10, 11, 12}
    assert chosen is not None and chosen.original == site.b1.id  # and no WAL gap

    # a third run sends nothing more
    again = site.cli("--repo", dst, "--json", "copy", "--from-repo", site.cli.repo,
                     "--no-archives", site.p1.id)
    done = again.json_lines()[-1]
    assert done["snapshots_copied"] == 0 and done["records_copied"] == 0
    assert done["group_points"][0]["added"] == [site.b1.id, site.f1.id]
