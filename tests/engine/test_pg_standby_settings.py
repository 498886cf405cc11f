"""What `pg restore --standby` writes into a data directory: standby.signal, no recovery
target, no streaming source, archiving only once promoted; and a restore_command that
serves the spool once, then the repository, and never exits 126 on a standby."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import MEDARK

from medark.engine.pg_restore import RecoverySettings, recovery_lines, write_recovery_config
from medark.engine.pg_window import Target
from medark.service.pg import restore_command_line


def _standby_settings() -> RecoverySettings:
    return RecoverySettings("medark pg wal-fetch %f %p", Target("latest"), 5433,
                            standby=True, archive_command="medark pg wal-push %p")


def test_a_standby_has_no_target_and_no_stream() -> None:
    lines = recovery_lines(_standby_settings())
    text = "\n".join(lines)
    assert "recovery_target_timeline = 'latest'" in lines
    assert "primary_conninfo = ''" in lines and "primary_slot_name = ''" in lines
    assert "hot_standby = on" in lines
    # it archives once promoted (a standby with archive_mode on archives nothing before)
    assert "archive_mode = 'on'" in lines
    assert "archive_command = 'medark pg wal-push %p'" in lines
    assert "recovery_target_action" not in text
    assert not [ln for ln in lines if ln.startswith("recovery_target ")]


def test_archive_mode_off_wins() -> None:
    lines = recovery_lines(RecoverySettings("x", Target("latest"), standby=True,
                                            archive_mode_off=True,
                                            archive_command="medark pg wal-push %p"))
    assert "archive_mode = 'off'" in lines
    assert not [ln for ln in lines if ln.startswith("archive_command")]


def test_a_target_restore_is_unchanged() -> None:
    lines = recovery_lines(RecoverySettings("x", Target("immediate")))
    assert "recovery_target = 'immediate'" in lines
    assert "recovery_target_action = 'promote'" in lines
    assert not [ln for ln in lines if ln.startswith("primary_conninfo")]


def test_standby_signal_replaces_recovery_signal(tmp_path: Path) -> None:
    (tmp_path / "recovery.signal").write_text("")
    write_recovery_config(str(tmp_path), _standby_settings())
    assert (tmp_path / "standby.signal").exists()
    assert not (tmp_path / "recovery.signal").exists()
    assert "primary_conninfo = ''" in (tmp_path / "postgresql.auto.conf").read_text()


def test_the_standby_restore_command_falls_back_to_the_repository() -> None:
    command = restore_command_line("medark", "s3:http://h/b/r", "/pw", "7301234567890123456",
                                   None, "/data.medark-wal", standby=True)
    # served once from the spool, then (prefetch finished) from the repository
    assert command.startswith("if [ -f /data.medark-wal/%f ]; then cp /data.medark-wal/%f %p "
                              "&& rm -f /data.medark-wal/%f;")
    assert command.endswith("pg wal-fetch --system-id 7301234567890123456 --standby %f %p; fi")
    assert ".prefetch-complete" not in command  # a complete spool is not the end for it
    plain = restore_command_line("medark", "/repo", "/pw", "7301234567890123456", None,
                                 standby=True)
    assert plain == ("medark --repo /repo --password-file /pw pg wal-fetch --system-id "
                     "7301234567890123456 --standby %f %p")


@pytest.mark.parametrize(("goal", "message"), [
    (["--standby", "--time", "2026-01-01T00:00:00Z"], "takes no --time"),
    ([], "give a recovery target"),
])
def test_restore_goals_are_checked(tmp_path: Path, goal: list[str], message: str) -> None:
    done = subprocess.run([MEDARK, "--repo", str(tmp_path / "repo"), "pg", "restore",
                           "--target-dir", str(tmp_path / "t"), *goal],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_standby_miss_is_silent_exit_1(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    done = subprocess.run([MEDARK, "pg", "wal-fetch", "--system-id", "7301234567890123456",
                           "--standby", "--spool", str(spool), "000000010000000000000009",
                           str(tmp_path / "out")], capture_output=True, text=True,
                          check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 1 and done.stderr == ""
    (spool / ".prefetch-failed").write_text("the S3 endpoint timed out")
    (spool / ".prefetching").write_text("")
    failed = subprocess.run([MEDARK, "pg", "wal-fetch", "--system-id", "7301234567890123456",
                             "--standby", "--spool", str(spool), "000000010000000000000009",
                             str(tmp_path / "out")], capture_output=True, text=True,
                            check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert failed.returncode == 1, failed.stderr  # not 126: the standby keeps running
    assert "the standby retries" in failed.stderr
