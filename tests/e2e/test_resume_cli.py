"""Resume after an interruption (issue 18): a backup or a copy killed with SIGKILL at
about half of the data, then run again, sends no more than what had not landed plus 10 %
of the data; `check --read-data` passes; after `prune` nothing unreferenced is left and
the repository is at most 1.1 times the data.

The first run is paced with --limit-upload (a link of about 20 MB/s) so the kill lands
mid-run; X is what the repository holds at the kill (pack files under their final name),
the rerun's cost is what it adds. Data is incompressible, so stored bytes ≈ data bytes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import s3_server
from conftest import Cli
from medark_command import MEDARK, PASSWORD, TEST_KDF

FILES = 48
FILE_SIZE = 2 * 1024 * 1024
DATA = FILES * FILE_SIZE
PACE_KIB = "20000"
"""About 20 MB/s: the first run takes ~5 s, so a kill at half is easy to place."""
SLACK = 0.10
"""The issue's allowance: a rerun after a kill at X % sends at most (100 - X) % + 10 %."""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def data(base: Path) -> Path:
    root = base / "data"
    for i in range(FILES):
        sub = root / f"study{i % 6}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img{i:03}.dcm").write_bytes(os.urandom(FILE_SIZE))
    return root


@pytest.fixture(scope="module")
def env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF)
    env["MEDARK_CACHE_DIR"] = str(base / "cache")
    env["HOME"] = str(base / "home")
    return env


@pytest.fixture(scope="module")
def source(base: Path, env: dict[str, str], data: Path) -> Path:
    """A finished backup of the data: what the copies carry."""
    cli = Cli(base / "source", dict(env, MEDARK_REPO=str(base / "source")))
    cli("init")
    cli("backup", data)
    return base / "source"


def _local_packs(repo: Path) -> int:
    """Bytes of the pack files a local repository holds under their final names."""
    return sum(p.stat().st_size for p in (repo / "data").glob("*/*")
               if p.is_file() and not p.name.startswith("."))


def _local_total(repo: Path) -> int:
    """Every byte under the repository's directory, hidden temp files included."""
    return sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())


def _interrupted(args: list[str], env: dict[str, str], landed: Callable[[], int],
                 total: int = DATA, children: list[int] | None = None) -> int:
    """Start `medark args`, SIGKILL it once about half the data has landed; the bytes
    that had landed by then. `children`: filled with its child processes' ids."""
    proc = subprocess.Popen([MEDARK, *args, "--limit-upload", PACE_KIB],
                            env=dict(env, MEDARK_PASSWORD=PASSWORD),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while landed() < total // 2:
            assert proc.poll() is None, f"it ended before the kill: {proc.stderr}"
            assert time.monotonic() < deadline, "half of the data never landed"
            time.sleep(0.05)
        if children is not None:
            children.extend(_children(proc.pid))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    return landed()


def _children(pid: int) -> list[int]:
    """Child processes of `pid`, whichever of its threads started them."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def _clean_after_prune(cli: Cli, size: Callable[[], int], data: int = DATA) -> None:
    """`prune` leaves nothing unreferenced and at most 1.1 times the data; every
    snapshot's data still reads back."""
    cli("prune")
    doc = cli("check", "--read-data", "--json").json_lines()[0]
    assert doc["unreferenced_packs"] == [] and doc["errors"] == [], doc
    total = size()
    assert total <= 1.1 * data, total


def _within_target(before: int, after: int, data: int = DATA) -> None:
    done = before / data
    sent = (after - before) / data
    print(f"killed at {done:.1%}, the rerun sent {sent:.1%} of the data")
    assert 0.3 < done < 0.9, done  # about half (a loaded machine may overshoot)
    assert sent <= (1 - done) + SLACK, (done, sent)


def test_a_backup_killed_at_half_sends_only_the_rest(base: Path, env: dict[str, str],
                                                      data: Path) -> None:
    repo = base / "backup"
    cli = Cli(repo, dict(env, MEDARK_REPO=str(repo)))
    cli("init")
    before = _interrupted(["backup", str(data)], cli.env, lambda: _local_packs(repo))
    listed = cli("snapshots", "--json")  # the first command after the kill
    assert listed.json() == []
    assert "pack(s) an interrupted command stored" in listed.stderr  # indexed, not re-sent
    cli("backup", data)
    _within_target(before, _local_packs(repo))
    cli("check", "--read-data")
    assert list((repo / ".spool").iterdir())  # what the killed backup was filling
    # What a kill in the middle of writing an object leaves beside it (temp + link).
    pack = next((repo / "data").rglob("*[0-9a-f]"))
    (pack.parent / f".{pack.name}.tmp-0123456789ab").write_bytes(b"half a pack")
    (repo / "index" / ".x.tmp-0123456789ab").write_bytes(b"half an index")
    _clean_after_prune(cli, lambda: _local_total(repo))
    assert [p for p in repo.rglob(".*") if p.is_file()] == []  # spool files removed


SMALL_FILES, SMALL_SIZE = 12_000, 8 * 1024
SMALL_DATA = SMALL_FILES * SMALL_SIZE


def test_a_backup_of_small_files_killed_at_half_sends_only_the_rest(
        base: Path, env: dict[str, str]) -> None:
    """Past its first 2,048 small files a backup reads and packs them in reader
    processes: killed at half, the packs they had handed over count, the ones they were
    filling go with them (they exit on their own), and the rerun sends only the rest."""
    data = base / "documents"
    for i in range(SMALL_FILES):
        sub = data / f"folder{i % 40:02}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc{i:05}.pdf").write_bytes(os.urandom(SMALL_SIZE))
    repo = base / "small"
    cli = Cli(repo, dict(env, MEDARK_REPO=str(repo)))
    cli("init")
    children: list[int] = []
    before = _interrupted(["backup", str(data)], cli.env, lambda: _local_packs(repo),
                          SMALL_DATA, children)
    assert len(children) == 2, children  # the reader processes were at work
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in children):
        assert time.monotonic() < deadline, "a reader process outlived its backup"
        time.sleep(0.05)
    cli("backup", data)
    _within_target(before, _local_packs(repo), SMALL_DATA)
    restored = base / "small-restored"
    cli("restore", "latest", "--target", restored)
    for path in list(data.rglob("*.pdf"))[::997]:
        assert (restored / path.relative_to("/")).read_bytes() == path.read_bytes()
    _clean_after_prune(cli, lambda: _local_total(repo), SMALL_DATA)


def _running(pid: int) -> bool:
    """Not a zombie (an exited child its killed parent never reaped, until init does)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_copy_killed_at_half_sends_only_the_rest(base: Path, env: dict[str, str],
                                                   source: Path) -> None:
    repo = base / "copy"
    cli = Cli(repo, dict(env, MEDARK_REPO=str(repo)))
    cli("init")
    before = _interrupted(["copy", "--from-repo", str(source)], cli.env,
                          lambda: _local_packs(repo))
    cli("copy", "--from-repo", source)
    _within_target(before, _local_packs(repo))
    _clean_after_prune(cli, lambda: _local_total(repo))


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    url = s3_server.endpoint()
    if url is None:
        pytest.skip("moto's S3 server is not installed")
    yield url


def _s3_bytes(url: str, location: str, prefix: str, whole: bool = False) -> int:
    """Bytes of the objects under `prefix`; `whole`: also no unfinished multipart upload
    (storage too, though no listing shows it)."""
    import boto3

    bucket, root = location.removeprefix(f"s3:{url}/").split("/", 1)
    client = boto3.client("s3", endpoint_url=url, **_boto_credentials())
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{root}/{prefix}"):
        total += sum(int(item["Size"]) for item in page.get("Contents", []))
    if whole:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert not uploads, "an unfinished multipart upload is left"
    return total


def _boto_credentials() -> dict[str, str]:
    c = s3_server.CREDENTIALS
    return {"aws_access_key_id": c["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": c["AWS_SECRET_ACCESS_KEY"],
            "region_name": c["AWS_DEFAULT_REGION"]}


def test_a_copy_to_s3_killed_at_half_sends_only_the_rest(env: dict[str, str], source: Path,
                                                         s3_url: str) -> None:
    location = s3_server.new_location(s3_url)
    temp = Path(env["HOME"]) / "tmp"
    temp.mkdir(parents=True)
    cli = Cli(Path("/nonexistent"), dict(env, MEDARK_REPO=location, TMPDIR=str(temp),
                                         **s3_server.CREDENTIALS))
    cli("init")
    before = _interrupted(["copy", "--from-repo", str(source)], cli.env,
                          lambda: _s3_bytes(s3_url, location, "data/"))
    spool = Path(env["MEDARK_CACHE_DIR"]).glob("*/spool/*/*")
    assert any(spool), "the killed copy spooled its packs under the cache directory"
    cli("copy", "--from-repo", source)
    _within_target(before, _s3_bytes(s3_url, location, "data/"))
    # The rerun swept the killed run's spool and removed its own; the temp dir is clean.
    assert [p.name for p in Path(env["MEDARK_CACHE_DIR"]).glob("*/spool/*")] == []
    assert list(temp.iterdir()) == []
    _clean_after_prune(cli, lambda: _s3_bytes(s3_url, location, "", whole=True))


def test_a_stored_pack_is_indexed_on_time_while_the_writer_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint's deadline holds with no further call into the repository (all
    workers blocked on an upload slot): a timer writes the index, not the next blob."""
    from medark.repo import repository
    from medark.repo.compression import CompressionSpec
    from medark.repo.pack import BlobType
    from medark.storage.local import LocalBackend

    monkeypatch.setattr(repository, "INDEX_EVERY_SECONDS", 2.0)
    repo = repository.Repository.init(LocalBackend(tmp_path / "repo"), PASSWORD.encode(),
                                      "aes-256-gcm", CompressionSpec("zstd", 3),
                                      cache_dir=tmp_path / "cache")
    try:
        while repo.stats.packs_written == 0:  # one pack, landed less than 2 s in
            repo.save_blob(BlobType.DATA, os.urandom(4 * 1024 * 1024))
            time.sleep(0.01)
        deadline = time.monotonic() + 60
        while not repo.index_names():  # nothing else is saved meanwhile
            assert time.monotonic() < deadline, "the stored pack was never indexed"
            time.sleep(0.05)
    finally:
        repo.close()
