"""The Repository over a real local directory: blobs, dedup, index, reopen, config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medark.errors import (
    IntegrityError,
    RepositoryCorrupt,
    RepositoryNotFound,
    UsageError,
    WrongPassword,
)
from medark.repo import index_cache, index_file
from medark.repo.compression import CompressionSpec
from medark.repo.pack import BlobType
from medark.repo.repository import Repository
from medark.storage.local import LocalBackend

PW = b"pw"


def make(tmp_path: Path, suite: str = "aes-256-gcm", level: int = 3) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"), PW, suite,
                           CompressionSpec("zstd", level), tmp_path / "cache")


def reopen(tmp_path: Path, password: bytes = PW) -> Repository:
    return Repository.open(LocalBackend(tmp_path / "repo"), password, tmp_path / "cache2")


@pytest.mark.parametrize("suite", ["aes-256-gcm", "chacha20-poly1305", "sm4-gcm"])
def test_blobs_round_trip_after_reopen(tmp_path: Path, suite: str) -> None:
    repo = make(tmp_path, suite)
    compressible = b"INSERT INTO t VALUES (1);\n" * 40_000
    random_data = os.urandom(300_000)
    ids = [repo.save_blob(BlobType.DATA, d).id for d in (compressible, random_data)]
    repo.flush()
    repo.close()
    again = reopen(tmp_path)
    assert again.config.suite == suite
    assert again.load_blob(ids[0]) == compressible
    assert again.load_blob(ids[1]) == random_data
    _pack, compressed = again.locate(ids[0])
    _pack, stored_raw = again.locate(ids[1])
    assert compressed.raw_length == len(compressible) and compressed.length < 100_000
    assert stored_raw.raw_length == 0  # incompressible data is stored as is
    again.close()


def test_packs_are_spooled_and_the_spool_is_left_empty(tmp_path: Path) -> None:
    repo = make(tmp_path)
    spool = tmp_path / "repo" / ".spool"
    blob = repo.save_blob(BlobType.DATA, os.urandom(200_000)).id
    assert [p.name[:6] for p in spool.iterdir()] == [".pack-"]  # the pack is not in RAM
    repo.flush()
    assert list(spool.iterdir()) == []
    dropped = repo.save_blob(BlobType.DATA, os.urandom(200_000)).id
    repo.close()  # abandoned before flush: its spool file goes, nothing refers to it
    assert list(spool.iterdir()) == []
    again = reopen(tmp_path)
    assert len(again.load_blob(blob)) == 200_000
    assert not again.has_blob(dropped)
    again.close()


def test_duplicate_blob_is_stored_once(tmp_path: Path) -> None:
    repo = make(tmp_path)
    first = repo.save_blob(BlobType.DATA, b"x" * 5000)
    second = repo.save_blob(BlobType.DATA, b"x" * 5000)
    assert first.added and not second.added and first.id == second.id
    repo.flush()
    third = repo.save_blob(BlobType.DATA, b"x" * 5000)
    assert not third.added
    assert repo.stats.data_blobs == 1
    repo.close()


def test_blob_ids_are_keyed(tmp_path: Path) -> None:
    a = make(tmp_path / "a")
    b = make(tmp_path / "b")
    assert a.crypto.blob_id(b"same") != b.crypto.blob_id(b"same")
    a.close()
    b.close()


def test_wrong_password(tmp_path: Path) -> None:
    make(tmp_path).close()
    with pytest.raises(WrongPassword):
        reopen(tmp_path, b"nope")


def test_missing_and_foreign_locations(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound):
        Repository.open(LocalBackend(tmp_path / "absent"), PW)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "file.txt").write_text("not a repository")
    with pytest.raises(RepositoryNotFound, match="not a Medark repository"):
        Repository.open(LocalBackend(tmp_path / "foreign"), PW)
    with pytest.raises(UsageError, match="not empty"):
        Repository.init(LocalBackend(tmp_path / "foreign"), PW, "aes-256-gcm",
                        CompressionSpec("zstd", 3))


def test_corrupted_config_is_reported(tmp_path: Path) -> None:
    make(tmp_path).close()
    config = tmp_path / "repo" / "config"
    raw = bytearray(config.read_bytes())
    raw[-5] ^= 0x01
    config.write_bytes(bytes(raw))
    with pytest.raises(RepositoryCorrupt, match="config"):
        reopen(tmp_path)


def test_tampered_blob_fails_verification(tmp_path: Path) -> None:
    repo = make(tmp_path)
    blob_id = repo.save_blob(BlobType.DATA, os.urandom(10_000)).id
    repo.flush()
    pack_id, entry = repo.locate(blob_id)
    path = next((tmp_path / "repo" / "data").rglob(pack_id.hex()))
    raw = bytearray(path.read_bytes())
    raw[entry.offset + 100] ^= 0x40
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=pack_id.hex()[:16]):
        repo.load_blob(blob_id)
    repo.close()


def test_index_written_during_backup_and_cache_rebuilds_after_prune(tmp_path: Path) -> None:
    repo = make(tmp_path)
    ids = [repo.save_blob(BlobType.DATA, os.urandom(2000)).id for _ in range(10)]
    repo.flush()
    names = repo.index_names()
    assert names
    # Replace every index file by one consolidated file (what prune does).
    packs = [pack for name in names
             for pack in index_file.iter_packs(repo.read_index_file(name))]
    superseded = [bytes.fromhex(n.rsplit("/", 1)[-1]) for n in names]
    repo.save_unpacked(index_file.INDEX_PREFIX, index_file.encode(packs, superseded))
    for name in names:
        repo.backend.remove(name)
    repo.sync_index()
    assert all(repo.load_blob(i) for i in ids)
    assert repo.cache.counts()[1] == 10
    repo.close()


def test_bulk_sync_of_many_index_files(tmp_path: Path) -> None:
    repo = make(tmp_path)
    ids = []
    for _ in range(12):  # more index files than the incremental path handles
        ids.append(repo.save_blob(BlobType.DATA, os.urandom(1000)).id)
        repo.flush()
    repo.close()
    assert len(list((tmp_path / "repo" / "index").iterdir())) == 12
    again = reopen(tmp_path)
    assert [again.load_blob(i) for i in ids]
    assert again.cache.counts() == (12, 12)
    again.close()


def test_a_batch_of_new_blobs_is_stored_once_each_and_reads_back(tmp_path: Path) -> None:
    """save_new_blobs (a batch of small files): blobs the index has, blobs already saved
    in this session and repeats inside the batch are not stored again; the rest land in
    one spool write with the offsets each blob is read back from."""
    repo = make(tmp_path)
    earlier = b"saved before the batch" * 50
    earlier_id = repo.save_blob(BlobType.DATA, earlier).id
    texts = [f"note {i}: ".encode() * (20 + i) for i in range(5)]
    noise = os.urandom(3_000)
    datas = [*texts, noise, texts[1], earlier]
    blobs = [(repo.crypto.blob_id(d), d) for d in datas]
    claimed_indexed = blobs[4][0]  # the caller's bulk query said the index has it
    absent = {blob_id for blob_id, _data in blobs} - {claimed_indexed}
    results = repo.save_new_blobs(BlobType.DATA, blobs, absent)
    assert [r.added for r in results] == [True, True, True, True, False, True, False, False]
    assert results[0].compressed is True and results[5].compressed is False
    assert repo.stats.data_blobs == 1 + 5
    repo.flush()
    repo.close()
    again = reopen(tmp_path)
    for blob_id, data in blobs[:4] + blobs[5:]:
        assert again.load_blob(blob_id) == data
    assert again.load_blob(earlier_id) == earlier
    assert not again.has_blob(claimed_indexed)
    again.close()


def test_index_files_reach_the_cache_in_batches_and_stay_findable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Index files are written at once (the checkpoint); the cache takes them in batches
    of DEFER_BLOBS blobs. Meanwhile their blobs are found and their packs' index files
    named, and a process killed before the batch loses nothing: the next one reads the
    index files themselves."""
    monkeypatch.setattr(index_cache, "DEFER_BLOBS", 3)
    repo = make(tmp_path)
    blobs = []
    for _ in range(2):  # two packs, each indexed by a checkpoint of its own
        blobs.append(repo.save_blob(BlobType.DATA, os.urandom(500)).id)
        repo._submit_pack(repo._builders.pop(BlobType.DATA))
        repo._builders[BlobType.DATA] = repo._new_pack()
        repo._uploads.wait()
        with repo._index_lock:
            repo._flush_index_locked()
    written = repo.index_names()
    assert len(written) == 2  # both checkpoints are in the repository...
    assert repo.cache.counts()[1] == 0  # ...and not yet in the cache (2 < 3 blobs)
    assert not repo.missing_blobs(blobs) and all(repo.has_blob(b) for b in blobs)
    assert repo.load_blob(blobs[1])
    pack_id, _entry = repo.locate(blobs[0])
    assert repo.index_file_of(pack_id) in written
    assert repo.cache.known_index_files() == written
    again = reopen(tmp_path)  # as after a kill here: the files are read, not the cache
    assert not again.missing_blobs(blobs)
    again.close()
    blobs.append(repo.save_blob(BlobType.DATA, os.urandom(500)).id)
    repo.flush()  # a third blob: the batch is full, and flush records any rest anyway
    assert repo.cache.counts()[1] == 3 and not repo._pending
    repo.close()


def test_missing_blobs_all_none_some_and_repeated(tmp_path: Path) -> None:
    """The cache counts before it lists: every shape of answer is still exact."""
    repo = make(tmp_path)
    stored = [repo.save_blob(BlobType.DATA, os.urandom(300)).id for _ in range(600)]
    repo.flush()
    absent = [os.urandom(32) for _ in range(600)]
    assert repo.missing_blobs(stored) == set()
    assert repo.missing_blobs(absent) == set(absent)
    mixed = stored[:400] + absent[:300] + stored[:50]  # more than one query's 500 ids
    assert repo.missing_blobs(mixed) == set(absent[:300])
    reader = index_cache.IndexReader(repo.cache.path)
    assert reader.present(mixed + mixed) == set(stored[:400])
    reader.close()
    repo.close()
