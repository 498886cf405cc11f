"""Property-based round trips of the content layer: chunking, packing, sealing, compression,
index files and the index cache. Example counts stay modest so the suite stays fast."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medark.errors import IntegrityError, WrongPassword
from medark.repo import index_file
from medark.repo.chunker import Chunker, ChunkerParams
from medark.repo.compression import CompressionSpec, Compressor, decompress
from medark.repo.crypto import (
    MASTER_KEY_LEN,
    NONCE_LEN,
    SEAL_OVERHEAD,
    SESSION_ID_LEN,
    SUITES,
    Crypto,
    get_suite,
)
from medark.repo.index_cache import IndexCache
from medark.repo.keys import KdfParams, make_key_file, open_key_file
from medark.repo.pack import ENTRY, TRAILER, BlobType, PackBuilder, PackedBlob, parse_header
from medark.repo.suites import DEFAULT_SUITE, SUITE_NAMES

FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
MASTER = bytes(range(MASTER_KEY_LEN))
SMALL = ChunkerParams(min_size=64, avg_size=256, max_size=1024, seed=12345)

suites = st.sampled_from(sorted(SUITES))
blob_types = st.sampled_from(list(BlobType))


# ---- chunking ----------------------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=20_000), seed=st.integers(0, 2**63 - 1))
def test_chunks_concatenate_to_the_input_within_size_bounds(data: bytes, seed: int) -> None:
    params = ChunkerParams(SMALL.min_size, SMALL.avg_size, SMALL.max_size, seed)
    chunks = list(Chunker(params).cut(data))
    assert b"".join(chunks) == data
    assert all(chunks)
    for chunk in chunks[:-1]:
        assert params.min_size <= len(chunk) <= params.max_size
    if chunks:
        assert len(chunks[-1]) <= params.max_size
    # Streaming gives the same cuts as the whole buffer.
    assert list(Chunker(params).chunks(io.BytesIO(data))) == chunks


@FAST
@given(prefix=st.binary(min_size=1, max_size=3000), seed=st.integers(0, 2**32),
       size=st.integers(10_000, 20_000))
def test_chunk_boundaries_resynchronise_after_an_insertion(
    prefix: bytes, seed: int, size: int
) -> None:
    """Content-defined: once a cut after an insertion lines up with an old one, every
    later chunk is the same, so the tail of `body` deduplicates."""
    body = random.Random(seed).randbytes(size)
    plain = list(Chunker(SMALL).cut(body))
    shifted = list(Chunker(SMALL).cut(prefix + body))
    first = next((k for k, chunk in enumerate(plain) if chunk in set(shifted)), None)
    assert first is not None  # never observed beyond chunk 13 of ~20-80
    assert shifted[len(shifted) - (len(plain) - first):] == plain[first:]


def test_small_input_is_one_chunk() -> None:
    assert list(Chunker(ChunkerParams()).cut(b"x" * 1000)) == [b"x" * 1000]


# ---- sealing -------------------------------------------------------------------------------


def test_the_suite_names_init_offers_are_the_suites() -> None:
    """repo/suites.py names them for `medark init --help` without the cipher library."""
    assert tuple(SUITES) == SUITE_NAMES and DEFAULT_SUITE in SUITES


@FAST
@given(suite=suites, plaintext=st.binary(max_size=4096))
def test_seal_open_round_trip_for_every_suite(suite: str, plaintext: bytes) -> None:
    crypto = Crypto(get_suite(suite), MASTER)
    sealed = crypto.seal(plaintext)
    assert len(sealed) == len(plaintext) + SEAL_OVERHEAD
    assert crypto.open(sealed) == plaintext
    # Another process (another session) with the same master key opens it too.
    assert Crypto(get_suite(suite), MASTER).open(sealed) == plaintext


@FAST
@given(suite=suites, plaintext=st.binary(max_size=512), where=st.integers(min_value=0),
       bit=st.integers(0, 7))
def test_any_flipped_bit_fails_authentication(
    suite: str, plaintext: bytes, where: int, bit: int
) -> None:
    crypto = Crypto(get_suite(suite), MASTER)
    sealed = bytearray(crypto.seal(plaintext))
    sealed[where % len(sealed)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        crypto.open(bytes(sealed))


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_truncated_or_foreign_objects_fail(suite: str) -> None:
    crypto = Crypto(get_suite(suite), MASTER)
    sealed = crypto.seal(b"patient record")
    for bad in (sealed[:-1], sealed[:SEAL_OVERHEAD - 1], b"", sealed + b"\0"):
        with pytest.raises(IntegrityError):
            crypto.open(bad)
    other = Crypto(get_suite(suite), bytes(MASTER_KEY_LEN))
    with pytest.raises(IntegrityError):
        other.open(sealed)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_nonces_never_repeat_within_a_session(suite: str) -> None:
    crypto = Crypto(get_suite(suite), MASTER)
    sealed = [crypto.seal(b"same plaintext") for _ in range(2000)]
    sessions = {s[1 : 1 + SESSION_ID_LEN] for s in sealed}
    nonces = {s[1 + SESSION_ID_LEN : 1 + SESSION_ID_LEN + NONCE_LEN] for s in sealed}
    assert len(sessions) == 1 and len(nonces) == len(sealed)
    assert len(set(sealed)) == len(sealed)
    # A second writer with the same master key draws its own session (its own key).
    assert Crypto(get_suite(suite), MASTER).seal(b"x")[1 : 1 + SESSION_ID_LEN] not in sessions


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_blob_ids_are_keyed(suite: str) -> None:
    a = Crypto(get_suite(suite), MASTER)
    b = Crypto(get_suite(suite), bytes(MASTER_KEY_LEN))
    assert a.blob_id(b"data") == Crypto(get_suite(suite), MASTER).blob_id(b"data")
    assert a.blob_id(b"data") != b.blob_id(b"data")
    assert len(a.blob_id(b"data")) == 32


def test_master_key_round_trips_through_a_key_file() -> None:
    suite = get_suite("sm4-gcm")
    raw = make_key_file(suite, MASTER, b"pw", KdfParams(n=1024))
    assert open_key_file(raw, "keys/x", b"pw") == (suite, MASTER)
    assert Crypto(suite, MASTER).master_key == MASTER
    with pytest.raises(WrongPassword):
        open_key_file(raw, "keys/x", b"not pw")


# ---- compression ---------------------------------------------------------------------------


@FAST
@given(data=st.one_of(st.binary(max_size=20_000),
                      st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=50),
                                st.integers(1, 2000))),
       level=st.sampled_from([-3, 1, 3, 9]))
def test_compression_round_trip(data: bytes, level: int) -> None:
    compressed = Compressor(CompressionSpec("zstd", level)).compress(data)
    if compressed is None:
        return  # stored as is: incompressible or tiny
    assert len(compressed) < len(data)
    assert decompress(compressed, len(data)) == data
    with pytest.raises(IntegrityError):
        decompress(compressed, len(data) + 1)


def test_compression_none_and_incompressible_are_skipped() -> None:
    assert Compressor(CompressionSpec("none", 0)).compress(b"a" * 10_000) is None
    assert Compressor(CompressionSpec("zstd", 3)).compress(os.urandom(300_000)) is None
    with pytest.raises(IntegrityError):
        decompress(b"not zstd at all", 10)


def test_a_frame_without_its_size_is_read_no_further_than_the_index_says() -> None:
    """A damaged or forged blob whose frame does not record its size and expands a few
    bytes into gigabytes (the fuzzer found a 23-byte one) is refused after reading one
    byte past the expected length, never held in memory whole."""
    import resource

    import zstandard

    packer = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    zeros = bytes(1 << 20)  # built a MiB at a time: the test itself never holds 64 MiB
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()
    assert zstandard.frame_content_size(bomb) == -1 and len(bomb) < 10_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(IntegrityError):
        decompress(bomb, 100)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024  # KiB
    small = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 5000)
    assert decompress(small, 5000) == b"x" * 5000


# ---- packs ---------------------------------------------------------------------------------


blob_lists = st.lists(st.tuples(blob_types, st.binary(max_size=3000)), min_size=1, max_size=12)


@FAST
@given(suite=suites, blobs=blob_lists)
def test_pack_header_round_trip(suite: str, blobs: list[tuple[BlobType, bytes]]) -> None:
    crypto = Crypto(get_suite(suite), MASTER)
    builder = PackBuilder()
    for blob_type, data in blobs:
        builder.add(blob_type, crypto.blob_id(data), crypto.seal(data), len(data) % 7)
    pack = builder.finish(crypto)
    entries = parse_header(crypto, pack, len(pack))
    assert entries == builder.entries
    # The tail alone is enough: sealed header plus its length.
    tail = pack[-(len(entries) * ENTRY.size + SEAL_OVERHEAD + TRAILER.size):]
    assert parse_header(crypto, tail, len(pack)) == entries
    for entry, (blob_type, data) in zip(entries, blobs, strict=True):
        assert entry.type == blob_type
        assert crypto.open(pack[entry.offset : entry.offset + entry.length]) == data
        assert entry.id == crypto.blob_id(data)


@FAST
@given(blobs=blob_lists, where=st.integers(min_value=1), bit=st.integers(0, 7))
def test_damaged_pack_tail_is_rejected(
    blobs: list[tuple[BlobType, bytes]], where: int, bit: int
) -> None:
    crypto = Crypto(get_suite("aes-256-gcm"), MASTER)
    builder = PackBuilder()
    for blob_type, data in blobs:
        builder.add(blob_type, crypto.blob_id(data), crypto.seal(data), 0)
    pack = bytearray(builder.finish(crypto))
    header_len = len(builder.entries) * ENTRY.size + SEAL_OVERHEAD + TRAILER.size
    pack[len(pack) - 1 - where % header_len] ^= 1 << bit
    with pytest.raises(IntegrityError):
        parse_header(crypto, bytes(pack), len(pack))


# ---- index files and the index cache ---------------------------------------------------------


ids32 = st.binary(min_size=32, max_size=32)
packs_strategy = st.dictionaries(
    ids32,
    st.lists(st.tuples(blob_types, ids32, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
             max_size=5),
    max_size=8,
)


def _packs(raw: dict[bytes, list[tuple[BlobType, bytes, int, int]]]
           ) -> list[tuple[bytes, list[PackedBlob]]]:
    out = []
    for pack_id, blobs in raw.items():
        entries, offset = [], 0
        for blob_type, blob_id, length, raw_length in blobs:
            entries.append(PackedBlob(blob_type, blob_id, offset % 2**32, length, raw_length))
            offset += length
        out.append((pack_id, entries))
    return out


@FAST
@given(raw=packs_strategy, superseded=st.lists(ids32, max_size=3))
def test_index_file_round_trip(
    raw: dict[bytes, list[tuple[BlobType, bytes, int, int]]], superseded: list[bytes]
) -> None:
    packs = _packs(raw)
    encoded = index_file.encode(packs, superseded)
    assert list(index_file.iter_packs(encoded)) == packs
    assert index_file.superseded_ids(encoded) == superseded


@FAST
@given(raw=packs_strategy, batch=st.integers(1, 5))
def test_index_cache_streams_every_blob_once(
    tmp_path_factory: pytest.TempPathFactory,
    raw: dict[bytes, list[tuple[BlobType, bytes, int, int]]],
    batch: int,
) -> None:
    cache = IndexCache(tmp_path_factory.mktemp("cache") / "index.sqlite")
    cache.BATCH = batch
    try:
        packs = _packs(raw)
        cache.add_index_file("index/a", packs)
        expected: dict[bytes, tuple[bytes, PackedBlob]] = {}
        for pack_id, blobs in packs:
            for blob in blobs:
                expected.setdefault(blob.id, (pack_id, blob))  # first pack indexed wins
        streamed = [(blob.id, (pack, blob)) for pack, blob in cache.blobs()]
        assert len(streamed) == len(expected)
        assert dict(streamed) == expected
        assert list(cache.iter_pack_ids()) == sorted(raw)
        assert cache.counts() == (len(raw), len(expected))
    finally:
        cache.close()


def test_index_cache_in_memory_lookup(tmp_path: Path) -> None:
    cache = IndexCache(None)
    entry = PackedBlob(BlobType.TREE, b"\1" * 32, 0, 100, 0)
    cache.add_index_file("index/x", [(b"\2" * 32, [entry])])
    assert cache.lookup(entry.id) == (b"\2" * 32, entry)
    assert cache.has(entry.id) and not cache.has(b"\3" * 32)
    assert cache.known_index_files() == {"index/x"}
    cache.close()
