"""Which archived binary logs `forget` may expire: what no retained backup can replay.

The same rule as for PostgreSQL's WAL (engine/pg_retention.py): for each server, every
binlog file from the one the oldest retained backup started at is kept; older files go,
as do streamed versions of a file once it is archived complete (all but the newest
otherwise). A server with no retained backup keeps all of its binlogs.
"""

from __future__ import annotations

from collections import defaultdict

from medark.engine.binlog_names import BINLOG_PREFIX, PARTIAL
from medark.engine.pg_wal import WalRepo
from medark.snapshot.model import Snapshot
from medark.sources.mysql.binlog import parse_file_name


def binlog_to_expire(repo: WalRepo, kept: list[Snapshot]) -> list[str]:
    by_server: dict[str, list[str]] = defaultdict(list)
    for name in repo.list_names(BINLOG_PREFIX):
        parts = name.split("/")
        if len(parts) == 3:
            by_server[parts[1]].append(name)
    expire: list[str] = []
    for archive_id, names in by_server.items():
        starts = [parse_file_name(str(s.source.get("binlog_file") or ""))
                  for s in kept if s.source.get("kind") == "mysql"
                  and str(s.source.get("archive_id")) == archive_id]
        if not starts or any(start is None for start in starts):
            continue  # no retained backup, or one without coordinates: keep everything
        oldest = min(start[1] for start in starts if start is not None)
        expire.extend(_expire_server(names, oldest))
    return sorted(expire)


def _expire_server(names: list[str], oldest: int) -> list[str]:
    complete: set[str] = set()
    versions: dict[str, list[str]] = defaultdict(list)
    expire = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        file, sep, _version = base.partition(PARTIAL)
        parsed = parse_file_name(file)
        if parsed is None:
            continue
        if parsed[1] < oldest:
            expire.append(name)
        elif sep:
            versions[file].append(name)
        else:
            complete.add(file)
    for file, records in versions.items():
        records.sort()
        expire.extend(records if file in complete else records[:-1])
    return expire
