"""Which group point a restore takes (service/groups.py): by id, the newest, or the newest
at or before --time; never a snapshot that is not a group's point; a plan's group from
the configuration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from group_site import pacs_plan

from medark.config.loader import load_config
from medark.errors import ObjectNotFound, TargetOutOfRange, UsageError
from medark.repo.compression import CompressionSpec
from medark.repo.repository import Repository
from medark.service.groups import choose_point, plan_group
from medark.snapshot.model import Snapshot
from medark.snapshot.store import save_snapshot, save_tree
from medark.storage.local import LocalBackend
from medark.util import clock

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
SITE = """\
[sites.main]
location = "CN-SC"
[repositories.local]
site = "main"
url = "/backup"
"""
HIS = """\
[systems.his]
owner = "IT"
[[systems.his.sources]]
type = "postgres"
dsn = "dbname=his"
[plans.his]
system = "his"
repository = "local"
schedule = "0 2 * * *"
rpo = "1d"
rto = "4h"
retention = { daily = 7 }
"""


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repository = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", "aes-256-gcm",
                                 CompressionSpec("zstd", 1), cache_dir=tmp_path / "cache")
    yield repository
    repository.close()


def point(repo: Repository, group: str, at: datetime, plan: str = "pacs") -> Snapshot:
    tree = save_tree(repo, [])
    repo.flush()
    snap = Snapshot(time=at + timedelta(seconds=5), tree=tree, paths=[f"/group/{group}"],
                    hostname="pacs1", tags=["group", f"group={group}", f"plan={plan}"],
                    source={"kind": "group", "group": group,
                            "database": {"lsn": "0/3000028",
                                         "time": clock.format_time(at)}})
    save_snapshot(repo, snap)
    return snap


def test_newest_point_at_or_before_a_time_by_id_or_newest(repo: Repository) -> None:
    first = point(repo, "pacs", T0)
    second = point(repo, "pacs", T0 + timedelta(hours=1))
    other = point(repo, "ris", T0 + timedelta(hours=2), plan="ris")
    assert choose_point(repo, None, "pacs", None).id == second.id
    assert choose_point(repo, None, None, None).id == other.id
    assert choose_point(repo, "latest", "pacs", None).id == second.id
    assert choose_point(repo, None, "pacs", T0 + timedelta(minutes=59)).id == first.id
    assert choose_point(repo, None, "pacs", T0 + timedelta(hours=1)).id == second.id
    assert choose_point(repo, first.id[:10], None, None).id == first.id
    assert choose_point(repo, None, None, None, plan="pacs").id == second.id
    with pytest.raises(ObjectNotFound):
        choose_point(repo, None, None, None, plan="lis")
    with pytest.raises(TargetOutOfRange, match="oldest is at 2026-11-03T08:00:00"):
        choose_point(repo, None, "pacs", T0 - timedelta(seconds=1))
    with pytest.raises(ObjectNotFound, match="no point of group 'pet'"):
        choose_point(repo, None, "pet", None)
    plain = Snapshot(time=T0, tree=save_tree(repo, []), paths=["/x"], hostname="h")
    repo.flush()
    save_snapshot(repo, plain)
    with pytest.raises(UsageError, match="not a consistency group's point"):
        choose_point(repo, plain.id, None, None)


def test_a_plans_group_comes_from_its_system(tmp_path: Path) -> None:
    path = tmp_path / "medark.toml"
    path.write_text(SITE + pacs_plan("dbname=orthanc", "/var/lib/orthanc/db", "orthanc",
                                     group="images") + HIS, encoding="utf-8")
    config = load_config(path)
    group = plan_group(config, "pacs", None)
    assert (group.name, group.root, group.database.dsn, group.files.pacs) == (
        "images", "/var/lib/orthanc/db", "dbname=orthanc", "orthanc")
    with pytest.raises(UsageError, match="has no consistency group"):
        plan_group(config, "his", None)
    with pytest.raises(UsageError, match="has no group 'x'"):
        plan_group(config, "pacs", "x")
    with pytest.raises(UsageError, match="no plan named"):
        plan_group(config, "nope", None)
