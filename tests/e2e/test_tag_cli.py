"""`medark tag` end to end: tags added, removed and set as restic does it (a new snapshot
replaces the old, `original` keeps the first id), filters, and a snapshot under legal
hold that keeps its tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Cli


def _snapshots(cli: Cli) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = cli("snapshots", "--json").json()
    return result


def test_tags_are_added_removed_and_set(initialized: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("患者\n")
    initialized("backup", data, "--tag", "daily")
    initialized("backup", data, "--tag", "daily,his")
    first, second = _snapshots(initialized)

    out = initialized("tag", "--add", "audit-2026", "--add", "case-7", first["id"][:8]).stdout
    assert "modified 1 snapshot(s)" in out
    after = {s["id"]: s for s in _snapshots(initialized)}
    assert first["id"] not in after and second["id"] in after
    [new] = [s for s in after.values() if s["id"] != second["id"]]
    assert new["tags"] == ["daily", "audit-2026", "case-7"]
    assert new["original"] == first["id"] and new["tree"] == first["tree"]
    assert new["time"] == first["time"]

    lines = initialized("--json", "tag", "--tag", "his", "--remove", "daily").json_lines()
    changed = [line for line in lines if line["message_type"] == "changed"]
    assert [c["old_snapshot_id"] for c in changed] == [second["id"]]
    assert changed[0]["tags"] == ["his"]
    assert lines[-1]["changed_snapshots"] == 1 and lines[-1]["unchanged_snapshots"] == 0

    initialized("tag", "--set", "monthly")
    assert [s["tags"] for s in _snapshots(initialized)] == [["monthly"], ["monthly"]]
    again = initialized("tag", "--set", "monthly").stdout
    assert "modified 0 snapshot(s)" in again
    initialized("tag", "--set", "")
    assert [s["tags"] for s in _snapshots(initialized)] == [[], []]

    restored = tmp_path / "restored"
    initialized("restore", "latest", "--target", restored)
    assert (restored / data.relative_to("/") / "a.txt").read_text() == "患者\n"
    initialized("check")


def test_a_held_snapshot_keeps_its_tags(initialized: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "record.pdf").write_bytes(b"%PDF" * 100)
    initialized("backup", data)
    [snap] = _snapshots(initialized)
    initialized("snapshot", "hold", snap["id"], "--reason", "inpatient record")
    result = initialized("tag", "--add", "x", snap["id"])
    assert "under legal hold" in result.stderr and "tags cannot change" in result.stderr
    assert "modified 0 snapshot(s)" in result.stdout
    assert _snapshots(initialized)[0]["id"] == snap["id"]
    assert _snapshots(initialized)[0]["tags"] == []


def test_bad_requests_are_usage_errors(initialized: Cli) -> None:
    for args in (("--set", "a", "--add", "b"), ()):
        result = initialized("tag", *args, check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
