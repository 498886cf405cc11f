"""Retry, fault injection and read-only wrappers. Sleeps are injected, so nothing waits."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from medark.errors import AlreadyExists, BackendError, NoSpace, ObjectNotFound
from medark.storage.base import Backend, BackendProperties, ObjectInfo
from medark.storage.local import LocalBackend
from medark.storage.mem import MemoryBackend
from medark.storage.wrappers import FaultyBackend, ReadOnlyBackend, RetryBackend


class Sleeps:
    """Records the pauses a wrapper asks for instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Scripted(MemoryBackend):
    """A memory backend whose next calls raise the given errors, in order."""

    def __init__(self, *errors: BaseException) -> None:
        super().__init__()
        self.errors = list(errors)
        self.attempts = 0

    def _next(self) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)

    def save(self, name: str, data: bytes) -> None:
        self._next()
        super().save(name, data)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._next()
        return super().load(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        self._next()
        return super().stat(name)

    def remove(self, name: str) -> None:
        self._next()
        super().remove(name)

    def exists(self) -> bool:
        self._next()
        return super().exists()

    def create(self) -> None:
        self._next()
        super().create()


def transient(msg: str = "connection reset") -> BackendError:
    return BackendError(msg, transient=True)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mem() -> MemoryBackend:
    backend = MemoryBackend()
    backend.create()
    return backend


def test_wrappers_are_backends(mem: MemoryBackend) -> None:
    for wrapper in (RetryBackend(mem), FaultyBackend(mem), ReadOnlyBackend(mem)):
        assert isinstance(wrapper, Backend)
        assert wrapper.properties() == BackendProperties(location="mem:")
        wrapper.close()


# --- RetryBackend -------------------------------------------------------------------------


def test_retry_recovers_from_transient_faults(mem: MemoryBackend, sleeps: Sleeps) -> None:
    faulty = FaultyBackend(mem, fail_save_every=2, fail_load_every=3)
    backend = RetryBackend(faulty, sleep=sleeps)
    objects = {f"data/ab/{i:04x}": bytes([i]) * i for i in range(20)}
    for name, data in objects.items():
        backend.save(name, data)
    for name, data in objects.items():
        assert backend.load(name) == data
    assert mem.objects == objects
    assert faulty.injected["save"] > 0 and faulty.injected["load"] > 0
    assert len(sleeps.calls) == faulty.injected["save"] + faulty.injected["load"]


@pytest.mark.parametrize(
    "op",
    ["save", "load", "stat", "remove", "exists", "create"],
)
def test_retry_covers_every_operation(op: str, sleeps: Sleeps) -> None:
    inner = Scripted()
    inner.objects["obj"] = b"payload"
    inner.errors = [transient(), transient()]
    backend = RetryBackend(inner, sleep=sleeps)
    calls = {
        "save": lambda: backend.save("new", b"x"),
        "load": lambda: backend.load("obj", 1, 3),
        "stat": lambda: backend.stat("obj"),
        "remove": lambda: backend.remove("obj"),
        "exists": backend.exists,
        "create": backend.create,
    }
    calls[op]()
    assert inner.attempts == 3
    assert len(sleeps.calls) == 2


def test_retry_returns_the_result() -> None:
    inner = Scripted(transient())
    inner.objects["obj"] = b"0123456789"
    backend = RetryBackend(inner, sleep=lambda _s: None)
    assert backend.load("obj", 2, 3) == b"234"
    assert backend.stat("obj") == ObjectInfo("obj", 10)


def test_retry_gives_up_after_attempts(sleeps: Sleeps) -> None:
    inner = Scripted(*[transient(f"timeout {i}") for i in range(10)])
    backend = RetryBackend(inner, attempts=3, sleep=sleeps)
    with pytest.raises(BackendError, match="timeout 2") as err:
        backend.save("obj", b"x")
    assert err.value.transient
    assert "gave up after 3 attempts" in getattr(err.value, "__notes__", [])
    assert inner.attempts == 3
    assert len(sleeps.calls) == 2
    assert "obj" not in inner.objects


def test_retry_gives_up_on_injected_persistent_faults(mem: MemoryBackend, sleeps: Sleeps) -> None:
    faulty = FaultyBackend(mem, fail_save_every=1)
    backend = RetryBackend(faulty, attempts=4, sleep=sleeps)
    with pytest.raises(BackendError) as err:
        backend.save("obj", b"x")
    assert err.value.transient
    assert faulty.calls["save"] == 4
    assert len(sleeps.calls) == 3
    assert mem.objects == {}


@pytest.mark.parametrize(
    "error",
    [
        BackendError("permission denied"),
        NoSpace("no space left on device"),
        AlreadyExists("obj already exists"),
        AlreadyExists("obj already exists", transient=True),  # never worth retrying
        ObjectNotFound("obj not found"),
        ValueError("a bug, not a storage fault"),
    ],
    ids=lambda e: f"{type(e).__name__}-{getattr(e, 'transient', '')}",
)
def test_retry_passes_other_errors_through_at_once(error: Exception, sleeps: Sleeps) -> None:
    inner = Scripted(error)
    backend = RetryBackend(inner, sleep=sleeps)
    with pytest.raises(type(error)) as raised:
        backend.save("obj", b"x")
    assert raised.value is error
    assert inner.attempts == 1
    assert sleeps.calls == []


def test_retry_of_permanent_injected_fault(mem: MemoryBackend, sleeps: Sleeps) -> None:
    backend = RetryBackend(FaultyBackend(mem, fail_load_every=1, transient=False), sleep=sleeps)
    mem.save("obj", b"x")
    with pytest.raises(BackendError) as err:
        backend.load("obj")
    assert not err.value.transient
    assert sleeps.calls == []


def test_retry_of_missing_object_is_not_found(mem: MemoryBackend, sleeps: Sleeps) -> None:
    backend = RetryBackend(mem, sleep=sleeps)
    with pytest.raises(ObjectNotFound):
        backend.load("missing")
    assert sleeps.calls == []


def test_save_that_landed_then_failed_surfaces_as_already_exists(
    mem: MemoryBackend, sleeps: Sleeps
) -> None:
    # The first attempt stores the object but reports a transient error (a dropped
    # connection after the server committed); the retry then finds the object. For
    # content-addressed names the caller treats AlreadyExists as success.
    faulty = FaultyBackend(mem, fail_save_every=1, save_lands=True)
    backend = RetryBackend(faulty, sleep=sleeps)
    with pytest.raises(AlreadyExists):
        backend.save("data/ab/abcd", b"content")
    assert mem.objects == {"data/ab/abcd": b"content"}
    assert len(sleeps.calls) == 1


def test_retry_backoff_grows_with_jitter_and_is_capped(sleeps: Sleeps) -> None:
    inner = Scripted(*[transient() for _ in range(20)])
    backend = RetryBackend(
        inner, attempts=8, base_delay=0.2, max_delay=1.5, sleep=sleeps, rng=random.Random(7)
    )
    with pytest.raises(BackendError):
        backend.stat("obj")
    assert len(sleeps.calls) == 7
    ceilings = [0.2, 0.4, 0.8, 1.5, 1.5, 1.5, 1.5]
    for pause, ceiling in zip(sleeps.calls, ceilings, strict=True):
        assert ceiling / 2 <= pause <= ceiling
    assert len(set(sleeps.calls)) == len(sleeps.calls)  # jittered, not lockstep


def test_retry_jitter_differs_between_clients() -> None:
    a = RetryBackend(MemoryBackend(), rng=random.Random(1))
    b = RetryBackend(MemoryBackend(), rng=random.Random(2))
    assert [a.delay(n) for n in range(1, 5)] != [b.delay(n) for n in range(1, 5)]


def test_retry_reports_each_retry(sleeps: Sleeps) -> None:
    seen: list[tuple[str, int, float]] = []
    inner = Scripted(transient(), transient())
    inner.objects["obj"] = b"x"
    backend = RetryBackend(
        inner, sleep=sleeps, on_retry=lambda what, n, _exc, pause: seen.append((what, n, pause))
    )
    backend.load("obj")
    assert [(w, n) for w, n, _ in seen] == [("load obj", 1), ("load obj", 2)]
    assert [p for _, _, p in seen] == sleeps.calls


def test_retried_listing_yields_each_object_once(mem: MemoryBackend, sleeps: Sleeps) -> None:
    names = {f"data/{i:02x}/{i:08x}" for i in range(40)}
    for name in names:
        mem.save(name, b"x")
    faulty = FaultyBackend(mem, fail_list_every=1)

    def disarm(_what: str, _n: int, _exc: BackendError, _pause: float) -> None:
        faulty.fail_list_every = 0

    backend = RetryBackend(faulty, sleep=sleeps, on_retry=disarm)
    listed = [info.name for info in backend.list("data/")]
    assert faulty.injected["list"] == 1
    assert len(listed) == len(names)
    assert set(listed) == names
    assert len(sleeps.calls) == 1


def test_retried_listing_gives_up(mem: MemoryBackend, sleeps: Sleeps) -> None:
    mem.save("a", b"x")
    mem.save("b", b"x")
    backend = RetryBackend(FaultyBackend(mem, fail_list_every=1), attempts=3, sleep=sleeps)
    listed: list[str] = []
    with pytest.raises(BackendError):
        listed.extend(info.name for info in backend.list(""))
    assert listed == ["a"]  # what came before the failure, once
    assert len(sleeps.calls) == 2


def test_retry_stops_at_the_deadline(sleeps: Sleeps) -> None:
    """No pause that would end past the deadline: the clock is the sleeps taken plus two
    seconds per attempt (a slow store), and the call stops long before its 20 attempts."""
    inner = Scripted(*[transient() for _ in range(30)])

    def now() -> float:
        return sum(sleeps.calls) + 2.0 * inner.attempts

    backend = RetryBackend(inner, attempts=20, base_delay=1, max_delay=4, sleep=sleeps,
                           deadline=15, monotonic=now, rng=random.Random(3))
    with pytest.raises(BackendError) as caught:
        backend.stat("obj")
    assert inner.attempts < 20
    assert sum(sleeps.calls) + 2.0 * (inner.attempts - 1) <= 15  # the last one's start
    assert "deadline" in " ".join(caught.value.__notes__)


def test_retry_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        RetryBackend(MemoryBackend(), deadline=-1)
    with pytest.raises(ValueError):
        RetryBackend(MemoryBackend(), attempts=0)
    with pytest.raises(ValueError):
        RetryBackend(MemoryBackend(), base_delay=-1)


# --- FaultyBackend ------------------------------------------------------------------------


def test_faulty_fails_every_nth_save_before_storing(mem: MemoryBackend) -> None:
    faulty = FaultyBackend(mem, fail_save_every=3)
    outcomes: list[str] = []
    for i in range(7):
        try:
            faulty.save(f"o{i}", b"x")
            outcomes.append("ok")
        except BackendError as exc:
            assert exc.transient
            outcomes.append("fail")
    assert outcomes == ["ok", "ok", "fail", "ok", "ok", "fail", "ok"]
    assert sorted(mem.objects) == ["o0", "o1", "o3", "o4", "o6"]
    assert faulty.calls["save"] == 7 and faulty.injected["save"] == 2


def test_faulty_permanent_errors(mem: MemoryBackend) -> None:
    faulty = FaultyBackend(mem, fail_save_every=1, transient=False)
    with pytest.raises(BackendError) as err:
        faulty.save("o", b"x")
    assert not err.value.transient


def test_faulty_fails_every_nth_load(mem: MemoryBackend) -> None:
    mem.save("obj", b"payload")
    faulty = FaultyBackend(mem, fail_load_every=2)
    assert faulty.load("obj") == b"payload"
    with pytest.raises(BackendError, match="injected"):
        faulty.load("obj")
    assert faulty.load("obj", 3, 2) == b"lo"


def test_faulty_crash_mid_write_leaves_nothing_by_default(mem: MemoryBackend) -> None:
    faulty = FaultyBackend(mem, truncate_save_after=4)
    faulty.save("small", b"1234")  # not longer than the cut: written in full
    with pytest.raises(BackendError, match="crashed after 4 of 10 bytes"):
        faulty.save("big", b"0123456789")
    with pytest.raises(ObjectNotFound):
        mem.stat("big")
    assert mem.objects == {"small": b"1234"}
    assert faulty.injected["truncate"] == 1


def test_faulty_crash_mid_write_on_local_leaves_no_visible_object(tmp_path: Path) -> None:
    local = LocalBackend(tmp_path / "repo")
    local.create()
    faulty = FaultyBackend(local, truncate_save_after=2)
    with pytest.raises(BackendError):
        faulty.save("data/ab/x", b"abcdef")
    assert list(local.list("")) == []
    faulty.truncate_save_after = None
    faulty.save("data/ab/x", b"abcdef")  # the next run writes the object normally
    assert local.load("data/ab/x") == b"abcdef"


def test_faulty_can_store_truncated_objects(mem: MemoryBackend) -> None:
    faulty = FaultyBackend(mem, truncate_save_after=4, keep_truncated=True)
    with pytest.raises(BackendError):
        faulty.save("big", b"0123456789")
    assert mem.objects == {"big": b"0123"}


def test_truncated_object_behind_retry_looks_saved(mem: MemoryBackend) -> None:
    # Why check must verify content: a non-atomic backend plus a retry turns a crash into a
    # short object and an AlreadyExists that the writer takes for success.
    faulty = FaultyBackend(mem, truncate_save_after=4, keep_truncated=True)
    backend = RetryBackend(faulty, sleep=lambda _s: None)
    with pytest.raises(AlreadyExists):
        backend.save("data/ab/abcd", b"0123456789")
    assert mem.objects == {"data/ab/abcd": b"0123"}


def test_faulty_save_lands_then_fails(mem: MemoryBackend) -> None:
    faulty = FaultyBackend(mem, fail_save_every=2, save_lands=True)
    faulty.save("a", b"1")
    with pytest.raises(BackendError, match="was stored"):
        faulty.save("b", b"2")
    assert mem.objects == {"a": b"1", "b": b"2"}


def test_faulty_flips_exactly_one_bit(mem: MemoryBackend) -> None:
    data = bytes(range(256)) * 4
    mem.save("obj", data)
    mem.save("empty", b"")
    faulty = FaultyBackend(mem, corrupt_load=True, seed=3)
    for _ in range(20):
        loaded = faulty.load("obj")
        assert len(loaded) == len(data)
        diff = sum(bin(a ^ b).count("1") for a, b in zip(loaded, data, strict=True))
        assert diff == 1
    part = faulty.load("obj", 100, 50)
    assert sum(bin(a ^ b).count("1") for a, b in zip(part, data[100:150], strict=True)) == 1
    assert faulty.load("empty") == b""
    assert mem.load("obj") == data  # the stored object is untouched
    assert faulty.injected["corrupt"] == 21


def test_faulty_corruption_is_reproducible(mem: MemoryBackend) -> None:
    mem.save("obj", bytes(1000))
    first = [FaultyBackend(mem, corrupt_load=True, seed=9).load("obj") for _ in range(2)]
    assert first[0] == first[1]


def test_faulty_slow_reads(mem: MemoryBackend, sleeps: Sleeps) -> None:
    mem.save("obj", b"x")
    faulty = FaultyBackend(mem, delay=0.25, sleep=sleeps)
    faulty.load("obj")
    faulty.load("obj", 0, 1)
    faulty.save("other", b"y")  # writes are not slowed
    assert sleeps.calls == [0.25, 0.25]


def test_faulty_remove_and_list(mem: MemoryBackend) -> None:
    for name in ("a", "b", "c", "d"):
        mem.save(name, b"x")
    faulty = FaultyBackend(mem, fail_remove_every=1, fail_list_every=2)
    with pytest.raises(BackendError):
        faulty.remove("a")
    assert "a" in mem.objects
    assert [i.name for i in faulty.list("")] == ["a", "b", "c", "d"]
    got: list[str] = []
    with pytest.raises(BackendError):
        got.extend(i.name for i in faulty.list(""))
    assert got == ["a", "b"]  # cut off half-way


def test_faulty_passes_everything_through_when_disarmed(mem: MemoryBackend) -> None:
    faulty = FaultyBackend(mem)
    faulty.create()
    assert faulty.exists()
    faulty.save("obj", b"data")
    assert faulty.load("obj") == b"data"
    assert faulty.stat("obj") == ObjectInfo("obj", 4)
    assert [i.name for i in faulty.list("")] == ["obj"]
    faulty.remove("obj")
    assert mem.objects == {}


def test_faulty_counts_are_exact_across_threads(mem: MemoryBackend) -> None:
    faulty = FaultyBackend(mem, fail_save_every=4)
    failures: list[str] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(50):
            try:
                faulty.save(f"t{t}/o{i}", b"x")
            except BackendError:
                with lock:
                    failures.append(f"t{t}/o{i}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert faulty.calls["save"] == 400
    assert len(failures) == 100 == faulty.injected["save"]
    assert len(mem.objects) == 300


# --- ReadOnlyBackend ----------------------------------------------------------------------


def test_read_only_refuses_writes(mem: MemoryBackend, sleeps: Sleeps) -> None:
    mem.save("config", b"cfg")
    backend = RetryBackend(ReadOnlyBackend(mem), sleep=sleeps)
    calls: list[Callable[[], object]] = [
        lambda: backend.save("new", b"x"),
        lambda: backend.save("config", b"x"),
        lambda: backend.remove("config"),
        backend.create,
    ]
    for call in calls:
        with pytest.raises(BackendError, match="read-only") as err:
            call()
        assert not err.value.transient
        assert not isinstance(err.value, AlreadyExists)
    assert mem.objects == {"config": b"cfg"}
    assert sleeps.calls == []  # a refusal is permanent


def test_read_only_passes_reads_through(mem: MemoryBackend) -> None:
    mem.save("data/ab/x", b"0123")
    backend = ReadOnlyBackend(mem)
    assert backend.exists()
    assert backend.load("data/ab/x", 1, 2) == b"12"
    assert backend.stat("data/ab/x") == ObjectInfo("data/ab/x", 4)
    assert [i.name for i in backend.list("data/")] == ["data/ab/x"]
    with pytest.raises(ObjectNotFound):
        backend.load("missing")


def test_wrappers_stack(mem: MemoryBackend, sleeps: Sleeps) -> None:
    stack: Backend = ReadOnlyBackend(
        RetryBackend(FaultyBackend(mem, fail_load_every=2), sleep=sleeps)
    )
    mem.save("obj", b"x")
    assert [stack.load("obj") for _ in range(3)] == [b"x"] * 3  # calls 2 and 4 fail
    assert len(sleeps.calls) == 2
    with pytest.raises(BackendError, match="read-only"):
        stack.save("new", b"x")
