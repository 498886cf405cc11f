"""One suite every backend must pass (restic internal/backend/test/suite.go): the engine
relies on exactly these behaviours and nothing backend-specific."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_cases import BackendCase, MakeCase

from medark.errors import AlreadyExists, BackendError, ObjectNotFound
from medark.storage.base import Backend, BackendProperties, ObjectInfo


def _listing(backend: Backend, prefix: str = "") -> dict[str, int]:
    infos = list(backend.list(prefix))
    names = [i.name for i in infos]
    assert len(names) == len(set(names)), f"duplicates in listing: {names}"
    assert all(isinstance(i, ObjectInfo) for i in infos)
    return {i.name: i.size for i in infos}


def test_is_a_backend(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    props = backend.properties()
    assert isinstance(props, BackendProperties)
    assert isinstance(props.location, str) and props.location


@pytest.mark.parametrize(
    "data",
    [b"", b"x", b"hello world", bytes(range(256)) * 17, os.urandom(1024 * 1024 + 7)],
    ids=["empty", "one", "short", "binary", "1MiB+7"],
)
def test_save_load_round_trip(backend: Backend, data: bytes) -> None:
    backend.save("data/ab/object", data)
    loaded = backend.load("data/ab/object")
    assert type(loaded) is bytes
    assert loaded == data
    assert backend.stat("data/ab/object") == ObjectInfo("data/ab/object", len(data))


@pytest.mark.parametrize(
    "name",
    ["config", "keys/k1", "data/00/" + "0f" * 32, "a-b_c.d", "x.y/z~1", "ünï/çødé"],
)
def test_unusual_but_valid_names(backend: Backend, name: str) -> None:
    backend.save(name, b"payload")
    assert backend.load(name) == b"payload"
    assert _listing(backend) == {name: 7}


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, None, b"0123456789"),
        (0, 10, b"0123456789"),
        (3, None, b"3456789"),
        (3, 4, b"3456"),
        (9, 1, b"9"),
        (0, 0, b""),
        (5, 0, b""),
        (10, None, b""),
        (10, 0, b""),
    ],
)
def test_load_range(backend: Backend, offset: int, length: int | None, expected: bytes) -> None:
    backend.save("obj", b"0123456789")
    assert backend.load("obj", offset, length) == expected
    assert backend.load("obj", offset=offset, length=length) == expected


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 11), (5, 6), (10, 1), (11, None), (11, 0), (100, 5), (-1, None), (0, -1)],
)
def test_short_or_invalid_read_raises(backend: Backend, offset: int, length: int | None) -> None:
    backend.save("obj", b"0123456789")
    with pytest.raises(BackendError) as err:
        backend.load("obj", offset, length)
    assert not isinstance(err.value, AlreadyExists)
    assert not err.value.transient  # reading again cannot make an object longer


def test_stat(backend: Backend) -> None:
    backend.save("snapshots/s1", b"abc")
    backend.save("data/ab/x", b"")
    assert backend.stat("snapshots/s1") == ObjectInfo("snapshots/s1", 3)
    assert backend.stat("data/ab/x") == ObjectInfo("data/ab/x", 0)


def test_directories_are_not_objects(backend: Backend) -> None:
    backend.save("data/ab/x", b"abc")
    for name in ("data", "data/ab"):
        with pytest.raises(ObjectNotFound):
            backend.stat(name)
        with pytest.raises(ObjectNotFound):
            backend.load(name)
        backend.remove(name)  # not an object, so nothing to remove
    assert backend.load("data/ab/x") == b"abc"


def test_paths_through_an_object_are_not_found(backend: Backend) -> None:
    backend.save("config", b"c")
    with pytest.raises(ObjectNotFound):
        backend.load("config/inside")
    with pytest.raises(ObjectNotFound):
        backend.stat("config/inside")
    backend.remove("config/inside")
    assert backend.load("config") == b"c"


OBJECTS = {
    "config": b"cfg",
    "keys/k1": b"key-one",
    "data/ab/ab01": b"1",
    "data/ab/ab02": b"22",
    "data/cd/cd01": b"333",
    "database": b"not under data/",
    "index/i1": b"",
    "snapshots/s1": b"snap",
}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", set(OBJECTS)),
        ("data/", {"data/ab/ab01", "data/ab/ab02", "data/cd/cd01"}),
        ("data/ab/", {"data/ab/ab01", "data/ab/ab02"}),
        ("data/a", {"data/ab/ab01", "data/ab/ab02"}),
        ("data/ab/ab0", {"data/ab/ab01", "data/ab/ab02"}),
        ("data/ab/ab01", {"data/ab/ab01"}),
        ("data", {"data/ab/ab01", "data/ab/ab02", "data/cd/cd01", "database"}),
        ("keys/", {"keys/k1"}),
        ("index/", {"index/i1"}),
        ("locks/", set()),
        ("nothing/at/all/", set()),
        ("zzz", set()),
    ],
)
def test_list_by_prefix(backend: Backend, prefix: str, expected: set[str]) -> None:
    for name, data in OBJECTS.items():
        backend.save(name, data)
    listing = _listing(backend, prefix)
    assert set(listing) == expected
    assert all(listing[n] == len(OBJECTS[n]) for n in listing)


def test_list_empty_backend(backend: Backend) -> None:
    assert _listing(backend) == {}
    assert _listing(backend, "data/") == {}


def test_interrupted_write_is_invisible(case: BackendCase) -> None:
    backend = case.backend
    backend.save("data/ab/done", b"complete")
    case.leave_partial_write("data/ab/crashed", b"partial object")
    case.leave_partial_write("snapshots/crashed", b"partial snapshot")
    assert _listing(backend) == {"data/ab/done": 8}
    assert all(not part.startswith(".") for n in _listing(backend) for part in n.split("/"))
    with pytest.raises(ObjectNotFound):
        backend.stat("data/ab/crashed")
    with pytest.raises(ObjectNotFound):
        backend.load("snapshots/crashed")
    # Leftovers of a crash never block writing the object again.
    backend.save("data/ab/crashed", b"partial object")
    assert backend.load("data/ab/crashed") == b"partial object"


def test_save_existing_raises_and_keeps_old(backend: Backend) -> None:
    backend.save("keys/k1", b"original")
    with pytest.raises(AlreadyExists):
        backend.save("keys/k1", b"replacement")
    with pytest.raises(AlreadyExists):
        backend.save("keys/k1", b"original")  # even with equal content
    assert backend.load("keys/k1") == b"original"
    assert _listing(backend) == {"keys/k1": 8}


def _spooled(backend: Backend, data: bytes, tmp_dir: str) -> str:
    """A file written where the backend wants spooled files (or the test's temp dir)."""
    fd, path = tempfile.mkstemp(prefix=".pack-", dir=backend.spool_dir() or tmp_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def test_save_file_round_trip_and_keeps_the_source(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 1)
    path = _spooled(backend, data, str(tmp_path))
    backend.save_file("data/cd/packed", path)
    assert backend.load("data/cd/packed") == data
    assert backend.load("data/cd/packed", 1024 * 1024, 5) == data[1024 * 1024 : 1024 * 1024 + 5]
    assert Path(path).read_bytes() == data  # the caller's to remove
    os.unlink(path)
    assert backend.load("data/cd/packed") == data  # the stored object does not depend on it
    assert _listing(backend) == {"data/cd/packed": len(data)}  # the spool is not listed


def test_save_file_existing_raises_and_keeps_old(backend: Backend, tmp_path: Path) -> None:
    backend.save("data/cd/packed", b"original")
    path = _spooled(backend, b"replacement", str(tmp_path))
    with pytest.raises(AlreadyExists):
        backend.save_file("data/cd/packed", path)
    os.unlink(path)
    assert backend.load("data/cd/packed") == b"original"


def test_concurrent_saves_of_one_name_have_one_winner(backend: Backend) -> None:
    results: dict[int, str] = {}
    start = threading.Barrier(8)

    def save(i: int) -> None:
        start.wait()
        try:
            backend.save("locks/l1", f"writer {i}".encode())
            results[i] = "saved"
        except AlreadyExists:
            results[i] = "exists"

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r == "saved"]
    assert len(results) == 8 and len(winners) == 1
    assert backend.load("locks/l1") == f"writer {winners[0]}".encode()
    assert _listing(backend) == {"locks/l1": len(f"writer {winners[0]}")}


def test_remove_is_idempotent(backend: Backend) -> None:
    backend.save("locks/l1", b"lock")
    backend.save("locks/l2", b"other")
    backend.remove("locks/l1")
    with pytest.raises(ObjectNotFound):
        backend.load("locks/l1")
    with pytest.raises(ObjectNotFound):
        backend.stat("locks/l1")
    backend.remove("locks/l1")
    backend.remove("never/existed")
    assert _listing(backend) == {"locks/l2": 5}
    # A removed name can be written again (e.g. a lock taken after it was released).
    backend.save("locks/l1", b"new")
    assert backend.load("locks/l1") == b"new"


def test_missing_objects(backend: Backend) -> None:
    for call in (
        lambda: backend.load("data/ab/missing"),
        lambda: backend.load("data/ab/missing", 0, 1),
        lambda: backend.stat("data/ab/missing"),
        lambda: backend.load("missing"),
    ):
        with pytest.raises(ObjectNotFound):
            call()


INVALID_NAMES = [
    "",
    "/absolute",
    "/",
    "../escape",
    "data/../../escape",
    "a/../b",
    "a//b",
    "trailing/",
    ".",
    "a/./b",
    ".hidden",
    "data/ab/.tmp-partial",
    "nul\x00byte",
    "new\nline",
    "x" * 256,
    "/".join(["abcdefghij"] * 100),
]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
@pytest.mark.parametrize("op", ["save", "load", "stat", "remove"])
def test_invalid_names_rejected(backend: Backend, name: str, op: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "save": lambda: backend.save(name, b"x"),
        "load": lambda: backend.load(name),
        "stat": lambda: backend.stat(name),
        "remove": lambda: backend.remove(name),
    }
    with pytest.raises(BackendError) as err:
        calls[op]()
    assert not err.value.transient
    assert not isinstance(err.value, AlreadyExists)
    assert _listing(backend) == {}


@pytest.mark.parametrize("prefix", ["/", "../", "a/../", "a//", ".", "data/.tmp", "x\x00"])
def test_invalid_list_prefix_rejected(backend: Backend, prefix: str) -> None:
    with pytest.raises(BackendError):
        list(backend.list(prefix))


def test_exists_and_create(make_case: MakeCase) -> None:
    backend = make_case().backend
    assert not backend.exists()
    backend.create()
    assert backend.exists()
    backend.create()  # creating an existing location is fine
    assert backend.exists()
    assert _listing(backend) == {}
    backend.save("config", b"c")
    assert backend.exists()
    backend.close()


_COMPONENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=24)
_NAME = st.lists(_COMPONENT.filter(lambda c: not c.startswith(".")), min_size=1, max_size=4).map(
    "/".join
)


def _no_file_is_a_directory(objects: dict[str, bytes]) -> bool:
    # 'a' and 'a/b' cannot both exist on a filesystem; the engine never uses such names.
    return not any(other.startswith(name + "/") for name in objects for other in objects)


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    objects=st.dictionaries(_NAME, st.binary(max_size=2048), min_size=1, max_size=5).filter(
        _no_file_is_a_directory
    ),
    data=st.data(),
)
def test_round_trip_property(
    make_case: MakeCase, objects: dict[str, bytes], data: st.DataObject
) -> None:
    backend = make_case().backend
    backend.create()
    for name, content in objects.items():
        backend.save(name, content)
    assert _listing(backend) == {n: len(c) for n, c in objects.items()}
    for name, content in objects.items():
        assert backend.load(name) == content
        assert backend.stat(name).size == len(content)
        offset = data.draw(st.integers(0, len(content)), label="offset")
        length = data.draw(st.integers(0, len(content) - offset), label="length")
        assert backend.load(name, offset, length) == content[offset : offset + length]
    prefix = data.draw(st.sampled_from(sorted(objects)), label="name").split("/")[0] + "/"
    expected = {n for n in objects if n.startswith(prefix)}
    assert set(_listing(backend, prefix)) == expected
    backend.close()
