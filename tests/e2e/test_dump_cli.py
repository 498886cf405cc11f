"""`medark dump` end to end: a file's bytes on standard output (a multi-chunk image; a
pg_dump backup piped into psql), a directory as tar or zip, and nothing written from
damaged data into --target."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, Cli


def _dump(cli: Cli, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    env = {**cli.env, "MEDARK_PASSWORD": PASSWORD}
    return subprocess.run([MEDARK, "dump", *map(str, args)], env=env, capture_output=True,
                          timeout=300, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "影像" / "study1").mkdir(parents=True)
    (root / "影像" / "study1" / "IM0001.dcm").write_bytes(os.urandom(9 * 1024 * 1024))
    (root / "notes.txt").write_text("患者 stable\n" * 1000, encoding="utf-8")
    (root / "run.sh").write_text("#!/bin/sh\necho ok\n")
    (root / "run.sh").chmod(0o750)
    (root / "latest.txt").symlink_to("notes.txt")
    (root / "empty").mkdir()
    return root


def test_a_file_streams_byte_identical(initialized: Cli, tree: Path) -> None:
    initialized("backup", tree)
    image = tree / "影像" / "study1" / "IM0001.dcm"
    done = _dump(initialized, "latest", image)
    assert done.returncode == 0, done.stderr
    assert done.stdout == image.read_bytes()  # several chunks, read ahead in order


def test_a_backed_up_dump_command_comes_back_for_the_pipe(initialized: Cli) -> None:
    sql = b"CREATE TABLE visit (id int);\nINSERT INTO visit VALUES (1);\n" * 500
    initialized("backup", "--stdin", "--stdin-filename", "his.sql", "--tag", "sql",
                input=sql)
    initialized("backup", "--stdin", "--stdin-filename", "lis.sql", input=b"other")
    done = _dump(initialized, "latest", "/his.sql", "--tag", "sql")
    assert done.returncode == 0, done.stderr
    assert done.stdout == sql


def test_a_directory_as_tar_keeps_names_modes_and_links(initialized: Cli, tree: Path
                                                        ) -> None:
    initialized("backup", tree)
    done = _dump(initialized, "latest", tree)
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout), mode="r:") as tar:
        members = {m.name: m for m in tar.getmembers()}
        base = str(tree).lstrip("/")
        expected = {base, f"{base}/影像", f"{base}/影像/study1", f"{base}/影像/study1/IM0001.dcm",
                    f"{base}/notes.txt", f"{base}/run.sh", f"{base}/latest.txt",
                    f"{base}/empty"}
        assert set(members) == expected
        for path in tree.rglob("*"):
            member = members[str(path).lstrip("/")]
            if path.is_symlink():
                assert member.issym() and member.linkname == "notes.txt"
                continue
            assert member.mode == stat.S_IMODE(path.lstat().st_mode)
            assert abs(member.mtime - path.lstat().st_mtime) < 1e-3  # pax: sub-second
            if path.is_file():
                extracted = tar.extractfile(member)
                assert extracted is not None and extracted.read() == path.read_bytes()


def test_a_directory_as_zip_into_a_target(initialized: Cli, tree: Path, tmp_path: Path
                                          ) -> None:
    initialized("backup", tree)
    target = tmp_path / "study.zip"
    done = _dump(initialized, "latest", tree / "影像", "--archive", "zip", "--target", target)
    assert done.returncode == 0 and done.stdout == b"", done.stderr
    with zipfile.ZipFile(target) as zipped:
        base = str(tree / "影像").lstrip("/")
        assert sorted(zipped.namelist()) == [f"{base}/", f"{base}/study1/",
                                             f"{base}/study1/IM0001.dcm"]
        image = tree / "影像" / "study1" / "IM0001.dcm"
        assert zipped.read(f"{base}/study1/IM0001.dcm") == image.read_bytes()


def test_damaged_data_never_reaches_the_target(initialized: Cli, tree: Path,
                                               tmp_path: Path) -> None:
    initialized("backup", tree)
    packs = sorted((initialized.repo / "data").rglob("*"), key=lambda p: p.stat().st_size)
    biggest = [p for p in packs if p.is_file()][-1]  # holds the image's chunks
    biggest.chmod(0o600)
    raw = bytearray(biggest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    biggest.write_bytes(bytes(raw))
    target = tmp_path / "out.dcm"
    done = _dump(initialized, "latest", tree / "影像" / "study1" / "IM0001.dcm",
                 "--target", target)
    assert done.returncode != 0 and b"Traceback" not in done.stderr
    assert not target.exists() and not list(tmp_path.glob(".out.dcm.tmp-*"))


def test_bad_requests_are_one_line(initialized: Cli, tree: Path) -> None:
    initialized("backup", tree)
    missing = _dump(initialized, "latest", tree / "absent.txt")
    assert missing.returncode == 1 and b"is not in snapshot" in missing.stderr
    relative = _dump(initialized, "latest", "data/notes.txt")
    assert relative.returncode == 2 and b"must be absolute" in relative.stderr
    for result in (missing, relative):
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == b""


PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]


def _psql(database: str, sql: str) -> str:
    done = subprocess.run(["psql", *PG, "-d", database, "-At", "-v", "ON_ERROR_STOP=1",
                           "-c", sql], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    if shutil.which("pg_dump") is None:
        pytest.skip("PostgreSQL client tools are not installed")
    try:
        _psql("postgres", "select 1")
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    names = (f"medark_dump_src_{os.getpid()}", f"medark_dump_dst_{os.getpid()}")
    for name in names:
        _psql("postgres", f"drop database if exists {name}")
        _psql("postgres", f"create database {name}")
    try:
        yield names
    finally:
        for name in names:
            _psql("postgres", f"drop database if exists {name}")


def test_a_pg_dump_backup_pipes_into_psql(initialized: Cli,
                                          databases: tuple[str, str]) -> None:
    """The dump-command source round trip a hospital runs: pg_dump into the repository,
    `medark dump | psql` into a fresh database, the same rows."""
    source, restored = databases
    _psql(source, "create table visit (id int primary key, patient text, at timestamptz);"
                  "insert into visit select g, '患者' || g, now() from generate_series(1, 5000) g")
    initialized("backup", "--tag", "his", "--stdin-filename", "his.sql",
                "--stdin-from-command", "--", "pg_dump", *PG, "--dbname", source)
    env = {**initialized.env, "MEDARK_PASSWORD": PASSWORD}
    dump = subprocess.Popen([MEDARK, "dump", "latest", "/his.sql", "--tag", "his"], env=env,
                            stdout=subprocess.PIPE)
    load = subprocess.run(["psql", *PG, "-d", restored, "-q", "-v", "ON_ERROR_STOP=1"],
                          stdin=dump.stdout, capture_output=True, timeout=120, check=False)
    assert dump.stdout is not None
    dump.stdout.close()
    assert dump.wait(timeout=60) == 0 and load.returncode == 0, load.stderr
    query = "select count(*), md5(string_agg(patient, ',' order by id)) from visit"
    assert _psql(restored, query) == _psql(source, query)
