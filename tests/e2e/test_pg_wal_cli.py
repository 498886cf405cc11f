"""`medark pg wal-push` / `wal-fetch` as archive_command and restore_command see them:
idempotent, verified, conflicting content refused, exit codes PostgreSQL relies on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import MEDARK, PASSWORD, Cli

SYSTEM_ID = "7301234567890123456"
SEG = "000000010000000000000003"


def _wal(tmp_path: Path, name: str, seed: int, size: int = 16 * 1024 * 1024) -> Path:
    path = tmp_path / "pg_wal" / name
    path.parent.mkdir(exist_ok=True)
    block = os.urandom(300_000) + bytes([seed]) * 100
    path.write_bytes((block + bytes(size))[:size])  # WAL-like: data, then a zero tail
    return path


def test_push_then_fetch_round_trips_and_push_is_idempotent(initialized: Cli,
                                                            tmp_path: Path) -> None:
    seg = _wal(tmp_path, SEG, 1)
    first = initialized("pg", "wal-push", "--system-id", SYSTEM_ID, seg, "--json").json()
    assert first["stored"] is True and first["bytes"] == 16 * 1024 * 1024
    assert first["data_added_packed"] < 1_000_000  # the zero tail is one small blob
    again = initialized("pg", "wal-push", "--system-id", SYSTEM_ID, seg, "--json").json()
    assert again["stored"] is False  # a retry of archive_command succeeds, stores nothing
    out = tmp_path / "restored" / "RECOVERYXLOG"
    out.parent.mkdir()
    initialized("pg", "wal-fetch", "--system-id", SYSTEM_ID, SEG, out)
    assert out.read_bytes() == seg.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["RECOVERYXLOG"]  # no temp file left
    assert initialized("check", "--read-data").returncode == 0


def test_different_content_under_an_archived_name_is_refused(initialized: Cli,
                                                             tmp_path: Path) -> None:
    initialized("pg", "wal-push", "--system-id", SYSTEM_ID, _wal(tmp_path, SEG, 1))
    other = tmp_path / "other"
    other.mkdir()
    diverged = _wal(other, SEG, 2)
    result = initialized("pg", "wal-push", "--system-id", SYSTEM_ID, diverged, check=False)
    assert result.returncode == 25, result.stderr
    assert "already archived with different content" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_fetch_of_a_file_not_archived_exits_1(initialized: Cli, tmp_path: Path) -> None:
    result = initialized("pg", "wal-fetch", "--system-id", SYSTEM_ID, "00000002.history",
                         tmp_path / "x", check=False)
    assert result.returncode == 1
    assert "not in the archive" in result.stderr
    assert not (tmp_path / "x").exists()


def test_fetch_from_a_damaged_archive_exits_126_so_recovery_stops(initialized: Cli,
                                                                  tmp_path: Path) -> None:
    initialized("pg", "wal-push", "--system-id", SYSTEM_ID, _wal(tmp_path, SEG, 1))
    for pack in (initialized.repo / "data").rglob("*"):
        if pack.is_file():
            raw = bytearray(pack.read_bytes())
            raw[100] ^= 0x01
            pack.write_bytes(bytes(raw))
    result = initialized("pg", "wal-fetch", "--system-id", SYSTEM_ID, SEG, tmp_path / "x",
                         check=False)
    assert result.returncode == 126, result.stderr
    assert not (tmp_path / "x").exists()


def test_wal_push_reads_the_system_id_from_pg_control(initialized: Cli,
                                                      tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    (data_dir / "global").mkdir(parents=True)
    (data_dir / "global" / "pg_control").write_bytes(
        int(SYSTEM_ID).to_bytes(8, "little") + bytes(8184))
    seg = _wal(data_dir, SEG, 3)
    env = dict(initialized.env, MEDARK_PASSWORD=PASSWORD)
    done = subprocess.run([MEDARK, "pg", "wal-push", f"pg_wal/{SEG}"], cwd=data_dir, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "back"
    initialized("pg", "wal-fetch", "--system-id", SYSTEM_ID, SEG, out)
    assert out.read_bytes() == seg.read_bytes()


def test_names_postgres_never_archives_are_refused(initialized: Cli, tmp_path: Path) -> None:
    bogus = tmp_path / "postgresql.conf"
    bogus.write_text("x")
    result = initialized("pg", "wal-push", "--system-id", SYSTEM_ID, bogus, check=False)
    assert result.returncode == 2
    assert "not a WAL file" in result.stderr


def test_prune_keeps_archived_wal(initialized: Cli, tmp_path: Path) -> None:
    seg = _wal(tmp_path, SEG, 4)
    initialized("pg", "wal-push", "--system-id", SYSTEM_ID, seg)
    initialized("prune")
    out = tmp_path / "after-prune"
    initialized("pg", "wal-fetch", "--system-id", SYSTEM_ID, SEG, out)
    assert out.read_bytes() == seg.read_bytes()
