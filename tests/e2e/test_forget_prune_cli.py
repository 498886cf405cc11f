"""End-to-end: `medark forget` and `medark prune` through the real command."""

from __future__ import annotations

import filecmp
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PASSWORD, TEST_KDF, Cli

from medark.engine import prune as prune_module
from medark.engine.prune import repack, write_index
from medark.engine.prune_plan import plan_prune
from medark.repo.repository import Repository
from medark.storage.local import LocalBackend


def write_random(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))


def make_data(root: Path) -> Path:
    write_random(root / "pacs" / "a.dcm", 400_000, 1)
    write_random(root / "pacs" / "b.dcm", 1_500_000, 2)
    (root / "db").mkdir()
    (root / "db" / "dump.sql").write_text("INSERT INTO t VALUES (1);\n" * 5000)
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_data(tmp_path / "data")


def change(data: Path) -> None:
    (data / "pacs" / "a.dcm").unlink()
    write_random(data / "pacs" / "b.dcm", 1_200_000, 3)
    write_random(data / "pacs" / "c.dcm", 300_000, 4)


def listing(repo: Path) -> dict[str, int]:
    """Every stored object (locks come and go with each command, so they are left out)."""
    return {str(p.relative_to(repo)): p.stat().st_size for p in repo.rglob("*")
            if p.is_file() and p.relative_to(repo).parts[0] != "locks"}


def repo_size(repo: Path) -> int:
    return sum(listing(repo).values())


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A repository with two backups of one directory (changed in between), built once
    per module and copied for each test; returns (repository, data directory)."""
    base = tmp_path_factory.mktemp("template")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_REPO=str(base / "repo"),
               MEDARK_CACHE_DIR=str(base / "cache"))
    cli = Cli(base / "repo", env)
    data = make_data(base / "data")
    cli("init")
    cli("backup", data)
    change(data)
    cli("backup", data)
    return base / "repo", data


@pytest.fixture
def two_backups(cli: Cli, template: tuple[Path, Path]) -> Iterator[Cli]:
    shutil.copytree(template[0], cli.repo)
    yield cli


def test_forget_keep_last_prune_shrinks_and_checks(
    two_backups: Cli, template: tuple[Path, Path], tmp_path: Path
) -> None:
    cli, data = two_backups, template[1]
    before = repo_size(cli.repo)
    out = cli("forget", "--keep-last", "1", "--prune").stdout
    assert "keep 1 snapshots" in out and "remove 1 snapshots" in out
    assert "last snapshot" in out and "freed" in out
    assert repo_size(cli.repo) < before - 300_000
    assert len(cli("snapshots", "--json").json()) == 1
    check = cli("check", "--read-data", "--json").json()
    assert check["num_errors"] == 0 and check["unreferenced_packs"] == []
    cli("restore", "latest", "--target", tmp_path / "out")
    restored = tmp_path / "out" / data.relative_to("/")
    cmp = filecmp.dircmp(data, restored)
    assert not cmp.left_only and not cmp.right_only
    for sub in ("pacs", "db"):
        d = filecmp.dircmp(data / sub, restored / sub)
        _match, mismatch, errors = filecmp.cmpfiles(data / sub, restored / sub, d.common_files,
                                                    shallow=False)
        assert not mismatch and not errors


def test_forget_dry_run_changes_nothing(two_backups: Cli) -> None:
    cli = two_backups
    before = listing(cli.repo)
    out = cli("forget", "--keep-last", "1", "--dry-run", "--prune").stdout
    assert "would remove 1 snapshot" in out
    assert "dry run, nothing changed" in out
    assert listing(cli.repo) == before


def test_prune_with_nothing_to_do_changes_nothing(two_backups: Cli) -> None:
    cli = two_backups
    before = listing(cli.repo)
    assert "nothing to prune" in cli("prune").stdout
    summary = cli("prune", "--json").json()
    assert summary["removed"]["packs"] == 0 and summary["bytes_freed"] == 0
    assert listing(cli.repo) == before


def test_prune_dry_run_json(two_backups: Cli) -> None:
    cli = two_backups
    cli("forget", "--keep-last", "1")
    before = listing(cli.repo)
    doc = cli("prune", "--dry-run", "--json").json()
    assert doc["dry_run"] is True and doc["bytes_freed"] > 0
    assert doc["unused"]["blobs"] > 0
    assert listing(cli.repo) == before
    doc = cli("prune", "--max-unused", "0%", "--json").json()
    assert doc["dry_run"] is False and doc["unused_bytes_after"] == 0
    assert cli("check").returncode == 0


def test_forget_json_has_restic_shape(two_backups: Cli, template: tuple[Path, Path]) -> None:
    cli = two_backups
    groups = cli("forget", "--keep-last", "1", "--json").json()
    assert isinstance(groups, list) and len(groups) == 1
    group = groups[0]
    assert set(group) >= {"tags", "host", "paths", "keep", "remove", "reasons"}
    assert group["tags"] is None and group["paths"] == [str(template[1])]
    assert len(group["keep"]) == 1 and len(group["remove"]) == 1
    assert group["reasons"][0]["matches"] == ["last snapshot"]
    assert group["reasons"][0]["snapshot"]["id"] == group["keep"][0]["id"]
    assert group["remove_reasons"][0]["reasons"] == ["last: all 1 kept already"]
    remaining = cli("snapshots", "--json").json()
    assert [s["id"] for s in remaining] == [group["keep"][0]["id"]]


def test_forget_prune_json_is_two_documents(two_backups: Cli) -> None:
    lines = two_backups("forget", "--keep-last", "1", "--prune", "--json").json_lines()
    assert isinstance(lines[0], list)
    assert lines[1]["message_type"] == "summary" and lines[1]["bytes_freed"] > 0


def test_forget_by_id_and_groups(initialized: Cli, data: Path, tmp_path: Path) -> None:
    cli = initialized
    first = cli("backup", data, "--json", "--tag", "audit").json()["snapshot_id"]
    other = tmp_path / "other"
    write_random(other / "x", 1000, 9)
    cli("backup", other, "--json")
    cli("backup", data, "--json")
    # per (host, paths) group: keep the newest of each; the audit-tagged one by tag
    groups = cli("forget", "--keep-last", "1", "--keep-tag", "audit", "--json").json()
    assert len(groups) == 2
    assert all(not g["remove"] for g in groups)
    reasons = {tuple(r["matches"]) for g in groups for r in g["reasons"]}
    assert ("has tags [audit]",) in reasons
    # one group for everything: the audit one is still kept, the other-path one removed
    groups = cli("forget", "--keep-last", "1", "--keep-tag", "audit", "--group-by", "",
                 "--json").json()
    assert len(groups) == 1 and len(groups[0]["remove"]) == 1
    assert len(cli("snapshots", "--json").json()) == 2
    out = cli("forget", first[:8]).stdout
    assert "removed 1 snapshot" in out
    assert first not in {s["id"] for s in cli("snapshots", "--json").json()}


def test_forget_without_policy_removes_nothing(two_backups: Cli) -> None:
    out = two_backups("forget").stdout
    assert "no policy was specified" in out
    assert two_backups("forget", "--json").json() == []
    assert len(two_backups("snapshots", "--json").json()) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--keep-last", "-5"], "negative values"),
    (["--keep-daily", "many"], "not a number"),
    (["--keep-within", "7days"], "invalid duration"),
    (["--keep-last", "1", "--max-unused", "150%"], "between 0% and 100%"),
    (["--keep-last", "1", "--group-by", "colour"], "unknown field"),
    (["deadbeef"], "no snapshot with id"),
])
def test_bad_input_gets_one_line(initialized: Cli, args: list[str], message: str) -> None:
    result = initialized("forget", *args, check=False)
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_prune_refuses_while_locked(two_backups: Cli, tmp_path: Path) -> None:
    repo = Repository.open(LocalBackend(two_backups.repo), PASSWORD.encode(), tmp_path / "c2")
    held = repo.lock(False, "backup", lambda _line: None)
    try:
        result = two_backups("prune", check=False)
        assert result.returncode == 11 and "locked" in result.stderr
    finally:
        held.release()
        repo.close()


class Crash(Exception):
    pass


@pytest.mark.parametrize("where", ["after_index", "mid_index"])
def test_interrupted_prune_leaves_a_repository_that_checks(
    two_backups: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Stop prune after writing its new index (old index files still there), or after the
    first of several new index files; `check --read-data` passes either way."""
    cli = two_backups
    cli("forget", "--keep-last", "1")
    repo = Repository.open(LocalBackend(cli.repo), PASSWORD.encode(), tmp_path / "c2")
    if where == "mid_index":
        monkeypatch.setattr(prune_module, "MAX_BLOBS_PER_INDEX_FILE", 1)
        saved: list[str] = []
        real_save = repo.save_unpacked

        def save_then_crash(prefix: str, plaintext: bytes) -> str:
            if saved:
                raise Crash()
            saved.append(real_save(prefix, plaintext))
            return saved[-1]

        monkeypatch.setattr(repo, "save_unpacked", save_then_crash)
    try:
        plan = plan_prune(repo, max_unused=0.0)
        try:
            write_index(repo, plan, repack(repo, plan))
        except Crash:
            pass
        finally:
            plan.close()
    finally:
        repo.close()
    check = cli("check", "--read-data", "--json").json()
    assert check["num_errors"] == 0
    cli("prune")
    check = cli("check", "--read-data", "--json").json()
    assert check["num_errors"] == 0 and check["unreferenced_packs"] == [] and not check["notes"]


def test_help_texts(cli: Cli) -> None:
    assert "--keep-within-daily" in cli("forget", "--help").stdout
    assert "--max-unused PERCENT" in cli("prune", "--help").stdout


def test_forget_never_undercuts_the_medical_record_minimum(initialized: Cli,
                                                         tmp_path: Path) -> None:
    """A snapshot holding inpatient records is the newest of its year: neither a policy
    nor its id removes it; an untagged one goes."""
    data = tmp_path / "emr"
    data.mkdir()
    (data / "case.xml").write_bytes(os.urandom(5000))
    records = initialized("backup", data, "--tag", "records=inpatient", "--json")
    plain = initialized("backup", tmp_path / "emr", "--tag", "scratch", "--json")
    record_id = records.json_lines()[-1]["snapshot_id"]
    plain_id = plain.json_lines()[-1]["snapshot_id"]
    by_id = initialized("forget", record_id[:8], plain_id[:8])
    assert f"snapshot {record_id[:8]} kept: inpatient medical records: newest of" in \
        by_id.stdout
    left = [s["id"] for s in initialized("snapshots", "--json").json()]
    assert left == [record_id]
    initialized("forget", "--keep-last", "0", "--keep-tag", "nothing", "--prune")
    assert [s["id"] for s in initialized("snapshots", "--json").json()] == [record_id]


# ---- fail closed: damaged hold markers and locks (issue 13) -----------------------------


def _overwrite_middle(path: Path) -> None:
    """Bit rot: the file keeps its name and size, some bytes in the middle change."""
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 8] = bytes(b ^ 0x5A for b in raw[middle:middle + 8])
    path.write_bytes(bytes(raw))


def test_a_damaged_hold_marker_keeps_every_snapshot(two_backups: Cli) -> None:
    cli = two_backups
    older, newer = (s["id"] for s in cli("snapshots", "--json").json())
    cli("snapshot", "hold", older, "--reason", "case 2026-31")
    (marker_file,) = (cli.repo / "holds").iterdir()
    marker = f"holds/{marker_file.name}"
    _overwrite_middle(marker_file)
    before = listing(cli.repo)

    forget = cli("forget", "--keep-last", "1", "--prune", check=False)
    assert forget.returncode == 1, forget.stderr
    assert (f"snapshot {older[:8]} kept: hold marker {marker} cannot be read or verified"
            in forget.stdout)
    assert "`medark check`" in forget.stdout and "running prune" not in forget.stdout
    (error,) = forget.stderr.strip().splitlines()
    assert marker in error and "forget removes nothing" in error
    assert listing(cli.repo) == before
    assert {s["id"] for s in cli("snapshots", "--json").json()} == {older, newer}

    explicit = cli("forget", older, check=False)
    assert explicit.returncode == 1 and marker in explicit.stdout

    prune = cli("prune", check=False)
    assert prune.returncode == 1 and "Traceback" not in prune.stderr
    (error,) = prune.stderr.strip().splitlines()
    assert marker in error and "prune deletes nothing" in error
    assert listing(cli.repo) == before

    check = cli("check", check=False)
    assert check.returncode == 1 and f"error: hold marker {marker}" in check.stderr
    doc = cli("check", "--json", check=False).json_lines()[0]
    assert [(e["kind"], e["object"]) for e in doc["errors"]] == [("hold", marker)]
    assert marker in cli("snapshot", "status").stderr

    # The documented way out: hold again what must stay held, then remove the damaged file.
    cli("snapshot", "hold", older, "--reason", "case 2026-31")
    marker_file.unlink()
    kept = cli("forget", "--keep-last", "1").stdout
    assert f"snapshot {older[:8]} is under legal hold since" in kept
    cli("check")


def test_an_unreadable_lock_stops_prune(two_backups: Cli, tmp_path: Path) -> None:
    cli = two_backups
    repo = Repository.open(LocalBackend(cli.repo), PASSWORD.encode(), tmp_path / "c2")
    held = repo.lock(False, "backup", lambda _line: None)
    held._stop.set()  # as if the process were killed: the lock stays behind
    repo.close()
    lock_file = cli.repo / held.name
    _overwrite_middle(lock_file)
    before = listing(cli.repo)

    prune = cli("prune", check=False)
    assert prune.returncode == 11, prune.stderr
    (error,) = prune.stderr.strip().splitlines()
    assert f"lock {held.name} cannot be read or verified" in error
    assert "`medark unlock --remove-all`" in error
    assert listing(cli.repo) == before
    assert cli("forget", "--keep-last", "1", check=False).returncode == 11

    check = cli("check")  # a warning, not damage: exit 0
    assert f"warning: lock {held.name} cannot be read or verified" in check.stdout
    note = next(n for n in cli("check", "--json").json_lines()[0]["notes"]
                if n["kind"] == "lock")
    assert note["object"] == held.name

    kept = cli("unlock").stdout  # only stale locks it can read: this one stays, named
    assert lock_file.exists()
    assert f"kept lock {held.name} cannot be read or verified" in kept
    assert "--remove-all removes it" in kept
    assert "removed unreadable lock" in cli("unlock", "--remove-all").stdout
    cli("prune")
