"""`medark copy --status` through the real command, for a copy target with its own
retention: given the copy's selection (--tag, --keep-*), pending counts what that copy
would send — not the points the target's forget dropped on purpose, nor another plan's
snapshots — and the copy with the same options sends exactly that many."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import Cli
from plan_site import EMR_WITH_OFFSITE, write_plan_config

SELECTION = ["--tag", "plan=emr", "--keep-last", "1", "--keep-yearly", "30"]
"""What the daemon's copy to offsite passes (scheduler/runner.py copy_step)."""


def test_pending_counts_only_what_the_targets_copy_would_send(cli: Cli,
                                                              tmp_path: Path) -> None:
    data = tmp_path / "emr"
    data.mkdir()
    offsite = tmp_path / "offsite"
    cli("-r", offsite, "init")
    config = write_plan_config(cli, tmp_path, EMR_WITH_OFFSITE, data=data, offsite=offsite,
                               local_last=10, offsite_last=1)
    for n in range(4):
        (data / f"case-{n}.xml").write_bytes(os.urandom(3000))
        cli("run", "emr", "--config", config, password=None)
    # offsite keeps the last point and the oldest (its yearly one): two were dropped
    assert len(cli("-r", offsite, "snapshots", "--json").json()) == 2

    def status(*selection: str) -> dict[str, Any]:
        rows: list[dict[str, Any]] = cli("-r", offsite, "--json", "copy", "--status",
                                         "--from-repo", cli.repo, *selection).json()
        assert len(rows) == 1
        return rows[0]

    def sent(*selection: str) -> int:
        summary = cli("-r", offsite, "--json", "copy", "--from-repo", cli.repo,
                      *selection).json_lines()[-1]
        copied: int = summary["snapshots_copied"]
        return copied

    def plan_status() -> dict[str, Any]:
        """The configuration's context: the selection the daemon's copy uses."""
        (row,) = cli("--json", "copy", "--status", "--plan", "emr", "--config", config,
                     password=None).json()
        assert (row["plan"], row["target"], row["destination"]) == ("emr", "offsite",
                                                                     str(offsite))
        return row

    assert status(*SELECTION)["pending"] == {"snapshots": 0, "records": 0}
    assert plan_status()["pending"] == {"snapshots": 0, "records": 0}
    assert status()["pending"]["snapshots"] == 2  # without the selection: everything
    assert status(*SELECTION)["newest_point"] == status(*SELECTION)["source_newest"]

    # another plan's snapshot, and a new point of this one's
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("another system\n")
    cli("backup", "--tag", "plan=lab", other)
    (data / "case-4.xml").write_bytes(os.urandom(3000))
    cli("backup", "--tag", "plan=emr", "--tag", "system=emr", "--tag", "records=inpatient",
        data)
    behind = status(*SELECTION)
    assert behind["pending"]["snapshots"] == 1, behind
    assert behind["source_newest"] > behind["newest_point"]
    text = cli("-r", offsite, "copy", "--status", "--from-repo", cli.repo, *SELECTION).stdout
    assert "pending: 1 snapshots, 0 records" in text, text
    assert plan_status()["pending"]["snapshots"] == 1
    text = cli("copy", "--status", "--plan", "emr", "--config", config, password=None).stdout
    assert text.startswith("plan emr at offsite: newest point "), text
    assert "pending: 1 snapshots, 0 records" in text, text
    assert status("--tag", "plan=emr")["pending"]["snapshots"] == 3  # no --keep-*
    assert status()["pending"]["snapshots"] == 4
    assert status("--no-archives", *SELECTION)["pending"] == {"snapshots": 1, "records": 0}

    assert sent(*SELECTION) == 1  # what the status said
    caught_up = status(*SELECTION)
    assert caught_up["pending"]["snapshots"] == 0
    assert caught_up["newest_point"] == caught_up["source_newest"]
    assert sent() == 4 - 1  # the dropped two and the other plan's: what it said before


def test_a_plan_status_needs_a_plan_with_copies(cli: Cli, tmp_path: Path) -> None:
    offsite = tmp_path / "offsite"
    config = write_plan_config(cli, tmp_path, EMR_WITH_OFFSITE, data=tmp_path, offsite=offsite,
                               local_last=10, offsite_last=1)
    unknown = cli("copy", "--status", "--plan", "pacs", "--config", config, password=None,
                  check=False)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "medark: unknown plan 'pacs' (defined: emr)"
    alone = cli("copy", "--plan", "emr", "--config", config, password=None, check=False)
    assert alone.returncode == 2 and "--plan goes with --status" in alone.stderr
    missing = cli("copy", "--status", "--plan", "emr", "--config", config, password=None,
                  check=False)  # the offsite repository was never created
    assert missing.returncode == 10, missing.stderr
    assert missing.stderr.startswith("medark: copy status of plan emr at offsite: ")
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
