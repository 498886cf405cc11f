"""`medark pg backup` waiting for its WAL says so: one line on stderr when the wait
begins, naming the segments, the longest it will wait and who should deliver them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD, TEST_KDF
from pg_server import PgServer, can_run_servers, free_port, make_base, pg_bin

pytestmark = pytest.mark.skipif(can_run_servers() is not None,
                                reason=str(can_run_servers()))

SEGMENT = r"[0-9A-F]{24}"


@pytest.fixture
def silent_archive() -> Iterator[PgServer]:
    """A server whose archive_command claims to run `wal-push` but archives nothing: the
    backup's WAL never reaches the repository, so the backup waits its whole timeout."""
    base = make_base()
    bin_dir = pg_bin()
    assert bin_dir is not None
    server = PgServer(base, free_port(), bin_dir, settings={
        "archive_mode": "on", "archive_command": "'/bin/true wal-push %p'"})
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_pg_backup_says_once_what_wal_it_waits_for_and_how_long(
        silent_archive: PgServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_PASSWORD=PASSWORD, MEDARK_REPO=str(tmp_path / "repo"),
               MEDARK_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([MEDARK, "init"], env=env, check=True, capture_output=True)

    done = subprocess.run([MEDARK, "pg", "backup", "--dsn", silent_archive.dsn,
                           "--archive-timeout", "3"], env=env, capture_output=True,
                          text=True, check=False, timeout=300)

    assert done.returncode == 23, done.stderr  # WalGap: the WAL never arrived
    waiting = [line for line in done.stderr.splitlines() if line.startswith("waiting")]
    assert len(waiting) == 1, done.stderr
    assert re.fullmatch(rf"waiting up to 3 s for WAL segments? {SEGMENT}(\.\.{SEGMENT})? "
                        r"to be archived \(archive_command\)", waiting[0]), waiting
    segment = re.findall(SEGMENT, waiting[0])[0]
    assert segment in done.stderr.split(waiting[0], 1)[1]  # the failure names it too
    assert done.stderr.index(waiting[0]) < done.stderr.index("did not reach the archive")
