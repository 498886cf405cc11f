"""A group's database point on Orthanc's SQLite index (sources/pacs/sqlite_point.py): a
real SQLite file with Orthanc's AttachedFiles table, stop and start commands that are
real shell commands leaving marker files, and an index held by another process in
SQLite's exclusive locking mode, as a running Orthanc holds it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from medark.errors import SourceError
from medark.sources.pacs.index import Reference
from medark.sources.pacs.sqlite_point import take_sqlite_point

UUIDS = ["0a1b2c3d-0001", "ffee0000-0002"]


def make_index(path: Path, uuids: list[str] = UUIDS) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE AttachedFiles (id INTEGER, fileType INTEGER, uuid TEXT, "
                     "compressedSize INTEGER)")
        conn.executemany("INSERT INTO AttachedFiles VALUES (?, 1, ?, ?)",
                         [(i, u, 100 + i) for i, u in enumerate(uuids)])
    conn.close()


HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("INSERT INTO AttachedFiles VALUES (99, 1, 'abcd9999-held', 7)")
conn.commit()
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def held(index: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the index as Orthanc does (exclusive lock, WAL)."""
    with subprocess.Popen([sys.executable, "-c", HOLD, str(index)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            yield proc
        finally:
            proc.kill()
            proc.wait(timeout=10)


def commands(tmp_path: Path, stop_exit: int = 0, start_exit: int = 0) -> dict[str, str]:
    return {"stop_command": f"touch {tmp_path}/stopped; echo stopping; exit {stop_exit}",
            "start_command": f"touch {tmp_path}/started; echo oops >&2; exit {start_exit}"}


def test_the_index_is_copied_between_stop_and_start(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_index(index)
    point = take_sqlite_point(str(index), "orthanc", "/root", None,
                              tmp_dir=str(tmp_path / "tmp"), **commands(tmp_path))
    assert (tmp_path / "stopped").exists() and (tmp_path / "started").exists()
    assert point.stopped and point.start_error == ""
    assert point.references == [Reference("0a/1b/0a1b2c3d-0001", 100),
                                Reference("ff/ee/ffee0000-0002", 101)]
    copy = Path(point.copy)
    assert copy.parent == tmp_path / "tmp" and point.size == copy.stat().st_size
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM AttachedFiles").fetchone() == (2,)
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "started", "stopped",
                                                          "tmp"], "no -wal/-shm left"


def test_a_wal_left_by_a_killed_pacs_is_folded_into_the_copy(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_index(index)
    with held(index):
        assert (tmp_path / "index-wal").exists()
    # killed: its row is only in index-wal
    point = take_sqlite_point(str(index), "sql", "/root", "SELECT uuid FROM AttachedFiles")
    try:
        assert "abcd9999-held" in {r.path for r in point.references}
    finally:
        Path(point.copy).unlink()


def test_a_locked_index_names_the_commands_to_set(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_index(index)
    with held(index):
        with pytest.raises(SourceError) as caught:
            take_sqlite_point(str(index), "orthanc", "/root", None, busy_timeout=0.3,
                              tmp_dir=str(tmp_path / "tmp"))
        assert "is locked: Orthanc holds its SQLite index alone" in str(caught.value)
        assert "set stop_command and start_command" in str(caught.value)
        # a stop command that does not stop it: still locked, and the PACS is started
        with pytest.raises(SourceError) as caught:
            take_sqlite_point(str(index), "orthanc", "/root", None, busy_timeout=0.3,
                              tmp_dir=str(tmp_path / "tmp"), **commands(tmp_path))
        assert "still locked after stop_command" in str(caught.value)
        assert (tmp_path / "started").exists(), "start_command runs after a failed copy"
    assert list((tmp_path / "tmp").iterdir()) == [], "no copy is left behind"


def test_a_failing_stop_does_nothing_more(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_index(index)
    with pytest.raises(SourceError) as caught:
        take_sqlite_point(str(index), "orthanc", "/root", None,
                          **commands(tmp_path, stop_exit=3))
    assert "stop_command" in str(caught.value) and "exited 3: stopping" in str(caught.value)
    assert "start_command was not run" in str(caught.value)
    assert (tmp_path / "stopped").exists() and not (tmp_path / "started").exists()


def test_a_failing_start_keeps_the_point_and_says_so(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_index(index)
    point = take_sqlite_point(str(index), "orthanc", "/root", None,
                              **commands(tmp_path, start_exit=4))
    Path(point.copy).unlink()
    assert len(point.references) == 2
    assert "start_command" in point.start_error and "exited 4: oops" in point.start_error


def test_not_an_index_and_no_file_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        take_sqlite_point(str(tmp_path / "nothing"), "orthanc", "/root", None)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(SourceError, match=r"cannot read the orthanc index in .*no such table"):
        take_sqlite_point(str(other), "orthanc", "/root", None, **commands(tmp_path))
    assert (tmp_path / "started").exists()
    junk = tmp_path / "junk"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(SourceError, match="cannot copy the SQLite index"):
        take_sqlite_point(str(junk), "orthanc", "/root", None)
