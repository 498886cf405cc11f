"""`medark restore --processes N`: shares of the tree restored by processes of their own
(engine/restore_shares.py) must give exactly what one process gives: contents, modes,
owners, times, links across shares, the same errors and exit code on a damaged
repository; and no process may outlive the restore, whether it is killed or stopped
with Ctrl-C."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, Cli
from test_restore_cli import describe, tiny_fs  # noqa: F401 - a fixture used below

MTIME_NS = 1_660_000_000_123_456_789


def make_wide_source(root: Path, studies: int = 12, series: int = 4, files: int = 12) -> Path:
    """A PACS-like tree wide enough for shares, with what a share boundary could break."""
    rng = random.Random(11)
    for st in range(studies):
        for se in range(series):
            where = root / f"study{st:02d}" / f"series{se}"
            where.mkdir(parents=True)
            for n in range(files):
                (where / f"IM{n}.dcm").write_bytes(rng.randbytes(rng.randint(0, 4000)))
    (root / "study00" / "series0" / "big.dcm").write_bytes(rng.randbytes(3_000_000))
    (root / "study00" / "series0" / "empty.dcm").write_bytes(b"")
    (root / "README").write_text("beside the shares: the parent restores it\n")
    # one inode under three names: two shares and the parent's part
    os.link(root / "study01" / "series1" / "IM1.dcm", root / "study09" / "series3" / "same.dcm")
    os.link(root / "study01" / "series1" / "IM1.dcm", root / "linked-at-top.dcm")
    (root / "study02" / "latest").symlink_to("series0")
    os.mkfifo(root / "study03" / "pipe")
    owned = root / "study04" / "series2" / "IM3.dcm"
    os.chown(owned, 1234, 5678)
    owned.chmod(0o640)
    (root / "study05").chmod(0o750)
    (root / "study06").chmod(0o2775)
    os.chown(root / "study06", 0, 5678)
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
    os.utime(root, ns=(MTIME_NS, MTIME_NS))
    return root


@pytest.fixture
def wide(initialized: Cli, tmp_path: Path) -> tuple[Cli, Path]:
    source = make_wide_source(tmp_path / "src")
    initialized("backup", source)
    return initialized, source


def restore(cli: Cli, target: Path, processes: int, *more: str,
            check: bool = True) -> tuple[int, dict[str, object]]:
    result = cli("restore", "latest", "--target", target, "--processes", str(processes),
                 "--json", *more, check=check)
    return result.returncode, result.json()


def comparable(summary: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in summary.items()
            if k not in ("seconds_elapsed", "target", "processes", "errors")}


@pytest.mark.skipif(os.geteuid() != 0, reason="owners are restored by root")
def test_processes_restore_exactly_what_one_process_restores(wide: tuple[Cli, Path],
                                                             tmp_path: Path) -> None:
    cli, source = wide
    _, alone = restore(cli, tmp_path / "threads", 1, "--verify")
    _, shared = restore(cli, tmp_path / "shares", 2, "--verify")
    assert alone["processes"] == 0 and shared["processes"] == 2
    assert comparable(shared) == comparable(alone)
    assert shared["files_verified"] == 12 * 4 * 12 + 5 and shared["verify_failures"] == []
    inside = source.relative_to("/")
    assert describe(tmp_path / "shares" / inside) == describe(source)
    assert describe(tmp_path / "threads" / inside) == describe(source)
    # the three names of one inode are one inode again (each process made its own copy)
    back = tmp_path / "shares" / inside
    inodes = {(back / name).stat().st_ino for name in (
        "study01/series1/IM1.dcm", "study09/series3/same.dcm", "linked-at-top.dcm")}
    assert len(inodes) == 1 and (back / "linked-at-top.dcm").stat().st_nlink == 3
    assert back.stat().st_mtime_ns == MTIME_NS
    assert not list((tmp_path / "shares").rglob(".medark-*"))


def test_a_damaged_repository_fails_the_same_with_processes(wide: tuple[Cli, Path],
                                                             tmp_path: Path) -> None:
    cli, _source = wide
    # the largest pack holds file data (packs hold one kind of blob): one byte flipped
    largest = max((p for p in (cli.repo / "data").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    largest.chmod(0o600)
    largest.write_bytes(bytes(data))
    code_alone, alone = restore(cli, tmp_path / "threads", 1, check=False)
    code_shared, shared = restore(cli, tmp_path / "shares", 2, check=False)
    assert code_alone != 0 and code_shared == code_alone
    assert alone["errors"], "the pack held some file's data"

    def relative(errors: object, target: Path) -> list[str]:
        assert isinstance(errors, list)
        return sorted(str(e).replace(str(target), "TARGET") for e in errors)

    assert relative(shared["errors"], tmp_path / "shares") == relative(
        alone["errors"], tmp_path / "threads")
    assert comparable(shared) == comparable(alone)


def test_a_full_target_is_one_line_with_processes_and_leaves_no_partial_file(
        wide: tuple[Cli, Path], tiny_fs: Path) -> None:  # noqa: F811 - the fixture
    cli, source = wide  # 3 MB of data, and the file system holds 2 MiB
    result = cli("restore", "latest", "--target", tiny_fs, "--processes", "2", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"medark: restore target {tiny_fs}: no space left on device"
    assert not list(tiny_fs.rglob(".medark-*"))
    back = tiny_fs / source.relative_to("/")
    for path in back.rglob("*"):
        if path.is_file() and not path.is_symlink():
            # complete, or not there at all (a direct file that failed is removed)
            assert path.read_bytes() == (source / path.relative_to(back)).read_bytes(), path


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def start_restore(cli: Cli, target: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """A restore started in a session of its own, once its processes are running."""
    env = dict(cli.env, MEDARK_PASSWORD=PASSWORD)
    proc = subprocess.Popen([MEDARK, "restore", "latest", "--target", str(target),
                             "--processes", "2", "--workers", "1", "--verify"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        kids = children_of(proc.pid)
        if len(kids) >= 2:
            return proc, kids
        time.sleep(0.01)
    proc.kill()
    _, stderr = proc.communicate()
    raise AssertionError(f"the restore processes never started: {stderr.decode()[-500:]}")


@pytest.fixture
def large(initialized: Cli, tmp_path: Path) -> Cli:
    initialized("backup", make_wide_source(tmp_path / "src", studies=16, series=8, files=60))
    return initialized


def test_killing_the_restore_ends_its_processes(large: Cli, tmp_path: Path) -> None:
    proc, kids = start_restore(large, tmp_path / "r")
    proc.kill()
    proc.communicate()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(k) for k in kids):
        time.sleep(0.05)
    assert not any(alive(k) for k in kids), "a restore process outlived its parent"


def test_ctrl_c_stops_the_processes_and_leaves_no_temporary_file(large: Cli,
                                                                  tmp_path: Path) -> None:
    proc, kids = start_restore(large, tmp_path / "r")
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert not any(alive(k) for k in kids)
    assert not list((tmp_path / "r").rglob(".medark-*"))
