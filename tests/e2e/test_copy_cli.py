"""`medark copy` through the real command: local and S3 destinations, different keys and
cipher suites, interruption and rerun, --follow, --status, bandwidth limits."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import s3_server
from conftest import MEDARK, PASSWORD, Cli


def _tree(root: Path, files: int = 12, size: int = 300_000) -> Path:
    """Image-like random files, text that compresses, a symlink and an empty dir."""
    (root / "pacs" / "CT").mkdir(parents=True)
    for i in range(files):
        (root / "pacs" / "CT" / f"img{i:03}.dcm").write_bytes(os.urandom(size))
    (root / "his.sql").write_text("INSERT INTO orders VALUES (1, 'aspirin');\n" * 30_000)
    (root / "empty").mkdir()
    (root / "latest.sql").symlink_to("his.sql")
    return root


def _same_tree(a: Path, b: Path) -> None:
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*"))
    assert names_a == names_b
    for rel in names_a:
        pa, pb = a / rel, b / rel
        if pa.is_symlink():
            assert os.readlink(pa) == os.readlink(pb)
        elif pa.is_file():
            assert pa.read_bytes() == pb.read_bytes(), rel


def _restored(cli: Cli, repo: str | Path, target: Path, source: Path,
              snapshot: str = "latest") -> Path:
    cli("-r", repo, "restore", snapshot, "--target", target, "--verify")
    return target / str(source).lstrip("/")


@pytest.fixture
def two_repos(cli: Cli, tmp_path: Path) -> tuple[Cli, Path, Path]:
    src, dst = tmp_path / "site-a", tmp_path / "site-b"
    cli("-r", src, "init", "--cipher", "aes-256-gcm")
    cli("-r", dst, "init", "--cipher", "sm4-gcm")
    return cli, src, dst


def test_copy_to_an_sm4_repository_restores_identically_and_is_idempotent(
        two_repos: tuple[Cli, Path, Path], tmp_path: Path) -> None:
    cli, src, dst = two_repos
    data = _tree(tmp_path / "data")
    cli("-r", src, "backup", data, "--tag", "daily")
    (data / "his.sql").write_text("INSERT INTO orders VALUES (2, 'heparin');\n" * 30_000)
    (data / "pacs" / "CT" / "img000.dcm").unlink()
    cli("-r", src, "backup", data, "--tag", "daily")
    source_snaps = cli("-r", src, "snapshots", "--json").json()

    first = cli("-r", dst, "copy", "--from-repo", src, "--json").json_lines()
    summary = first[-1]
    assert summary["message_type"] == "summary"
    assert summary["snapshots_copied"] == 2
    copied = [e for e in first if e.get("message_type") == "copied"]
    assert [e["id"] for e in copied] == [s["id"] for s in source_snaps]

    copies = cli("-r", dst, "snapshots", "--json").json()
    assert sorted(s["original"] for s in copies) == sorted(s["id"] for s in source_snaps)
    assert [s["tags"] for s in copies] == [["daily"], ["daily"]]
    cli("-r", dst, "check", "--read-data")
    _same_tree(data, _restored(cli, dst, tmp_path / "out", data))
    oldest = min(copies, key=lambda s: s["time"])["id"]
    first_copy = _restored(cli, dst, tmp_path / "out-first", data, oldest)
    assert (first_copy / "pacs" / "CT" / "img000.dcm").exists()

    again = cli("-r", dst, "copy", "--from-repo", src, "--json").json_lines()[-1]
    assert again["snapshots_copied"] == 0 and again["snapshots_present"] == 2
    assert again["bytes_stored"] == 0 and again["packs_written"] == 0
    assert again["bytes_read"] == 0  # the map knew every tree: nothing was read again


def test_only_missing_chunks_are_sent(two_repos: tuple[Cli, Path, Path],
                                      tmp_path: Path) -> None:
    cli, src, dst = two_repos
    data = _tree(tmp_path / "data", files=20)
    cli("-r", src, "backup", data)
    cli("-r", dst, "copy", "--from-repo", src)
    (data / "pacs" / "CT" / "new.dcm").write_bytes(os.urandom(400_000))
    second = cli("-r", src, "backup", data, "--json").json()
    summary = cli("-r", dst, "copy", "--from-repo", src, "--json").json_lines()[-1]
    assert summary["snapshots_copied"] == 1
    # what crossed: the new file's chunks and the changed trees, roughly what the
    # source stored for the same backup (other keys, so a few bytes differ)
    assert summary["bytes_stored"] <= second["data_added_packed"] * 1.05 + 4096
    assert summary["bytes_stored"] >= 400_000


def test_filters_pick_the_snapshots(two_repos: tuple[Cli, Path, Path], tmp_path: Path) -> None:
    cli, src, dst = two_repos
    data = _tree(tmp_path / "data", files=2)
    cli("-r", src, "backup", data, "--host", "his-db")
    cli("-r", src, "backup", data, "--host", "lis-db")
    summary = cli("-r", dst, "copy", "--from-repo", src, "--host", "lis-db",
                  "--json").json_lines()[-1]
    assert summary["snapshots_copied"] == 1
    assert [s["hostname"] for s in cli("-r", dst, "snapshots", "--json").json()] == ["lis-db"]


def test_source_password_options_and_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    cli("-r", src, "init", password="source secret")
    cli("-r", dst, "init")
    data = _tree(tmp_path / "data", files=1)
    cli("-r", src, "backup", data, password="source secret")
    wrong = cli("-r", dst, "copy", "--from-repo", src, check=False)
    assert wrong.returncode == 12
    assert "--from-password-file" in wrong.stderr and "Traceback" not in wrong.stderr
    pw = tmp_path / "source-pw"
    pw.write_text("source secret\n")
    cli("-r", dst, "copy", "--from-repo", src, "--from-password-file", pw)
    assert len(cli("-r", dst, "snapshots", "--json").json()) == 1
    same = cli("-r", dst, "copy", "--from-repo", dst, check=False)
    assert same.returncode == 2
    missing = cli("-r", dst, "copy", "--from-repo", tmp_path / "nowhere", check=False)
    assert missing.returncode == 10


def _popen(cli: Cli, *args: str | Path) -> subprocess.Popen[str]:
    env = dict(cli.env, MEDARK_PASSWORD=PASSWORD)
    return subprocess.Popen([MEDARK, *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_copy_killed_halfway_resumes_without_resending(two_repos: tuple[Cli, Path, Path],
                                                         tmp_path: Path) -> None:
    cli, src, dst = two_repos
    data = _tree(tmp_path / "data", files=60, size=1_000_000)  # ~60 MB, 4 packs or more
    cli("-r", src, "backup", data)
    total = cli("-r", src, "stats", "--mode", "raw-data", "--json").json()["total_size"]
    # slowed to ~15 MB/s so the kill lands mid-copy
    proc = _popen(cli, "-r", dst, "copy", "--from-repo", src, "--limit-upload", "15000")
    packs = dst / "data"
    _wait(lambda: sum(1 for p in packs.rglob("*") if p.is_file()) >= 2, 120,
          "two packs to land")
    time.sleep(1.2)  # the index is written every second
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert cli("-r", dst, "snapshots", "--json").json() == []  # no snapshot without data

    rerun = cli("-r", dst, "copy", "--from-repo", src, "--json").json_lines()[-1]
    assert rerun["snapshots_copied"] == 1
    assert rerun["blobs_present"] + rerun["blobs_reused"] > 0
    assert rerun["bytes_stored"] < total * 0.9  # what landed was not sent again
    cli("-r", dst, "check", "--read-data")
    _same_tree(data, _restored(cli, dst, tmp_path / "out", data))


def test_follow_copies_new_snapshots_as_they_land_and_status_reports_the_age(
        two_repos: tuple[Cli, Path, Path], tmp_path: Path) -> None:
    cli, src, dst = two_repos
    data = _tree(tmp_path / "data", files=2)
    cli("-r", src, "backup", data)
    follower = _popen(cli, "-r", dst, "copy", "--from-repo", src, "--follow", "--interval",
                      "0.3", "--json")
    try:
        _wait(lambda: len(cli("-r", dst, "snapshots", "--json").json()) == 1, 60,
              "the first snapshot to be copied")
        (data / "his.sql").write_text("changed\n")
        new = cli("-r", src, "backup", data, "--json").json()
        landed = time.monotonic()
        _wait(lambda: any(s.get("original") == new["snapshot_id"]
                          for s in cli("-r", dst, "snapshots", "--json").json()),
              60, "the new snapshot to follow")
        print(f"follow copied the new snapshot {time.monotonic() - landed:.1f} s after it landed")
    finally:
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    events = [line for line in out.splitlines() if '"copied"' in line]
    assert len(events) == 2

    del cli.env["MEDARK_REPO"]  # no destination named: the passes recorded in the cache
    recorded = cli("copy", "--status", "--json").json()
    assert [(r["source"], r["destination"]) for r in recorded] == [(str(src), str(dst))]
    assert recorded[0]["age_seconds"] is not None and recorded[0]["age_seconds"] >= 0
    live = cli("-r", dst, "copy", "--status", "--from-repo", src, "--json").json()[0]
    assert live["pending"] == {"snapshots": 0, "records": 0}
    assert live["newest_point"] == live["source_newest"]
    cli("-r", src, "backup", data)
    behind = cli("-r", dst, "copy", "--status", "--from-repo", src, "--json").json()[0]
    assert behind["pending"]["snapshots"] == 1
    text = cli("copy", "--status").stdout
    assert str(dst) in text and "ago" in text


def test_upload_limit_is_honoured(two_repos: tuple[Cli, Path, Path], tmp_path: Path) -> None:
    """A lower bound only (a slow machine makes it slower, never faster)."""
    cli, src, dst = two_repos
    data = _tree(tmp_path / "data", files=8, size=500_000)
    cli("-r", src, "backup", data)
    started = time.monotonic()
    summary = cli("-r", dst, "copy", "--from-repo", src, "--limit-upload", "1024",
                  "--json").json_lines()[-1]
    elapsed = time.monotonic() - started
    floor = summary["bytes_stored"] / (1024 * 1024)
    assert elapsed >= floor * 0.95, (elapsed, summary["bytes_stored"])
    bad = cli("-r", dst, "copy", "--from-repo", src, "--limit-upload", "-5", check=False)
    assert bad.returncode == 2 and "KiB/s" in bad.stderr


URL = s3_server.endpoint()


@pytest.mark.skipif(URL is None, reason="moto's S3 server is not installed")
def test_copy_to_and_from_s3(cli: Cli, tmp_path: Path) -> None:
    assert URL is not None
    cli.env.update(s3_server.CREDENTIALS)
    local, remote, back = tmp_path / "local", s3_server.new_location(URL), tmp_path / "back"
    cli("-r", local, "init")
    cli("-r", remote, "init", "--cipher", "sm4-gcm")
    cli("-r", back, "init")
    data = _tree(tmp_path / "data", files=4)
    cli("-r", local, "backup", data)
    cli("-r", remote, "copy", "--from-repo", local)
    again = cli("-r", remote, "copy", "--from-repo", local, "--json").json_lines()[-1]
    assert again["snapshots_copied"] == 0
    cli("-r", remote, "check", "--read-data")
    cli("-r", back, "copy", "--from-repo", remote)  # the way back after losing the site
    _same_tree(data, _restored(cli, back, tmp_path / "out", data))
    # a copy of a copy remembers the first repository's id
    originals = {s["original"] for s in cli("-r", back, "snapshots", "--json").json()}
    assert originals == {s["id"] for s in cli("-r", local, "snapshots", "--json").json()}


def test_a_repository_sharing_the_key_takes_whole_packs(cli: Cli, tmp_path: Path) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    cli("-r", src, "init", "--cipher", "sm4-gcm")
    data = _tree(tmp_path / "data", files=30)
    cli("-r", src, "backup", data)
    pw = tmp_path / "pw-a"
    pw.write_text(PASSWORD + "\n")
    mismatch = cli("-r", dst, "init", "--same-key-as", src, "--cipher", "aes-256-gcm",
                   check=False)
    assert mismatch.returncode == 2 and "cipher suite" in mismatch.stderr
    made = cli("-r", dst, "init", "--same-key-as", src, "--from-password-file", pw,
               "--json", password="offsite password").json()
    assert made["cipher"] == "sm4-gcm"
    env_pw = dict(cli.env)
    cli.env["MEDARK_FROM_PASSWORD"] = PASSWORD
    first = cli("-r", dst, "copy", "--from-repo", src, "--json",
                password="offsite password").json_lines()[-1]
    assert first["snapshots_copied"] == 1 and first["packs_moved"] >= 2
    (data / "his.sql").write_text("UPDATE orders SET drug = 'warfarin';\n" * 1000)
    cli("-r", src, "backup", data)
    second = cli("-r", dst, "copy", "--from-repo", src, "--json",
                 password="offsite password").json_lines()[-1]
    assert second["snapshots_copied"] == 1 and second["bytes_read"] < 200_000
    cli.env = env_pw
    cli("-r", dst, "check", "--read-data", password="offsite password")
    ids_a = [s["tree"] for s in cli("-r", src, "snapshots", "--json").json()]
    ids_b = [s["tree"] for s in cli("-r", dst, "snapshots", "--json",
                                    password="offsite password").json()]
    assert ids_a == ids_b  # same ids: the trees came over unchanged
    cli("-r", dst, "restore", "latest", "--target", tmp_path / "out", "--verify",
        password="offsite password")
    _same_tree(data, tmp_path / "out" / str(data).lstrip("/"))


@pytest.mark.skipif(URL is None, reason="moto's S3 server is not installed")
def test_wal_records_reach_an_s3_copy_and_fetch_from_it(two_repos: tuple[Cli, Path, Path],
                                                        tmp_path: Path) -> None:
    """The WAL archive goes along (re-keyed), and `copy --follow` style passes pick up
    each new segment; PostgreSQL's restore_command can then read the offsite copy."""
    assert URL is not None
    cli, src, _dst = two_repos
    cli.env.update(s3_server.CREDENTIALS)
    remote = s3_server.new_location(URL)
    cli("-r", remote, "init", "--cipher", "sm4-gcm")
    system_id, segments = "7301234567890123456", []
    for i in range(3):
        seg = tmp_path / "pg_wal" / f"00000001000000000000000{i + 1}"
        seg.parent.mkdir(exist_ok=True)
        seg.write_bytes((os.urandom(200_000) + bytes(16 * 1024 * 1024))[:16 * 1024 * 1024])
        cli("-r", src, "pg", "wal-push", "--system-id", system_id, seg)
        segments.append(seg)
        summary = cli("-r", remote, "copy", "--from-repo", src, "--json").json_lines()[-1]
        assert summary["records_copied"] == 1 and summary["records_present"] == i
    status = cli("-r", remote, "copy", "--status", "--from-repo", src, "--json").json()[0]
    assert status["pending"] == {"snapshots": 0, "records": 0}
    for seg in segments:
        out = tmp_path / "fetched" / seg.name
        out.parent.mkdir(exist_ok=True)
        cli("-r", remote, "pg", "wal-fetch", "--system-id", system_id, seg.name, out)
        assert out.read_bytes() == seg.read_bytes()
