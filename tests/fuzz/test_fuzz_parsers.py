"""Every parser of repository or source bytes, fuzzed for a short budget in `make test`.

Each target (tests/fuzz/fuzz_targets.py) replays its checked-in corpus (valid samples from
the real writers, and every crasher found so far), then gets hypothesis inputs: mutations
of the corpus (flipped bytes, cuts, splices, length fields set to huge values, JSON values
and TOML lines replaced) and raw bytes. Runs are derandomized, so a failure reproduces.
The longer, coverage-guided run is `make fuzz` (tests/fuzz/README.md).
"""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_targets import CORPUS, TARGETS, corpus, run_one
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
"""Examples per target: 0 takes each target's short default below (the suite's ~50 s;
`make fuzz` is the long, coverage-guided run)."""
DEFAULT_EXAMPLES = {"key_file": 40, "pg_base_tar": 30, "xbstream_guard": 30,
                    "plan_config": 75}
JSON_TARGETS = {"tree", "snapshot", "key_file", "repo_config", "lock_file", "hold_record",
                "wal_record", "binlog_record"}
TEXT_TARGETS = {"plan_config", "binlog_info"}

@pytest.fixture(autouse=True)
def _tracing_ends_with_the_test() -> Iterator[None]:
    """The harness traces allocations (run_one); left on, tracemalloc would slow every
    later test of this worker process several times over."""
    was_tracing = tracemalloc.is_tracing()
    yield
    if not was_tracing:
        tracemalloc.stop()


BIG = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF]
"""Values written over length fields: a parser must not believe them."""


def _mutate(seed: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for kind, pos, value, chunk in ops:
        at = pos % (len(data) + 1)
        if kind == 0 and data:  # flip a byte
            data[at % len(data)] ^= 1 << (value % 8)
        elif kind == 1:  # insert bytes
            data[at:at] = chunk
        elif kind == 2:  # delete a range
            del data[at : at + 1 + value % 64]
        elif kind == 3:  # a 4- or 8-byte length field set to a boundary value
            width = 8 if value & 1 else 4
            big = BIG[value % len(BIG)] & ((1 << (8 * width)) - 1)
            data[at : at + width] = big.to_bytes(width, "little")
        elif kind == 4:  # cut
            del data[at:]
        elif kind == 5 and data:  # duplicate a slice
            data[at:at] = data[at : at + 1 + value % 700]
    return bytes(data)


OPS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1 << 16), st.integers(0, 1 << 16),
                         st.binary(max_size=16)), min_size=1, max_size=6)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats() | st.text(max_size=20) | st.sampled_from(["", "zz", "ab" * 32, "2026-13-40"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def _json_mutation(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with one value anywhere in it replaced by another JSON value (or removed)."""
    doc = json.loads(draw(_pick(seeds)))
    path = draw(st.sampled_from(_paths(doc)))
    value = draw(JSON_VALUES)
    if not path:
        return json.dumps(value).encode()
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(doc).encode()


TOML_VALUES = st.sampled_from([
    "0", "-1", "99999999999999999999999", "9223372036854775807", "1e400", "nan", "inf",
    '""', '"x"', '"-1s"', '"99999999999y"', '"1e9999d"', '"every 0s"', '"* * * * * *"',
    '"99 99 99 99 99"', '"every 99999999999999h"', '"Mars/Olympus"', '"../../etc/UTC"',
    "[]", "[1, [2, [3]]]", "{}", "{ a = 1 }", "true", "1979-05-27T07:32:00Z", "07:32:00",
    '"\\u0000"', '"' + "a" * 300 + '"', "'''multi\nline'''",
]) | st.text(max_size=12).map(json.dumps)


@st.composite
def _toml_mutation(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with the value of some `key = value` lines replaced, or lines dropped,
    duplicated or spliced in (TOML is line-shaped enough for this to stay parseable)."""
    lines = draw(_pick(seeds)).decode("utf-8", "replace").splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        action = draw(st.integers(0, 3))
        if not lines:
            lines.append("")
        if action == 0 and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(TOML_VALUES)}"
        elif action == 1 and lines:
            del lines[i]
        elif action == 2:
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))] if lines else "")
        else:
            lines.insert(i, draw(st.sampled_from([
                "[plans.x]", "[[systems.his.sources]]", 'type = "files"', "x = 1",
                "[profiles.p]", 'requirements = [{ id = "a", title = "t", check = "local_rpo" }]',
                '[hospital]\ntier = "p"', "a = " + "[" * 2000 + "]" * 2000,
                "a = " + "{ b = " * 500 + "1" + " }" * 500, "[" + "a." * 300 + "b]"])))
    return "\n".join(lines).encode()


def _pick(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """One of `seeds` (by index: a strategy's repr must not spell out a whole corpus)."""
    return st.integers(0, len(seeds) - 1).map(seeds.__getitem__)


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    seeds = corpus(name)
    options = [st.builds(_mutate, _pick(seeds), OPS), st.binary(max_size=256)]
    if name in JSON_TARGETS:
        valid = [s for s in seeds if _is_json(s)]
        options.insert(0, _json_mutation(valid))
    if name in TEXT_TARGETS:
        options.insert(0, _toml_mutation(seeds))
    return st.one_of(*options)


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


CORPUS_CASES = [(name, path.name) for name in sorted(TARGETS)
                for path in sorted((CORPUS / name).iterdir())]


def test_every_target_has_a_seed_corpus() -> None:
    assert {name for name, _ in CORPUS_CASES} == set(TARGETS)


@pytest.mark.parametrize(("name", "file"), CORPUS_CASES)
def test_corpus_replays(name: str, file: str) -> None:
    """Every checked-in sample, valid or a past crasher, still keeps the contract."""
    run_one(name, (CORPUS / name / file).read_bytes())


def _fuzz_test(name: str) -> Any:
    @settings(max_examples=EXAMPLES or DEFAULT_EXAMPLES.get(name, 100), derandomize=True,
              database=None, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(data=_inputs(name))
    def fuzz(data: bytes) -> None:
        run_one(name, data)

    return fuzz


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz(name: str) -> None:
    """deadline=None: the per-input deadline is the harness's alarm (fuzz_targets.py),
    which interrupts a real hang; a timing deadline on a shared 2-core machine would
    only report load."""
    _fuzz_test(name)()


def test_length_fields_are_not_believed() -> None:
    """A length field claiming 4 GiB, in each binary format, ends in one clear error."""
    huge = struct.pack("<I", 0xFFFF_FFFF)
    for name in ("pack_sealed", "index_plain", "xbstream_tap", "xbstream_guard", "binlog"):
        for seed in corpus(name):
            for at in range(0, min(len(seed), 64), 4):
                run_one(name, seed[:at] + huge + seed[at + 4 :])


def test_the_sandbox_sees_a_write_outside_the_target() -> None:
    """The harness's own check can fail: a naive extractor that follows the hostile
    seed's tablespace link is caught writing beside the target."""
    import io
    import tarfile

    from fuzz_targets import Violation, _sandbox

    hostile = (CORPUS / "pg_base_tar" / "seed-hostile-links").read_bytes()
    with pytest.raises(Violation), _sandbox() as target_dir, \
            tarfile.open(fileobj=io.BytesIO(hostile)) as tar:
        for member in tar:
            path = target_dir / member.name
            if member.isdir():
                path.mkdir()
            elif member.issym():
                path.symlink_to(member.linkname)
            elif member.isfile() and member.name.startswith("pg_tblspc/"):
                source = tar.extractfile(member)
                assert source is not None
                path.write_bytes(source.read())  # through the link
