"""A reader that opened the repository before a stream archived a record still reads
that record: the record's blobs are in an index file written after the reader synced its
index, and reading refreshes the index once (a failback's standby feed read binlogs the
new primary's stream had just archived: "blob ... is not in the index")."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from medark.engine.binlog_names import BINLOG_PREFIX
from medark.engine.mysql_binlog import BinlogArchive, BinlogRecord
from medark.engine.pg_wal import WalArchive
from medark.errors import ObjectNotFound
from medark.repo.compression import parse_compression
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.storage.local import LocalBackend
from medark.util import clock

SYSTEM_ID = "7300000000000000002"


@pytest.fixture
def writer_and_reader(tmp_path: Path) -> Iterator[tuple[Repository, Repository]]:
    writer = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", "aes-256-gcm",
                             parse_compression("zstd:3"), tmp_path / "cache-w")
    reader = Repository.open(LocalBackend(tmp_path / "repo"), b"pw", tmp_path / "cache-r")
    yield writer, reader
    writer.close()
    reader.close()


def test_a_wal_record_archived_after_the_reader_opened_is_read(
        writer_and_reader: tuple[Repository, Repository]) -> None:
    writer, reader = writer_and_reader
    segment, data = "000000010000000000000001", os.urandom(300_000)
    WalArchive(writer, SYSTEM_ID).push(segment, data, "archive_command")
    record = WalArchive(reader, SYSTEM_ID).find(segment)
    assert record is not None
    with pytest.raises(ObjectNotFound):  # what the reader's index knew when it opened
        reader.locate(record.blobs[0])
    assert WalArchive(reader, SYSTEM_ID).content(record) == data


def test_a_binlog_archived_after_the_reader_opened_is_read(
        writer_and_reader: tuple[Repository, Repository]) -> None:
    writer, reader = writer_and_reader
    data = os.urandom(600_000)
    archive = BinlogArchive(writer, "2")
    blobs, _ = archive.store_blocks(memoryview(data))
    archive.push(BinlogRecord("mariadb-bin.000001", "2", len(data),
                              hashlib.sha256(data).hexdigest(), blobs,
                              clock.now().isoformat()))
    feed = BinlogArchive(reader, "2")
    assert feed.inventory().files() == ["mariadb-bin.000001"]
    (record,) = [feed.read_record(n) for n in reader.list_names(BINLOG_PREFIX)]
    assert feed.content(record) == data


def test_a_blob_missing_after_the_refresh_is_still_missing(
        writer_and_reader: tuple[Repository, Repository]) -> None:
    writer, reader = writer_and_reader
    segment = "000000010000000000000002"
    WalArchive(writer, SYSTEM_ID).push(segment, os.urandom(1000), "archive_command")
    record = WalArchive(reader, SYSTEM_ID).find(segment)
    assert record is not None
    record.blobs.append(writer.save_blob(BlobType.DATA, b"never flushed").id)
    with pytest.raises(ObjectNotFound):
        WalArchive(reader, SYSTEM_ID).content(record)
