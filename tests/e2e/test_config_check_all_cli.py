"""`medark config check` reports every mistake of a file in one run: schema errors and the
cross-references and record minimums they leave checkable, each on its own line with its
file:line and key; a check that would only judge a broken key is skipped, nothing else."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "medark.toml"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _with_mistakes() -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in [
        # schema: an unknown key, a value outside its choices, a bad cron, a bad duration
        ("max_jobs = 2", "max_jobs = 2\nmax_job = 3"),
        ('criticality = "important"\nrecords = "inpatient"',
         'criticality = "vital"\nrecords = "inpatient"'),
        ('schedule = "0 1 * * *" ', 'schedule = "0 25 * * *"'),
        ('rpo = "1h"', 'rpo = "soon"'),
        # schema and residency in one site: a role that does not exist, a made-up region
        ('location = "CN-SC"\nrole = "regional"', 'location = "CN-XX"\nrole = "dr"'),
        # cross-references in plans that also hold schema errors
        ('copies = [{ to = "offsite", schedule = "continuous" }]',
         'copies = [{ to = "dr", schedule = "continuous" }]'),
        ('repository = "local"\nschedule = "every 1h"',
         'repository = "nas"\nschedule = "every 1h"'),
        # under the record minimum (outpatient: 15 years)
        ("retention = { daily = 14, monthly = 12, yearly = 15 }",
         "retention = { daily = 14, monthly = 12, yearly = 5 }"),
        # a retention with a schema error: its minimum is not judged on what is left
        ("retention = { hourly = 24,", 'retention = { hourly = "many",'),
        ("yearly = 30 }\n# The DR centre", "yearly = 1 }\n# The DR centre"),
        # the hospital: an unknown tier next to a level out of range
        ('timezone = "Asia/Shanghai"',
         'timezone = "Asia/Shanghai"\n\n[hospital]\ntier = "四甲"\nlevel = 9'),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_every_kind_of_mistake_is_reported_in_one_run(cli: Cli, tmp_path: Path) -> None:
    text = _with_mistakes()
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    expected = [
        (_line_of(text, "tier = "), "hospital.tier", "unknown tier '四甲'"),
        (_line_of(text, "level = 9"), "hospital.level", "less than or equal to 4"),
        (_line_of(text, 'location = "CN-XX"'), "sites.regional.location",
         "CN-XX is not an ISO 3166-2:CN code"),
        (_line_of(text, 'role = "dr"'), "sites.regional.role", "Input should be"),
        (_line_of(text, "max_job = 3"), "repositories.local.max_job", "unknown key"),
        (_line_of(text, '"vital"'), "systems.pacs.criticality", "Input should be"),
        (_line_of(text, '"0 25 * * *"'), "plans.his.schedule", "invalid schedule"),
        (_line_of(text, 'to = "dr"'), "plans.his.copies[0].to", "unknown repository 'dr'"),
        (_line_of(text, "offsite_restore_test"), "plans.his.offsite_restore_test.repository",
         "'offsite' is not a copy target of the plan"),
        (_line_of(text, "yearly = 5 }"), "plans.lis.retention",
         "must be kept 15 years: set yearly = 15"),
        (_line_of(text, 'repository = "nas"'), "plans.pacs.repository",
         "unknown repository 'nas'"),
        (_line_of(text, 'rpo = "soon"'), "plans.pacs.rpo", "invalid duration 'soon'"),
        (_line_of(text, 'hourly = "many"'), "plans.pacs.retention.hourly",
         "valid integer"),
    ]
    result = cli("config", "check", "--config", bad, check=False)
    assert result.returncode == 15, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    for line, key, words in expected:
        found = [ln for ln in lines if ln.startswith(f"medark: {bad}:{line}: {key}: ")]
        assert len(found) == 1 and words in found[0], (key, lines)
    assert len(lines) == len(expected), lines  # nothing else: no check judged a broken key
    # in file order, as the file is read
    assert [int(ln.split(":")[2]) for ln in lines] == sorted(e[0] for e in expected)

    as_json = cli("--json", "config", "check", "--config", bad, check=False)
    assert as_json.returncode == 15
    error = as_json.json_lines()[-1]
    assert error["code"] == "config_invalid"
    assert error["problems"] == [ln.removeprefix("medark: ") for ln in lines]


def test_a_broken_section_skips_only_its_own_checks(cli: Cli, tmp_path: Path) -> None:
    """A plan that is not even a table and a copy that is not one: their checks are
    skipped, the other plans' references are still checked."""
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'copies = [{ to = "offsite", schedule = "continuous" }]', 'copies = ["offsite"]'
    ).replace('repository = "local"\nschedule = "every 1h"',
              'repository = "nas"\nschedule = "every 1h"') + '\n[plans]\nbroken = 5\n'
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    result = cli("config", "check", "--config", bad, check=False)
    assert result.returncode == 15
    lines = [ln.split(": ", 2)[2] for ln in result.stderr.strip().splitlines()]
    # the offsite restore test is not judged against a copy list that did not validate
    assert lines == ["plans.his.copies[0]: Input should be a valid dictionary or instance "
                     "of CopyConf",
                     "plans.pacs.repository: unknown repository 'nas' (defined: local, "
                     "offsite)",
                     "plans.broken: Input should be a valid dictionary or instance of Plan"]
