"""Group commit of audit appends (issue 16), on SQLite and the running PostgreSQL: many
threads of one process and several processes of many threads append to one catalog;
the trail verifies, numbers run 1..N without a gap, and every append that returned is
in the trail under the number it returned. The group commit itself: a batch is written
once, its callers return only after that write, a failed write fails exactly its own
callers and the next batch still goes through."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from catalog_urls import KINDS, PG_ADMIN, catalog_urls

from medark.catalog import audit_trail
from medark.catalog.audit_append import GroupCommit
from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.audit_verify import verify
from medark.catalog.store import Catalog
from medark.errors import CatalogError


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    yield from catalog_urls(request.param, tmp_path / "catalog.sqlite", "medark_audit_gc")


def _check_trail(url: str, key_file: Path, returned: dict[int, str]) -> None:
    """Gapless, verified, and each returned number holds the record its caller made."""
    catalog = Catalog(url)
    before, rows, after = audit_trail.snapshot(catalog)
    catalog.close()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    report = verify(before, rows, after, [bytes.fromhex(key_file.read_text().strip())])
    assert report.intact, [f.line() for f in report.findings[:5]]
    by_seq = {r.seq: r.target for r in rows}
    missing = {s: t for s, t in returned.items() if by_seq.get(s) != t}
    assert not missing, f"appends that returned but are not in the trail: {missing}"


def test_many_threads_of_one_process(url: str, tmp_path: Path) -> None:
    catalog = Catalog(url)

    def worker(n: int) -> list[tuple[int, str]]:
        out = []
        for i in range(40):
            target = f"file:{n}:{i}"
            out.append((append(catalog, AuditEntry(f"t{n}", "10.0.0.3", "browse",
                                                   target)), target))
        return out

    with ThreadPoolExecutor(24) as pool:
        returned = dict(pair for pairs in pool.map(worker, range(24)) for pair in pairs)
    catalog.close()
    assert sorted(returned) == list(range(1, 24 * 40 + 1))
    _check_trail(url, tmp_path / "audit.key", returned)


APPENDER = """\
import json, sys
from concurrent.futures import ThreadPoolExecutor
from medark.catalog.audit_trail import AuditEntry, append
from medark.catalog.store import Catalog
catalog = Catalog(sys.argv[1])
name, threads, each = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # all start together

def work(n):
    out = []
    for i in range(each):
        target = f"{name}:{n}:{i}"
        out.append([append(catalog, AuditEntry(name, "10.0.0.1", "browse", target)), target])
    return out

with ThreadPoolExecutor(threads) as pool:
    print(json.dumps([p for ps in pool.map(work, range(threads)) for p in ps]), flush=True)
"""


def test_several_processes_of_many_threads(url: str, tmp_path: Path) -> None:
    """Four server processes of eight request threads each: one chain, no gap, every
    returned append present, the processes interleaved."""
    Catalog(url).close()  # migrated (and the key made) before the race
    catalog = Catalog(url)
    append(catalog, AuditEntry("setup", "cli", "setup"))
    catalog.close()
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, url, f"p{n}", "8", "25"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for n in range(4)]
    for writer in writers:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.close()
    outputs = []
    for writer in writers:
        assert writer.stdout is not None
        with writer.stdout:
            outputs.append(writer.stdout.read())
    assert [w.wait(timeout=300) for w in writers] == [0, 0, 0, 0]
    returned = {int(seq): target for out in outputs for seq, target in json.loads(out)}
    assert sorted(returned) == list(range(2, 2 + 4 * 8 * 25))
    _check_trail(url, tmp_path / "audit.key", returned)
    catalog = Catalog(url)
    actors = [r.actor for r in audit_trail.snapshot(catalog)[1]]
    catalog.close()
    assert sum(a != b for a, b in itertools.pairwise(actors)) > 3, \
        "the processes never interleaved: the test raced nothing"


def test_a_lost_connection_fails_only_what_it_must(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: the server ends the kept connection between two appends (a restart);
    the next append opens a new one and succeeds, numbering on without a gap."""
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    for url in catalog_urls("postgresql", tmp_path / "unused.sqlite", "medark_audit_lost"):
        catalog = Catalog(url)
        returned = {append(catalog, AuditEntry("a", "cli", "x", "t:1")): "t:1"}
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            # the function in the select list: it runs only for the rows WHERE kept
            ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = %s AND pid <> pg_backend_pid()",
                                  (database,)).fetchall()
        assert ended and all(row[0] for row in ended)
        returned[append(catalog, AuditEntry("a", "cli", "x", "t:2"))] = "t:2"
        assert sorted(returned) == [1, 2]
        catalog.close()
        _check_trail(url, tmp_path / "audit.key", returned)


def test_a_failing_commit_is_reported_to_its_callers(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The head row locked by someone else past the catalog's lock timeout: the append
    raises a CatalogError (nothing was written), and appends after it number on."""
    monkeypatch.setenv("MEDARK_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    for url in catalog_urls("postgresql", tmp_path / "unused.sqlite", "medark_audit_fail"):
        catalog = Catalog(url)
        append(catalog, AuditEntry("a", "cli", "x", "t:1"))
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" SET lock_timeout = 200')
        catalog.close()
        catalog = Catalog(url)  # new sessions get the timeout
        with psycopg.connect(PG_ADMIN.replace("dbname=postgres", f"dbname={database}")
                             ) as holder:
            holder.execute("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
            with pytest.raises(CatalogError, match=r"audit append failed: .*lock timeout"):
                append(catalog, AuditEntry("b", "cli", "x", "t:lost"))
            holder.rollback()
        seq = append(catalog, AuditEntry("c", "cli", "x", "t:2"))
        catalog.close()
        assert seq == 2
        _check_trail(url, tmp_path / "audit.key", {1: "t:1", 2: "t:2"})


# ------------------------------------------------------------ GroupCommit on its own


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def test_group_commit_batches_what_queued_during_a_write() -> None:
    """While the first write is held, nine more callers queue; they are written in one
    second batch, and nobody returns before the batch holding their item is written."""
    release = threading.Event()
    written: list[list[int]] = []
    lock = threading.Lock()

    def write(batch: Sequence[int]) -> None:
        if not written:
            release.wait(timeout=60)
        with lock:
            written.append(list(batch))

    group = GroupCommit[int](write)
    seen_written: dict[int, bool] = {}

    def caller(n: int) -> None:
        group.submit(n)
        with lock:
            seen_written[n] = any(n in batch for batch in written)

    first = threading.Thread(target=caller, args=(0,))
    first.start()
    _wait_for(lambda: group._leading, "the first caller leads")
    others = [threading.Thread(target=caller, args=(n,)) for n in range(1, 10)]
    for t in others:
        t.start()
    _wait_for(lambda: len(group._queue) == 9, "nine callers queued")
    assert not seen_written  # all wait: the first write is held
    release.set()
    for t in [first, *others]:
        t.join(timeout=60)
    assert written == [[0], list(range(1, 10))]
    assert seen_written == dict.fromkeys(range(10), True)
    assert not group._leading


def test_group_commit_failure_reaches_its_batch_and_the_next_goes_on() -> None:
    release = threading.Event()
    calls: list[list[str]] = []

    def write(batch: Sequence[str]) -> None:
        calls.append(list(batch))
        if len(calls) == 1:
            release.wait(timeout=60)
        if "bad" in batch:
            raise CatalogError("the disk is full")

    group = GroupCommit[str](write)
    results: dict[str, str] = {}

    def caller(item: str) -> None:
        try:
            group.submit(item)
            results[item] = "ok"
        except CatalogError as exc:
            results[item] = str(exc)

    threads = [threading.Thread(target=caller, args=("first",))]
    threads[0].start()
    _wait_for(lambda: len(calls) == 1, "the first write started")
    for n, item in enumerate(("bad", "unlucky"), 1):
        threads.append(threading.Thread(target=caller, args=(item,)))
        threads[-1].start()
        _wait_for(lambda n=n: len(group._queue) == n, f"{item} queued")
    release.set()
    for t in threads:
        t.join(timeout=60)
    caller("later")
    assert results == {"first": "ok", "bad": "the disk is full",
                       "unlucky": "the disk is full", "later": "ok"}
    assert calls == [["first"], ["bad", "unlucky"], ["later"]]


def test_a_new_leader_waits_for_the_last_batchs_callers() -> None:
    """After a batch of three, the next leader waits (up to its window, long here) for
    three callers instead of writing the first one alone."""
    release = threading.Event()
    written: list[list[str]] = []

    def write(batch: Sequence[str]) -> None:
        if not written:
            release.wait(timeout=60)
        written.append(list(batch))

    group = GroupCommit[str](write, window=60)
    first = [threading.Thread(target=group.submit, args=(item,))
             for item in ("held", "a", "b", "c")]
    first[0].start()
    _wait_for(lambda: group._leading, "the first caller leads")
    for n, t in enumerate(first[1:], 1):
        t.start()
        _wait_for(lambda n=n: len(group._queue) == n, "a caller queued")
    release.set()
    for t in first:
        t.join(timeout=60)
    assert written == [["held"], ["a", "b", "c"]]
    second = [threading.Thread(target=group.submit, args=(item,)) for item in "xyz"]
    for n, t in enumerate(second, 1):
        t.start()
        _wait_for(lambda n=n: len(group._queue) == n or len(written) > 2,
                  "a caller queued")
    for t in second:
        t.join(timeout=60)
    assert written == [["held"], ["a", "b", "c"], ["x", "y", "z"]]


def test_a_record_the_database_would_refuse_fails_alone(url: str, tmp_path: Path) -> None:
    """A NUL in a field (a crafted user name) is refused to its own caller before it
    joins a batch, so it cannot fail the appends of other requests."""
    catalog = Catalog(url)
    with pytest.raises(ValueError, match="NUL"):
        append(catalog, AuditEntry("mallory\x00", "10.0.0.9", "login", result="failed"))
    seq = append(catalog, AuditEntry("alice", "10.0.0.7", "login", "user:alice"))
    catalog.close()
    assert seq == 1
    _check_trail(url, tmp_path / "audit.key", {1: "user:alice"})
