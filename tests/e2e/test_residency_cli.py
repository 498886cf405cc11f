"""Data residency through the real command (docs/compliance.md#data-residency): `init
--location` records where a repository is, `check` reports the verdict, `copy` warns on
(or with --require-residency refuses) a destination outside mainland China."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli

WARNING = "outside mainland China: non-compliant (docs/compliance.md#data-residency)"


def test_init_in_sichuan_records_the_location_and_check_reports_compliant(cli: Cli) -> None:
    made = cli("init", "--location", "cn-sc", "--site", "West China campus, building 3")
    assert "location CN-SC (West China campus, building 3): compliant" in made.stdout
    assert made.stderr == ""
    checked = cli("check")
    assert "location: CN-SC (West China campus, building 3)" in checked.stdout
    assert "residency: compliant" in checked.stdout
    doc = cli("check", "--json").json()
    assert doc["location"] == {"code": "CN-SC", "country": "CN", "subdivision": "SC",
                               "site": "West China campus, building 3"}
    assert doc["residency"]["verdict"] == "compliant"


def test_init_outside_mainland_china_warns_and_check_says_non_compliant(cli: Cli) -> None:
    made = cli("init", "--location", "US", "--json")
    assert made.returncode == 0
    warnings = made.stderr.strip().splitlines()
    assert len(warnings) == 1 and WARNING in warnings[0] and "US" in warnings[0]
    doc = made.json()
    assert doc["location"]["code"] == "US"
    assert doc["residency"]["verdict"] == "non-compliant"
    checked = cli("check", "--json").json()
    assert checked["residency"] == {"verdict": "non-compliant",
                                    "reason": f"US is {WARNING}"}
    assert "residency: non-compliant" in cli("check").stdout


def test_hong_kong_is_outside_mainland_china(cli: Cli) -> None:
    made = cli("init", "--location", "CN-HK")
    assert "Hong Kong" in made.stderr and WARNING in made.stderr


def test_a_repository_without_location_reports_unknown(initialized: Cli) -> None:
    checked = initialized("check")
    assert "location: unknown" in checked.stdout
    assert "residency: unknown" in checked.stdout
    doc = initialized("check", "--json").json()
    assert doc["location"] is None and doc["residency"]["verdict"] == "unknown"


@pytest.mark.parametrize("args", [["--location", "CN-XG"], ["--location", "China"],
                                  ["--site", "campus B"]])
def test_bad_locations_are_refused_before_anything_is_written(cli: Cli,
                                                                args: list[str]) -> None:
    bad = cli("init", *args, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not cli.repo.exists()


@pytest.fixture
def source(cli: Cli, tmp_path: Path) -> Path:
    src = tmp_path / "main"
    cli("-r", src, "init", "--location", "CN-SC")
    data = tmp_path / "data"
    data.mkdir()
    (data / "emr.sql").write_text("INSERT INTO notes VALUES (1);\n" * 1000)
    cli("-r", src, "backup", data)
    return src


def test_copy_warns_before_copying_out_of_the_country(cli: Cli, source: Path,
                                                      tmp_path: Path) -> None:
    offsite = tmp_path / "offsite-sg"
    cli("-r", offsite, "init", "--location", "SG")
    copied = cli("-r", offsite, "copy", "--from-repo", source)
    assert f"copying into {offsite}: SG is {WARNING}" in copied.stderr
    assert "1 copied" in copied.stdout
    status = cli("-r", offsite, "copy", "--status", "--from-repo", source, "--json").json()
    assert status[0]["destination_location"] == "SG"
    assert status[0]["destination_residency"] == "non-compliant"
    status = cli("-r", offsite, "copy", "--status").stdout
    assert "location SG (non-compliant)" in " ".join(status.split())  # wrapped at 80


def test_copy_require_residency_refuses_outside_and_unknown(cli: Cli, source: Path,
                                                            tmp_path: Path) -> None:
    offsite, unknown, chengdu = tmp_path / "us", tmp_path / "unknown", tmp_path / "chengdu"
    cli("-r", offsite, "init", "--location", "US")
    cli("-r", unknown, "init")
    cli("-r", chengdu, "init", "--location", "CN-SC", "--site", "Chengdu DR center")
    for dst in (offsite, unknown):
        refused = cli("-r", dst, "copy", "--from-repo", source, "--require-residency",
                      check=False)
        assert refused.returncode == 14, refused.stderr
        assert "nothing was copied" in refused.stderr and "Traceback" not in refused.stderr
        assert cli("-r", dst, "snapshots", "--json").json() == []
    # without the option an unknown destination is copied to without a warning
    quiet = cli("-r", unknown, "copy", "--from-repo", source)
    assert "warning" not in quiet.stderr
    allowed = cli("-r", chengdu, "copy", "--from-repo", source, "--require-residency")
    assert allowed.stderr == "" and "1 copied" in allowed.stdout
    status = cli("-r", chengdu, "copy", "--status", "--json").json()
    assert (status[0]["destination_location"], status[0]["destination_residency"]) == \
        ("CN-SC", "compliant")
