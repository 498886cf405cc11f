"""End-to-end tests of `medark backup` through the real command."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, Cli

from medark.repo.repository import Repository
from medark.storage.local import LocalBackend


def write_random(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    path.write_bytes(rng.randbytes(size))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_random(root / "pacs" / "a.dcm", 300_000, 1)
    write_random(root / "pacs" / "b.dcm", 2_500_000, 2)
    (root / "db").mkdir()
    (root / "db" / "dump.sql").write_text("INSERT INTO t VALUES (1);\n" * 20000)
    (root / "empty").mkdir()
    return root


def test_backup_reports_restic_summary_fields(initialized: Cli, data: Path) -> None:
    summary = initialized("backup", data, "--json", "--tag", "nightly").json()
    for field in ("files_new", "files_changed", "files_unmodified", "data_added",
                  "total_bytes_processed", "snapshot_id", "total_duration"):
        assert field in summary
    assert summary["files_new"] == 3
    assert summary["total_bytes_processed"] == sum(
        p.stat().st_size for p in data.rglob("*") if p.is_file())
    snaps = initialized("snapshots", "--json").json()
    assert [s["id"] for s in snaps] == [summary["snapshot_id"]]
    assert snaps[0]["tags"] == ["nightly"]
    assert snaps[0]["paths"] == [str(data)]


def test_second_copy_of_the_same_data_adds_almost_nothing(
    initialized: Cli, data: Path, tmp_path: Path
) -> None:
    first = initialized("backup", data, "--json").json()
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    second = initialized("backup", copy, "--json").json()
    assert second["files_new"] == 3
    assert second["data_added"] < 10_000  # only the new directory objects
    assert first["data_added"] > 2_000_000


def test_incremental_backup_reads_only_changed_files(initialized: Cli, data: Path) -> None:
    initialized("backup", data)
    target = data / "pacs" / "a.dcm"
    write_random(target, 300_000, 99)
    second = initialized("backup", data, "--json").json()
    assert second["files_changed"] == 1
    assert second["files_unmodified"] == 2
    assert second["bytes_read"] == 300_000
    third = initialized("backup", data, "--json").json()
    assert third["bytes_read"] == 0
    assert third["files_unmodified"] == 3


def test_exclude_patterns(initialized: Cli, data: Path, tmp_path: Path) -> None:
    exclude_file = tmp_path / "excludes"
    exclude_file.write_text("# comment\n*.sql\n")
    summary = initialized("backup", data, "--exclude", "b.dcm", "--exclude-file",
                          exclude_file, "--json").json()
    assert summary["files_new"] == 1


def test_missing_path_is_one_clear_line(initialized: Cli, tmp_path: Path) -> None:
    result = initialized("backup", tmp_path / "nope", check=False)
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_password_exits_12(initialized: Cli, data: Path) -> None:
    result = initialized("backup", data, password="not it", check=False)
    assert result.returncode == 12
    assert "wrong password" in result.stderr


def test_missing_repository_exits_10(cli: Cli, data: Path) -> None:
    result = cli("backup", data, check=False)
    assert result.returncode == 10
    assert "does not exist" in result.stderr


def test_foreign_directory_exits_10(cli: Cli, data: Path) -> None:
    result = cli("backup", data, "--repo", data / "pacs", check=False)
    assert result.returncode == 10
    assert "not a Medark repository" in result.stderr


def test_stdin_from_command_stores_output(initialized: Cli) -> None:
    summary = initialized("backup", "--stdin-filename", "his.sql", "--json",
                          "--stdin-from-command", "--", "sh", "-c",
                          "for i in $(seq 1 5000); do echo row $i; done").json()
    assert summary["total_bytes_processed"] == sum(len(f"row {i}\n") for i in range(1, 5001))
    snaps = initialized("snapshots", "--json").json()
    assert snaps[0]["paths"] == ["/his.sql"]


def test_stdin_from_command_failure_writes_no_snapshot(initialized: Cli) -> None:
    result = initialized("backup", "--stdin-from-command", "--", "sh", "-c",
                         "echo partial; exit 3", check=False)
    assert result.returncode == 1
    assert "exited with status 3" in result.stderr
    assert initialized("snapshots", "--json").json() == []


# The system Python the venv is built on (Makefile): the same version, readable by nobody.
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser") or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root and the system Python of the venv to run medark as an unprivileged user",
)
def test_unreadable_file_gives_exit_3_and_names_it(cli: Cli) -> None:
    """Root reads every file, so the backup runs as `nobody` with the same code."""
    site_dir = sysconfig.get_paths()["purelib"]
    tmp_path = Path(tempfile.mkdtemp(prefix="medark-nobody-"))
    tmp_path.chmod(0o755)
    try:
        _run_as_nobody(tmp_path, cli, site_dir)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_as_nobody(tmp_path: Path, cli: Cli, site_dir: str) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o777)
    (data / "ok.txt").write_text("readable")
    secret = data / "secret.txt"
    secret.write_text("no access")
    secret.chmod(0o000)
    repo = tmp_path / "userrepo"
    repo.mkdir()
    repo.chmod(0o777)
    env = dict(cli.env, MEDARK_REPO=str(repo / "r"), MEDARK_PASSWORD=PASSWORD,
               MEDARK_CACHE_DIR=str(repo / "cache"), HOME=str(repo))
    # The venv's packages go first: the system's own (older) cryptography must not win.
    code = ("import site, sys; d = sys.argv.pop(1); site.addsitedir(d); "
            "sys.path.remove(d); sys.path.insert(0, d); "
            "from medark.cli.main import entry; entry()")
    run = ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", code, site_dir]
    init = subprocess.run([*run, "init"], env=env, capture_output=True, text=True, check=False)
    if init.returncode != 0 and ("Permission denied" in init.stderr
                                 or "ModuleNotFoundError" in init.stderr):
        pytest.skip(f"the medark installation is not usable by nobody: {init.stderr[-200:]}")
    assert init.returncode == 0, init.stderr
    result = subprocess.run([*run, "backup", str(data), "--json"], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 3, result.stderr
    assert str(secret) in result.stderr
    assert "Traceback" not in result.stderr
    assert '"files_new": 1' in result.stdout


def test_two_concurrent_backups_both_land(initialized: Cli, tmp_path: Path) -> None:
    sources = []
    for i in range(2):
        src = tmp_path / f"host{i}"
        for j in range(4):
            write_random(src / f"f{j}.bin", 1_500_000, seed=10 * i + j)
        sources.append(src)
    env = dict(initialized.env, MEDARK_PASSWORD=PASSWORD)
    procs = [subprocess.Popen([MEDARK, "backup", str(s), "--host", f"h{i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i, s in enumerate(sources)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    snaps = initialized("snapshots", "--json").json()
    assert sorted(s["hostname"] for s in snaps) == ["h0", "h1"]


GENERATOR = """
import random, sys, time
out = sys.stdout.buffer
rng = random.Random(5)
for part in range(3):
    out.write(rng.randbytes(20_000_000))
    out.flush()
    if part == 1 and sys.argv[1] == "slow":
        time.sleep(1.5)   # the next pack upload then also writes an index file
out.write(rng.randbytes(1_000_000))
out.flush()
if sys.argv[1] == "slow":
    time.sleep(120)       # the backup is still running when the test kills it
"""


def test_kill_9_during_backup_then_next_backup_succeeds_and_reuses(
    initialized: Cli, tmp_path: Path
) -> None:
    """A backup killed mid-way (its source stalls, so the timing is certain) leaves a
    repository that checks clean; the next backup reuses what was uploaded; prune
    removes the leftovers."""
    script = tmp_path / "gen.py"
    script.write_text(GENERATOR)
    env = dict(initialized.env, MEDARK_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [MEDARK, "backup", "--stdin-filename", "dump.bin", "--stdin-from-command", "--",
         sys.executable, str(script), "slow"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    index_dir = initialized.repo / "index"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            # a complete index file, not the hidden temp file of one being written
            if index_dir.is_dir() and any(not p.name.startswith(".")
                                          for p in index_dir.iterdir()):
                break
            assert proc.poll() is None, "the backup ended before it could be killed"
            time.sleep(0.01)
        else:
            pytest.fail("no index file was written within 60 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert initialized("snapshots", "--json").json() == []
    initialized("check")  # an interrupted backup leaves a consistent repository
    summary = initialized("backup", "--stdin-filename", "dump.bin", "--json",
                          "--stdin-from-command", "--", sys.executable, str(script),
                          "fast").json()
    assert summary["total_bytes_processed"] == 61_000_000
    assert summary["data_added"] < 61_000_000 - 16_000_000  # reused what was uploaded
    assert len(initialized("snapshots", "--json").json()) == 1
    initialized("prune")  # removes what the killed backup left unreferenced
    initialized("check", "--read-data")


def test_locked_repository_exits_11(initialized: Cli, data: Path) -> None:
    """An exclusive lock held by a live process (this test) blocks a backup."""
    repo = Repository.open(LocalBackend(initialized.repo), PASSWORD.encode())
    held = repo.lock(True, "prune", lambda _: None)
    try:
        result = initialized("backup", data, check=False)
    finally:
        held.release()
        repo.close()
    assert result.returncode == 11
    assert "locked" in result.stderr and "prune" in result.stderr
    assert initialized("backup", data, check=False).returncode == 0


def test_retry_lock_waits_for_the_lock_to_go_then_gives_up_with_11(initialized: Cli,
                                                                  data: Path) -> None:
    """restic's --retry-lock: a backup started while prune holds the lock waits and then
    runs; a wait shorter than the lock's hold still ends in exit 11, saying it waited."""
    repo = Repository.open(LocalBackend(initialized.repo), PASSWORD.encode())
    held = repo.lock(True, "prune", lambda _: None)
    try:
        short = initialized("--retry-lock", "1s", "backup", data, check=False)
        waiting = subprocess.Popen(
            [MEDARK, "--retry-lock", "1m", "--json", "backup", str(data)],
            env={**initialized.env, "MEDARK_PASSWORD": PASSWORD}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert waiting.poll() is None  # still waiting for the lock
    finally:
        held.release()
        repo.close()
    out, err = waiting.communicate(timeout=120)
    assert short.returncode == 11 and "waited 1 s" in short.stderr, short.stderr
    assert waiting.returncode == 0, err
    assert "waiting up to 60 s" in err and json.loads(out.splitlines()[-1])["snapshot_id"]
    bad = initialized("--retry-lock", "5 minutes", "snapshots", check=False)
    assert bad.returncode == 2 and "invalid --retry-lock duration" in bad.stderr


def test_no_lock_lets_readers_past_a_lock_but_never_writers(initialized: Cli,
                                                             data: Path) -> None:
    initialized("backup", data)
    repo = Repository.open(LocalBackend(initialized.repo), PASSWORD.encode())
    held = repo.lock(True, "prune", lambda _: None)
    try:
        blocked = initialized("snapshots", check=False)
        read = initialized("--no-lock", "--json", "snapshots", check=False)
        stats = initialized("--no-lock", "--json", "stats", check=False)
        written = initialized("--no-lock", "backup", data, check=False)
        locks = sorted(p.name for p in (initialized.repo / "locks").iterdir())
    finally:
        held.release()
        repo.close()
    assert blocked.returncode == 11
    assert read.returncode == 0 and len(read.json()) == 1
    assert stats.returncode == 0
    assert written.returncode == 11  # a backup locks whatever it is told
    assert len(locks) == 1  # the readers left no lock of their own


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305", "sm4-gcm"])
def test_every_cipher_suite_round_trips(cli: Cli, data: Path, tmp_path: Path,
                                        cipher: str) -> None:
    cli("init", "--cipher", cipher)
    cli("backup", data)
    cli("check", "--read-data")
    target = tmp_path / "restored"
    cli("restore", "latest", "--target", target)
    restored = target / data.relative_to("/")
    for path in data.rglob("*"):
        twin = restored / path.relative_to(data)
        assert twin.exists(), twin
        if path.is_file():
            assert twin.read_bytes() == path.read_bytes()
    config = (cli.repo / "config").read_bytes()
    assert b"INSERT INTO" not in config and cipher.encode() not in config


@pytest.mark.parametrize("command", ["snapshots", "check", "key list", "unlock"])
def test_missing_repository_is_reported_before_any_password(cli: Cli, command: str) -> None:
    result = cli(*command.split(), password=None, check=False)
    assert result.returncode == 10, result.stderr
    assert "does not exist" in result.stderr and "password" not in result.stderr


def test_many_small_files_round_trip_and_dedup(initialized: Cli, tmp_path: Path) -> None:
    """Small files go through the batched path: identical ones stored once, all restored."""
    src = tmp_path / "emr"
    for i in range(300):
        folder = src / f"d{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        body = b"same note\n" * 50 if i % 3 == 0 else f"note {i}\n".encode() * (i + 1)
        (folder / f"n{i:03d}.txt").write_bytes(body)
    (src / "d0" / "empty.txt").write_bytes(b"")
    first = initialized("backup", src, "--json").json()
    assert first["files_new"] == 301
    assert first["data_blobs"] == 200 + 1  # 200 distinct notes and 1 shared by 100 files
    target = tmp_path / "restored"
    initialized("restore", "latest", "--target", target)
    restored = target / src.relative_to("/")
    for path in src.rglob("*"):
        if path.is_file():
            assert (restored / path.relative_to(src)).read_bytes() == path.read_bytes()
    for name in ("d1/n001.txt", "d2/n002.txt", "d4/n004.txt"):
        (src / name).write_bytes(b"amended\n")
    second = initialized("backup", src, "--json").json()
    assert (second["files_changed"], second["files_unmodified"]) == (3, 298)
    assert second["bytes_read"] == 3 * len(b"amended\n")
