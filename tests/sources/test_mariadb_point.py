"""The pure parts of a MariaDB group point (sources/pacs/mariadb_point.py) and of a
restore to a binlog position (engine/mysql_restore.py): the DSN's database, the batch
output's escapes, FILE:POS, and which backup a position restores from."""

from __future__ import annotations

import pytest

from medark.engine.mysql_restore import backup_before, binlog_key, parse_position
from medark.errors import UsageError
from medark.snapshot.model import Snapshot
from medark.sources.pacs.mariadb_point import index_conn, unescape
from medark.util import clock


def test_the_dsn_names_the_index_database() -> None:
    conn, database = index_conn("mysql://medark:pw@pacs-db:3307/pacsdb")
    assert (conn.host, conn.port, conn.user, conn.password, database) == (
        "pacs-db", 3307, "medark", "pw", "pacsdb")
    conn, database = index_conn("host=pacs-db user=medark database=pacsdb")
    assert (conn.host, conn.user, database) == ("pacs-db", "medark", "pacsdb")
    assert index_conn("mysql://medark@pacs-db")[1] is None
    with pytest.raises(UsageError):
        index_conn("host=db colour=blue")


def test_batch_output_is_unescaped() -> None:
    assert unescape("NULL") is None
    assert unescape("a\\tb\\nc\\\\d") == "a\tb\nc\\d"
    assert unescape("plain/path.dcm") == "plain/path.dcm"


def test_a_position_is_file_and_offset() -> None:
    assert parse_position("binlog.000012:4711") == ("binlog.000012", 4711)
    for bad in ("binlog.000012", "binlog.000012:x", "../x.000001:4", ":4"):
        with pytest.raises(UsageError):
            parse_position(bad)
    assert binlog_key("binlog.000002", 4) < binlog_key("binlog.000010", 0)


def _backup(file: str | None, position: int, n: int) -> Snapshot:
    return Snapshot(time=clock.parse_time(f"2026-01-01T00:00:0{n}Z"), tree=b"\0" * 32,
                    paths=["/mysql/1"], hostname="h", id=f"{n:064x}",
                    source={"kind": "mysql", "archive_id": "1", "binlog_file": file,
                            "binlog_position": position})


def test_a_position_restores_from_the_newest_backup_at_or_before_it() -> None:
    backups = [_backup("binlog.000001", 400, 1), _backup(None, 0, 2),
               _backup("binlog.000002", 300, 3), _backup("binlog.000003", 10, 4)]
    assert backup_before(backups, "binlog.000002", 300) is backups[2]
    assert backup_before(backups, "binlog.000002", 299) is backups[0]
    assert backup_before(backups, "binlog.000001", 399) is None
