"""A copy target's own retention through the real command: `medark run` copies each new
point offsite and then thins the offsite copy with the copy's retention (not the plan's),
a legal hold there keeps its snapshot, a snapshot the offsite forget removed is not sent
again, `config check` refuses a copy retention below the medical-record minimum, and
`plan show` says which retention each target applies and when its forget and prune run."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from conftest import Cli
from plan_site import EMR_WITH_OFFSITE, write_plan_config


def _setup(cli: Cli, tmp_path: Path, local_last: int, offsite_last: int) -> tuple[Path, Path]:
    data = tmp_path / "emr"
    data.mkdir()
    offsite = tmp_path / "offsite"
    cli("-r", offsite, "init")
    config = write_plan_config(cli, tmp_path, EMR_WITH_OFFSITE, data=data, offsite=offsite,
                               local_last=local_last, offsite_last=offsite_last)
    return config, offsite


def _run(cli: Cli, config: Path, tmp_path: Path, n: int) -> list[dict[str, Any]]:
    """One `medark run` with new data; its job documents."""
    (tmp_path / "emr" / f"case-{n}.xml").write_bytes(os.urandom(3000))
    jobs: list[dict[str, Any]] = cli("--json", "run", "emr", "--config", config,
                                     password=None).json_lines()
    return jobs


def _originals(cli: Cli, repo: Path) -> set[str]:
    return {s["original"] or s["id"] for s in cli("-r", repo, "snapshots", "--json").json()}


def test_the_offsite_copy_keeps_its_own_retention_and_its_holds(cli: Cli,
                                                                tmp_path: Path) -> None:
    config, offsite = _setup(cli, tmp_path, local_last=2, offsite_last=4)
    made: list[str] = []
    for n in range(6):
        jobs = _run(cli, config, tmp_path, n)
        kinds = [j["kind"] for j in jobs]
        assert kinds == ["backup", "copy:offsite", "forget:offsite", "forget"], kinds
        assert all(j["status"] == "succeeded" for j in jobs), jobs
        made += jobs[0]["snapshot_ids"]
        if n == 1:  # a legal hold on the second point, offsite only
            copy = next(s for s in cli("-r", offsite, "snapshots", "--json").json()
                        if s["original"] == made[1])
            cli("-r", offsite, "snapshot", "hold", copy["id"], "--reason", "case 2026-7")
    # local: the last 2, and the oldest (yearly = 30 still had counts left there)
    assert {s["id"] for s in cli("snapshots", "--json").json()} == {made[0], *made[-2:]}
    # offsite: its own last 4, the oldest, and the held one its policy alone would drop
    assert _originals(cli, offsite) == {made[0], made[1], *made[-4:]}
    copies = cli("-r", offsite, "snapshots", "--json").json()
    assert all("records=inpatient" in s["tags"] and "plan=emr" in s["tags"] for s in copies)
    forgets = [j for j in cli("jobs", "--json", "--config", config, "--latest", "100",
                              password=None).json() if j["kind"] == "forget:offsite"]
    assert len(forgets) == 6 and all(j["status"] == "succeeded" for j in forgets)


def test_a_snapshot_the_offsite_forget_removed_is_not_sent_again(cli: Cli,
                                                                 tmp_path: Path) -> None:
    config, offsite = _setup(cli, tmp_path, local_last=4, offsite_last=1)
    made: list[str] = []
    for n in range(4):
        made += _run(cli, config, tmp_path, n)[0]["snapshot_ids"]
    assert {s["id"] for s in cli("snapshots", "--json").json()} == set(made)
    assert _originals(cli, offsite) == {made[0], made[-1]}  # last 1, and the oldest
    again = cli("-r", offsite, "--json", "copy", "--from-repo", cli.repo, "--tag", "plan=emr",
                "--keep-last", "1", "--keep-yearly", "30").json_lines()[-1]
    assert again["snapshots_copied"] == 0 and again["snapshots_present"] == 2
    everything = cli("-r", offsite, "--json", "copy", "--from-repo", cli.repo, "--tag",
                     "plan=emr").json_lines()[-1]  # without the policy: the rest goes
    assert everything["snapshots_copied"] == 2


def test_config_check_refuses_a_copy_retention_below_the_record_minimum(
        cli: Cli, tmp_path: Path) -> None:
    config, _offsite = _setup(cli, tmp_path, local_last=2, offsite_last=4)
    valid = cli("config", "check", "--config", config, password=None).stdout
    assert valid.endswith(": valid: 1 site, 2 repositories, 1 system, 1 plan\n"), valid
    short = tmp_path / "short.toml"
    short.write_text(config.read_text(encoding="utf-8").replace(
        "retention = { last = 4, yearly = 30 }", "retention = { daily = 30, yearly = 10 }"),
        encoding="utf-8")
    result = cli("config", "check", "--config", short, password=None, check=False)
    assert result.returncode == 15, result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if "copies" in ln]
    assert "plans.emr.copies[0].retention" in line or "plans.emr.copies.0.retention" in line
    assert "must be kept 30 years" in line and "Traceback" not in result.stderr


def test_plan_show_explains_each_targets_retention(cli: Cli, tmp_path: Path) -> None:
    config, _offsite = _setup(cli, tmp_path, local_last=2, offsite_last=4)
    inherited = tmp_path / "inherited.toml"
    inherited.write_text(config.read_text(encoding="utf-8").replace(
        "retention = { last = 4, yearly = 30 }\n", "").replace(
        'to = "offsite"\nschedule = "every 1h"', 'to = "offsite"\nschedule = "continuous"'),
        encoding="utf-8")
    shown = " ".join(cli("plan", "show", "--config", config, password=None).stdout.split())
    assert "retention last 4, yearly 30 (its own); reaches 30y" in shown
    assert "forget in offsite after each successful copy" in shown
    assert "prune not scheduled (set `prune` on repository local)" in shown
    # a schedule under a minute is shown to the second, an hourly one to the minute
    assert re.search(r"prune every 30s, next \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", shown)
    assert re.search(r"next runs \d{4}-\d\d-\d\d \d\d:\d\d [A-Z+]", shown)
    shown = " ".join(cli("plan", "show", "--config", inherited, password=None).stdout.split())
    assert "retention last 2, yearly 30 (the plan's: none of its own)" in shown
    assert "forget in offsite after each successful backup (the copy is continuous)" in shown
    (plan,) = cli("plan", "show", "--json", "--config", inherited, password=None).json()
    (copy,) = plan["copies"]
    assert copy["retention"] == {"last": 2, "yearly": 30} and copy["retention_from"] == "plan"
    assert copy["prune"] == "every 30s" and copy["next_prune"] is not None
