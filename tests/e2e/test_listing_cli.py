"""snapshots, ls, diff, find and stats through the real `medark` command, after real backups."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_KDF, Cli


@dataclass
class Repo:
    cli: Cli
    src: Path
    first: str
    second: str


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """Two snapshots of a small PACS tree: the second changes, adds and removes a file.
    Built once for the module: every test here only reads it."""
    tmp_path = tmp_path_factory.mktemp("listing")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_")}
    env.update(TEST_KDF, MEDARK_REPO=str(tmp_path / "repo"),
               MEDARK_CACHE_DIR=str(tmp_path / "cache"))
    initialized = Cli(tmp_path / "repo", env)
    initialized("init")
    src = tmp_path / "src"
    (src / "pacs" / "s1").mkdir(parents=True)
    (src / "pacs" / "s2").mkdir()
    (src / "pacs" / "s1" / "IM1.dcm").write_bytes(b"CT" * 5000)
    (src / "pacs" / "s2" / "IM2.DCM").write_bytes(b"MR" * 3000)
    (src / "notes.txt").write_text("hello\n")
    (src / "old.log").write_text("gone soon\n")
    (src / "link").symlink_to("notes.txt")
    first = initialized("backup", src, "--tag", "nightly", "--json").json()["snapshot_id"]
    (src / "notes.txt").write_text("hello again\n")
    (src / "old.log").unlink()
    (src / "pacs" / "s3").mkdir()
    (src / "pacs" / "s3" / "IM3.dcm").write_bytes(b"US" * 100)
    second = initialized("backup", src, "--json").json()["snapshot_id"]
    return Repo(initialized, src, first, second)


def test_snapshots_json_has_restic_fields_and_filters(repo: Repo) -> None:
    cli = repo.cli
    snaps = cli("snapshots", "--json").json()
    assert [s["id"] for s in snaps] == [repo.first, repo.second]
    for field in ("id", "short_id", "time", "hostname", "username", "paths", "tags", "tree",
                  "parent", "program_version", "summary"):
        assert field in snaps[0]
    assert snaps[0]["short_id"] == repo.first[:8] and snaps[0]["time"].endswith("Z")
    assert [s["id"] for s in cli("snapshots", "--tag", "nightly", "--json").json()] == [
        repo.first]
    assert cli("snapshots", "--host", "no-such-host", "--json").json() == []
    assert [s["id"] for s in cli("snapshots", "--latest", "1", "--json").json()] == [
        repo.second]
    assert [s["id"] for s in cli("snapshots", repo.first[:6], "--json").json()] == [
        repo.first]


def test_snapshots_table(repo: Repo) -> None:
    lines = repo.cli("snapshots").stdout.splitlines()
    assert lines[0].split() == ["ID", "Time", "Host", "Tags", "Paths", "Size"]
    assert lines[2].startswith(repo.first[:8]) and "nightly" in lines[2]
    assert str(repo.src) in lines[2]
    assert lines[-1] == "2 snapshots"


def test_ls_text_long_and_json(repo: Repo) -> None:
    cli, src = repo.cli, repo.src
    paths = cli("ls", "latest").stdout.splitlines()
    assert f"{src}/pacs/s3/IM3.dcm" in paths and f"{src}/old.log" not in paths
    assert paths.index(f"{src}/pacs") < paths.index(f"{src}/pacs/s1/IM1.dcm")
    top = cli("ls", repo.first[:8], f"{src}/pacs").stdout.splitlines()
    assert top == [f"{src}/pacs", f"{src}/pacs/s1", f"{src}/pacs/s2"]
    long = cli("ls", "-l", "latest", f"{src}").stdout.splitlines()
    link = next(line for line in long if line.endswith(" -> notes.txt"))
    assert link.startswith("lrwxrwxrwx")
    notes = next(line for line in long if line.endswith("/notes.txt"))
    assert notes.startswith("-rw") and " 12 " in notes
    lines = cli("ls", "--json", "latest", f"{src}/pacs", "--recursive").json_lines()
    assert lines[0]["message_type"] == "snapshot" and lines[0]["id"] == repo.second
    nodes = {n["path"]: n for n in lines[1:]}
    assert set(nodes) == {f"{src}/pacs{p}" for p in (
        "", "/s1", "/s1/IM1.dcm", "/s2", "/s2/IM2.DCM", "/s3", "/s3/IM3.dcm")}
    im1 = nodes[f"{src}/pacs/s1/IM1.dcm"]
    assert im1["struct_type"] == "node" and im1["type"] == "file" and im1["size"] == 10000
    assert nodes[f"{src}/pacs"]["permissions"].startswith("d")


def test_ls_bad_input_is_one_line(repo: Repo) -> None:
    missing = repo.cli("ls", "latest", "/no/such/dir", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"medark: /no is not in snapshot {repo.second[:8]}")
    relative = repo.cli("ls", "latest", "relative/dir", check=False)
    assert relative.returncode == 2 and len(relative.stderr.strip().splitlines()) == 1
    unknown = repo.cli("ls", "deadbeef", check=False)
    assert unknown.returncode == 1 and "no snapshot with id 'deadbeef'" in unknown.stderr
    assert "Traceback" not in missing.stderr + relative.stderr + unknown.stderr


def test_diff_text_and_json(repo: Repo) -> None:
    cli, src = repo.cli, repo.src
    out = cli("diff", repo.first[:8], "latest").stdout
    assert f"M    {src}/notes.txt\n" in out
    assert f"-    {src}/old.log\n" in out
    assert f"+    {src}/pacs/s3/\n" in out and f"+    {src}/pacs/s3/IM3.dcm\n" in out
    assert "IM1.dcm" not in out  # unchanged series are not even loaded
    assert "Files:           1 new,     1 removed,     1 changed" in out
    records = cli("diff", repo.first, repo.second, "--json").json_lines()
    changes = {r["path"]: r["modifier"] for r in records if r["message_type"] == "change"}
    assert changes[f"{src}/notes.txt"] == "M" and changes[f"{src}/old.log"] == "-"
    stats = records[-1]
    assert stats["message_type"] == "statistics"
    assert stats["source_snapshot"] == repo.first and stats["target_snapshot"] == repo.second
    assert stats["changed_files"] == 1 and stats["added"]["files"] == 1
    assert stats["added"]["dirs"] == 1 and stats["removed"]["files"] == 1
    assert stats["added"]["bytes"] > 0
    meta = cli("diff", repo.first, repo.second, "--metadata", "--json").json_lines()
    assert {"path": f"{src}/", "modifier": "U", "message_type": "change"} in meta
    sub = cli("diff", f"{repo.first}:{src}/pacs", f"{repo.second}:{src}/pacs").stdout
    assert "+    /s3/IM3.dcm" in sub and "notes" not in sub


def test_find_text_and_json(repo: Repo) -> None:
    cli, src = repo.cli, repo.src
    text = cli("find", "*.dcm").stdout
    assert text.count("Found matching entries in snapshot") == 2
    assert f"{src}/pacs/s1/IM1.dcm" in text and "IM2.DCM" not in text
    found = cli("find", "*.dcm", "--ignore-case", "--json").json()
    assert [r["snapshot"] for r in found] == [repo.first, repo.second]
    assert [r["hits"] for r in found] == [2, 3]
    match = found[1]["matches"][0]
    assert set(match) >= {"path", "type", "size", "mtime", "permissions"}
    only_latest = cli("find", "--snapshot", "latest", "s3/*", "--json").json()
    assert [m["path"] for r in only_latest for m in r["matches"]] == [f"{src}/pacs/s3/IM3.dcm"]
    assert cli("find", "nothing-like-this", "--json").json() == []
    assert "no matches in 2 snapshots" in cli("find", "nothing-like-this").stdout


def test_stats_modes_and_repository_block(repo: Repo) -> None:
    cli = repo.cli
    latest = cli("stats", "latest", "--json").json()
    expected = sum(p.stat().st_size for p in repo.src.rglob("*")
                   if p.is_file() and not p.is_symlink())
    assert latest["total_size"] == expected
    assert latest["snapshots_count"] == 1 and latest["total_file_count"] > 5
    everything = cli("stats", "--json").json()
    assert everything["snapshots_count"] == 2
    repository = everything["repository"]
    assert repository["raw_size"] == everything["total_size"]
    assert 0 < repository["deduplicated_size"] < repository["raw_size"]
    assert repository["stored_size"] > 0 and repository["dedup_ratio"] > 1
    raw = cli("stats", "--mode", "raw-data", "--json").json()
    for field in ("total_size", "total_uncompressed_size", "compression_ratio",
                  "compression_space_saving", "total_blob_count", "deduplicated_size",
                  "stored_size", "dedup_ratio"):
        assert field in raw
    assert raw["compression_ratio"] > 1  # the repeated CT/MR bytes compress
    text = cli("stats").stdout
    assert "Stats in restore-size mode:" in text and "Deduplication Ratio" in text
    bad = cli("stats", "--mode", "files", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
