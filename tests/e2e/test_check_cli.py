"""End-to-end tests of `medark check`: a bit flipped in any stored file is found and named."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli


@pytest.fixture
def backed_up(initialized: Cli, tmp_path: Path) -> tuple[Cli, Path, str]:
    """A repository holding one snapshot of a small PACS-like tree: (cli, data, snapshot id)."""
    root = tmp_path / "data"
    rng = random.Random(7)
    (root / "pacs" / "study1").mkdir(parents=True)
    (root / "pacs" / "study1" / "img1.dcm").write_bytes(rng.randbytes(1_500_000))
    (root / "pacs" / "study1" / "img2.dcm").write_bytes(rng.randbytes(400_000))
    (root / "his").mkdir()
    (root / "his" / "dump.sql").write_text("INSERT INTO visits VALUES (42);\n" * 5000)
    summary = initialized("backup", root, "--json").json()
    return initialized, root, summary["snapshot_id"]


def flip_bit(path: Path, offset: int, bit: int = 3) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 1 << bit
    path.write_bytes(bytes(data))


def check_json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("check", "--json", *args, check=False)
    docs = result.json_lines()
    assert len(docs) == 1, "check --json prints exactly one document"
    assert docs[0]["message_type"] == "summary"
    return result.returncode, docs[0]


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_fresh_repository_passes(initialized: Cli) -> None:
    result = initialized("check")
    for phase in ("load indexes", "check all packs", "check snapshots, trees and blobs",
                  "no errors were found"):
        assert phase in result.stdout
    code, summary = check_json(initialized, "--read-data")
    assert (code, summary["num_errors"], summary["damaged"]) == (0, 0, [])


def test_backed_up_repository_passes_and_is_not_modified(backed_up: tuple[Cli, Path, str]) -> None:
    cli, _data, _snap = backed_up
    before = tree_digest(cli.repo)
    result = cli("check", "--read-data")
    assert "read all data" in result.stdout and "no errors were found" in result.stdout
    assert tree_digest(cli.repo) == before  # not even a lock file is left behind
    code, summary = check_json(cli, "--read-data")
    assert code == 0 and summary["packs_read"] == summary["packs"] > 0


def test_bit_flip_in_a_pack_names_pack_blob_snapshot_and_file(
    backed_up: tuple[Cli, Path, str],
) -> None:
    cli, data, snap = backed_up
    pack = max((cli.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file()
               else 0)  # the data pack (trees are packed apart and are small)
    flip_bit(pack, pack.stat().st_size // 3)

    assert cli("check").returncode == 0  # the header still agrees: structure is fine

    result = cli("check", "--read-data", check=False)
    assert result.returncode == 1
    assert pack.name in result.stdout + result.stderr
    assert snap[:8] in result.stdout
    files = {str(p) for p in data.rglob("*.dcm")} | {str(data / "his" / "dump.sql")}
    assert any(f in result.stdout for f in files)
    assert "the repository is damaged" in result.stderr

    code, summary = check_json(cli, "--read-data")
    assert code == 1 and summary["num_errors"] >= 1
    assert summary["broken_packs"] == [pack.name]
    assert summary["damaged"]
    for damage in summary["damaged"]:
        assert damage["pack"] == pack.name
        assert damage["snapshot"] == snap[:8]
        assert damage["path"] in files
        assert len(damage["blob"]) == 64


@pytest.mark.parametrize("folder", ["index", "snapshots"])
def test_bit_flip_in_metadata_is_named(backed_up: tuple[Cli, Path, str], folder: str) -> None:
    cli, _data, _snap = backed_up
    victim = sorted((cli.repo / folder).iterdir())[0]
    flip_bit(victim, random.Random(folder).randrange(victim.stat().st_size))
    for args in ((), ("--no-cache",)):
        result = cli("check", *args, check=False)
        assert result.returncode == 1
        assert victim.name in result.stderr
    code, summary = check_json(cli)
    assert code == 1
    assert f"{folder}/{victim.name}" in {e["object"] for e in summary["errors"]}


def test_no_cache_leaves_no_temporary_cache_behind(backed_up: tuple[Cli, Path, str],
                                                   tmp_path: Path) -> None:
    """--no-cache builds its index cache in a temporary directory, removed when the
    command ends, whether it found damage or not."""
    cli, _data, _snap = backed_up
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cli.env["TMPDIR"] = str(tmp)
    assert cli("check", "--no-cache", "--read-data").returncode == 0
    victim = sorted((cli.repo / "snapshots").iterdir())[0]
    flip_bit(victim, 40)
    assert cli("check", "--no-cache", check=False).returncode == 1
    assert list(tmp.iterdir()) == []


def test_bit_flip_in_a_key_file_is_named(backed_up: tuple[Cli, Path, str], tmp_path: Path) -> None:
    cli, _data, _snap = backed_up
    new_password = tmp_path / "new-password"
    new_password.write_text("second password\n")
    added = cli("key", "add", "--new-password-file", new_password, "--json").json()["id"]
    flip_bit(cli.repo / "keys" / added, 40)
    result = cli("check", check=False)
    assert result.returncode == 1
    assert f"keys/{added}" in result.stderr
    code, summary = check_json(cli)
    assert (code, [e["object"] for e in summary["errors"]]) == (1, [f"keys/{added}"])


def test_damaged_only_key_gives_exit_12_naming_the_key(initialized: Cli) -> None:
    key = next((initialized.repo / "keys").iterdir())
    flip_bit(key, 200)
    result = initialized("check", check=False)
    assert result.returncode == 12
    assert key.name in result.stderr


def test_wrong_password_exits_12(backed_up: tuple[Cli, Path, str]) -> None:
    cli, _data, _snap = backed_up
    result = cli("check", password="not the password", check=False)
    assert result.returncode == 12
    assert "wrong password" in result.stderr
    assert "Traceback" not in result.stderr


def test_read_data_subsets(backed_up: tuple[Cli, Path, str]) -> None:
    cli, _data, _snap = backed_up
    code, full = check_json(cli, "--read-data")
    read = [check_json(cli, "--read-data-subset", f"{n}/3")[1]["packs_read"] for n in (1, 2, 3)]
    assert code == 0 and sum(read) == full["packs_read"]
    code, some = check_json(cli, "--read-data-subset", "50%")
    assert code == 0 and 1 <= some["packs_read"] <= full["packs_read"]
    bad = cli("check", "--read-data-subset", "7/3", check=False)
    assert bad.returncode == 2 and "n/t" in bad.stderr
