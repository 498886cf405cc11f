"""`medark config check` and `medark plan show` through the real command: exit codes,
file:line messages, the plan explanation, and no secret from a DSN in the output."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "medark.toml"


def test_the_example_checks_and_explains(cli: Cli) -> None:
    ok = cli("config", "check", "--config", EXAMPLE)
    assert ok.stdout.strip() == f"{EXAMPLE}: valid: 2 sites, 2 repositories, 3 systems, 3 plans"
    shown = cli("plan", "show", "--config", EXAMPLE).stdout
    assert "plan his: HIS" in shown and "-> offsite (site regional, CN-SC): continuous" in shown
    assert "RPO 10min (continuous WAL/binlog archiving), RTO 15min" in shown
    assert "restore test 0 4 1 * *, next " in shown.split("plan pacs")[1]
    assert "restore test none: the RTO is not measured" not in shown
    assert "offsite test from offsite: 0 3 1 * *, next " in shown.split("plan lis")[0]
    plans = cli("plan", "show", "pacs", "--json", "--config", EXAMPLE).json()
    assert [p["plan"] for p in plans] == ["pacs"]
    assert plans[0]["design_rpo"] == "1h" and plans[0]["retention_reach"] == "30y"
    assert len(plans[0]["next_runs"]) == 3


def test_the_config_comes_from_the_environment(cli: Cli) -> None:
    cli.env["MEDARK_CONFIG"] = str(EXAMPLE)
    assert "valid" in cli("config", "check").stdout


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_bad_input_is_rejected_with_file_and_line(cli: Cli, tmp_path: Path) -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text(encoding="utf-8")
                   .replace('max_jobs = 2', 'max_jobs = 2\nmax_job = 3')
                   .replace('schedule = "30 1 * * *"', 'schedule = "30 25 * * *"'),
                   encoding="utf-8")
    result = cli("config", "check", "--config", bad, check=False)
    assert result.returncode == 15
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"medark: {bad}:25: repositories.local.max_job: unknown key")
    cron = _line_of(example, 'schedule = "30 1 * * *"') + 1  # after the max_job line
    assert lines[1].startswith(f"medark: {bad}:{cron}: plans.lis.schedule: invalid schedule")
    assert "Traceback" not in result.stderr
    refs = tmp_path / "refs.toml"
    refs.write_text(EXAMPLE.read_text(encoding="utf-8")
                    .replace('repository = "local"\nschedule = "every 1h"',
                             'repository = "nas"\nschedule = "every 1h"')
                    .replace("yearly = 15 }", "yearly = 5 }"), encoding="utf-8")
    result = cli("--json", "config", "check", "--config", refs, check=False)
    assert result.returncode == 15
    error = result.json_lines()[-1]
    assert error["code"] == "config_invalid" and len(error["problems"]) == 2
    retention = _line_of(example, "yearly = 15 }")
    repository = _line_of(example, '[plans.pacs]') + 2
    assert f":{retention}: plans.lis.retention: keeps points for 5 year(s)" in \
        error["problems"][0]
    assert f":{repository}: plans.pacs.repository: unknown repository 'nas'" in \
        error["problems"][1]
    missing = cli("plan", "show", "--config", tmp_path / "none.toml", check=False)
    assert missing.returncode == 15 and "configuration file not found" in missing.stderr


def test_passwords_in_a_dsn_are_not_shown(cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "secret.toml"
    secret.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        "user=medark dbname=his", "user=medark password=hunter2 dbname=his").replace(
        "mysql://medark@", "mysql://medark:hunter3@"), encoding="utf-8")
    shown = " ".join(cli("plan", "show", "--config", secret).stdout.split())  # unwrapped
    assert "hunter" not in shown and "password=*** dbname=his" in shown
    assert "mysql://medark:***@10.0.0.12" in shown
