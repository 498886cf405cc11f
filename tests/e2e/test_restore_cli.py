"""`medark restore` end to end: real backups, then the real command restores them."""

from __future__ import annotations

import os
import random
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_KDF, Cli

MTIME_NS = 1_650_000_000_111_222_333
HOLE = 24 * 1024 * 1024  # several max-size chunks of zeros: stored once, restored as holes


def make_source(root: Path) -> Path:
    """A small PACS tree with every kind of entry and some metadata to keep."""
    series = root / "pacs" / "2024" / "study1" / "series1"
    series.mkdir(parents=True)
    rng = random.Random(7)
    (series / "IM1.dcm").write_bytes(rng.randbytes(300_000))
    (series / "IM2.dcm").write_bytes(rng.randbytes(3_000_000))
    os.link(series / "IM2.dcm", series / "IM2-resent.dcm")
    (root / "pacs" / "latest").symlink_to("2024/study1")
    (root / "db").mkdir()
    dump = root / "db" / "his.sql"
    dump.write_text("INSERT INTO visit VALUES (1, 'ward 7');\n" * 30_000)
    dump.chmod(0o600)
    with open(root / "db" / "prealloc.dat", "wb") as f:
        f.write(b"header" * 1000)
        f.seek(HOLE, os.SEEK_CUR)
        f.write(b"trailer")
    (root / "db" / "empty.log").write_bytes(b"")
    (root / "spool").mkdir()
    os.mkfifo(root / "spool" / "pipe")
    (root / "empty").mkdir(mode=0o700)
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
    os.utime(root, ns=(MTIME_NS, MTIME_NS))
    return root


@dataclass
class Backed:
    cli: Cli
    source: Path
    snapshot_id: str


@pytest.fixture(scope="module")
def backed(tmp_path_factory: pytest.TempPathFactory) -> Backed:
    """One backup of the source, shared by the tests that only restore from it."""
    tmp_path = tmp_path_factory.mktemp("restore")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_REPO=str(tmp_path / "repo"),
               MEDARK_CACHE_DIR=str(tmp_path / "cache"))
    cli = Cli(tmp_path / "repo", env)
    cli("init")
    source = make_source(tmp_path / "src")
    snapshot_id = cli("backup", source, "--json").json()["snapshot_id"]
    return Backed(cli, source, snapshot_id)


def entries(source: Path) -> int:
    """Entries a full restore makes: the tree plus the directories leading to it."""
    return 15 + len(source.parts) - 1


def restored(target: Path, source: Path) -> Path:
    return target / source.relative_to("/")


def describe(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a restore must keep, per relative path."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("symlink", os.readlink(path), st.st_mtime_ns)
            continue
        kind = stat.filemode(st.st_mode)
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        link_of = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else ""
        out[rel] = (kind, st.st_mtime_ns, st.st_uid, st.st_gid, content, link_of)
    return out


def test_round_trip_keeps_contents_metadata_links_and_holes(
    backed: Backed, tmp_path: Path
) -> None:
    source = backed.source
    target = tmp_path / "restore"
    summary = backed.cli("restore", "latest", "--target", target, "--verify", "--json").json()
    assert summary["message_type"] == "summary"
    for field in ("total_files", "files_restored", "total_bytes", "bytes_restored",
                  "seconds_elapsed"):
        assert field in summary
    assert summary["files_restored"] == summary["total_files"] == entries(source)
    assert summary["files_verified"] == 6 and summary["verify_failures"] == []
    back = restored(target, source)
    assert describe(back) == describe(source)
    assert back.stat().st_mtime_ns == MTIME_NS
    prealloc = back / "db" / "prealloc.dat"
    assert prealloc.stat().st_blocks * 512 < HOLE // 2  # the hole stayed a hole
    assert not list(target.rglob(".medark-*"))


def test_text_summary_and_id_prefix(backed: Backed, tmp_path: Path) -> None:
    snap = backed.snapshot_id
    result = backed.cli("restore", snap[:8], "--target", tmp_path / "r")
    assert f"restoring snapshot {snap[:8]}" in result.stdout
    n = entries(backed.source)
    assert f"Summary: Restored {n} / {n} files/dirs" in result.stdout
    assert "/s" in result.stdout  # throughput


def test_include_and_exclude(backed: Backed, tmp_path: Path) -> None:
    source, cli = backed.source, backed.cli
    cli("restore", "latest", "--target", tmp_path / "inc", "--include", "*.dcm",
                "--exclude", "IM1.dcm")
    back = restored(tmp_path / "inc", source)
    files = sorted(str(p.relative_to(back)) for p in back.rglob("*") if not p.is_dir())
    assert files == ["pacs/2024/study1/series1/IM2-resent.dcm",
                     "pacs/2024/study1/series1/IM2.dcm"]
    cli("restore", "latest", "--target", tmp_path / "sub", "--include",
                str(source / "db"))
    sub = restored(tmp_path / "sub", source)
    assert sorted(p.name for p in sub.iterdir()) == ["db"]
    assert (sub / "db" / "his.sql").read_bytes() == (source / "db" / "his.sql").read_bytes()


def test_latest_honours_host_filter(initialized: Cli, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    initialized("backup", source, "--host", "pacs-a")
    (source / "db" / "his.sql").write_text("changed\n")
    initialized("backup", source, "--host", "pacs-b")
    initialized("restore", "latest", "--host", "pacs-a", "--target", tmp_path / "a",
                "--include", "his.sql")
    dump = restored(tmp_path / "a", source) / "db" / "his.sql"
    assert dump.read_text().startswith("INSERT INTO visit")


def test_bad_input_is_one_clear_line(backed: Backed, tmp_path: Path) -> None:
    initialized = backed.cli
    occupied = tmp_path / "occupied"
    occupied.write_text("x")
    result = initialized("restore", "latest", "--target", occupied, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"medark: restore target {occupied} exists and is not " \
                                    "a directory"
    result = initialized("restore", "deadbeef", "--target", tmp_path / "t", check=False)
    assert result.returncode == 1
    assert "no snapshot with id 'deadbeef'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = initialized("restore", "latest", check=False)
    assert result.returncode == 2 and "--target" in result.stderr


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def repository_state(repo: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(repo)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in repo.rglob("*") if p.is_file() and p.parts[-2] != "locks"}


def test_full_target_disk_is_one_line_and_leaves_no_partial_file(
    backed: Backed, tiny_fs: Path
) -> None:
    initialized, source = backed.cli, backed.source
    before = repository_state(initialized.repo)
    result = initialized("restore", "latest", "--target", tiny_fs, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"medark: restore target {tiny_fs}: no space left on device"
    assert not list(tiny_fs.rglob(".medark-*"))
    back = restored(tiny_fs, source)
    for path in back.rglob("*"):
        if path.is_file() and not path.is_symlink() and stat.S_ISREG(path.stat().st_mode):
            twin = source / path.relative_to(back)
            assert path.read_bytes() == twin.read_bytes()  # complete, or not there at all
    assert repository_state(initialized.repo) == before
