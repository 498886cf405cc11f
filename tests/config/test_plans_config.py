"""The protection configuration: durations, schedules, the schema and every rejection
reported with file:line (the example in docs/ must stay valid)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from medark.config.durations import format_config_duration, parse_config_duration
from medark.config.loader import load_config
from medark.config.schedule import Schedule
from medark.config.toml_lines import KeyLines
from medark.errors import ConfigInvalid

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "medark.toml"
SHANGHAI = ZoneInfo("Asia/Shanghai")

GOOD = """\
[sites.main]
location = "CN-SC"

[repositories.local]
site = "main"
url = "/backup"

[systems.his]
owner = "IT"
records = "outpatient"

[[systems.his.sources]]
type = "postgres"
dsn = "host=db dbname=his"

[plans.his]
system = "his"
repository = "local"
schedule = "*/15 * * * *"
rpo = "15min"
rto = "1h"
retention = { daily = 30, yearly = 15 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "medark.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", timedelta(seconds=30)), ("15min", timedelta(minutes=15)),
    ("1h30min", timedelta(minutes=90)), ("7d", timedelta(days=7)), ("4w", timedelta(weeks=4)),
    ("6mo", timedelta(days=180)), ("15y", timedelta(days=15 * 365)),
])
def test_durations_spell_every_unit(text: str, expected: timedelta) -> None:
    assert parse_config_duration(text) == expected
    assert parse_config_duration(format_config_duration(expected)) == expected


@pytest.mark.parametrize("text", ["15m", "15", "min", "1.5h", "3 parsecs", ""])
def test_ambiguous_or_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_config_duration(text)


def test_cron_intervals_and_jitter() -> None:
    now = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 04:00 in Shanghai
    nightly = Schedule.parse("0 1 * * *")
    assert nightly.next_after(now, SHANGHAI, "his") == datetime(2026, 11, 28, 1, 0,
                                                                tzinfo=SHANGHAI)
    assert nightly.typical_gap(SHANGHAI, now) == timedelta(days=1)
    hourly = Schedule.parse("every 1h", jitter=timedelta(minutes=10))
    first = hourly.next_after(now, SHANGHAI, "pacs")
    assert first is not None and timedelta(0) <= first - now < timedelta(minutes=10)
    assert first - now == hourly.offset("pacs")  # the same share every time
    assert hourly.next_after(first, SHANGHAI, "pacs", last_start=first) == first + \
        timedelta(hours=1)
    assert Schedule.parse("continuous").next_after(now, SHANGHAI, "x") is None
    for bad in ("61 * * * *", "* * * *", "every 15m", "sometimes", "@fortnightly"):
        with pytest.raises(ValueError):
            Schedule.parse(bad)


def test_crons_names_are_schedules() -> None:
    """`drill = "monthly"` as operators write it: midnight of the first of the month."""
    now = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 04:00 on the 27th in Shanghai
    assert Schedule.parse("monthly").next_after(now, SHANGHAI, "his") == datetime(
        2026, 12, 1, 0, 0, tzinfo=SHANGHAI)
    assert Schedule.parse("@weekly").next_after(now, SHANGHAI, "his") == datetime(
        2026, 11, 29, 0, 0, tzinfo=SHANGHAI)  # a Sunday
    assert Schedule.parse("Daily").typical_gap(SHANGHAI, now) == timedelta(days=1)


def test_key_lines_follow_tables_arrays_and_inline_tables() -> None:
    lines = KeyLines(GOOD + '\n[[systems.his.sources]]\ntype = "files"\npaths = ["/p"]\n')
    assert lines.line(("plans", "his", "schedule")) == 19
    assert lines.line(("plans", "his", "retention", "yearly")) == 22  # inside { }
    assert lines.line(("systems", "his", "sources", 0, "dsn")) == 14
    assert lines.line(("systems", "his", "sources", 1, "paths")) == 26
    assert lines.line(("plans", "his", "copies")) == 16  # absent: its table


def test_the_documented_example_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert set(config.plans) == {"his", "lis", "pacs"}
    assert config.plans["his"].retention.reach() == timedelta(days=30 * 365)


def test_a_valid_file_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.plans["his"].rpo == timedelta(minutes=15)
    assert config.zone == SHANGHAI


def test_an_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('url = "/backup"', 'url = "/backup"\nretension = 3'))
    assert found == [f"{tmp_path / 'medark.toml'}:7: repositories.local.retension: unknown key"]


def test_a_bad_cron_is_named_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("*/15 * * * *", "61 * * * *"))
    assert len(found) == 1 and ":19: plans.his.schedule: invalid schedule '61" in found[0]


def test_an_unknown_repository_is_named_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('repository = "local"', 'repository = "nas"'))
    assert found == [f"{tmp_path / 'medark.toml'}:18: plans.his.repository: unknown "
                     "repository 'nas' (defined: local)"]


def test_retention_that_undercuts_the_record_minimum_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("yearly = 15", "yearly = 10"))
    assert len(found) == 1 and ":22: plans.his.retention: keeps points for 10 year(s)" in found[0]
    assert "15 years" in found[0]
    inpatient = GOOD.replace('"outpatient"', '"inpatient"')
    assert "30 years" in problems(tmp_path, inpatient)[0]
    load_config(write(tmp_path, inpatient.replace("yearly = 15", "yearly = -1")))  # forever


def test_every_reference_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = (GOOD.replace('site = "main"', 'site = "east"')
            .replace('dsn = "host=db dbname=his"', "")
            .replace('rto = "1h"', 'rto = "1h"\ncopies = [{ to = "local" }]'))
    found = problems(tmp_path, text)
    assert [p.split(": ")[1] for p in found] == [
        "repositories.local.site", "systems.his.sources[0].dsn", "plans.his.copies[0].to"]
    assert [int(p.split(":")[1]) for p in found] == sorted(int(p.split(":")[1]) for p in found)


def test_syntax_errors_and_missing_files_are_one_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "broken = = 1\n")
    assert found == [f"{tmp_path / 'medark.toml'}:23: invalid TOML: Invalid value"]
    with pytest.raises(ConfigInvalid, match="configuration file not found"):
        load_config(tmp_path / "absent.toml")


def test_only_database_sources_stream(tmp_path: Path) -> None:
    streaming = GOOD.replace('dsn = "host=db dbname=his"',
                             'dsn = "host=db dbname=his"\nstream = true\nslot = "his_slot"')
    load_config(write(tmp_path, streaming))
    files = streaming.replace('type = "postgres"', 'type = "files"\npaths = ["/srv"]')
    found = problems(tmp_path, files)
    assert [p.split(": ")[1] for p in found] == ["systems.his.sources[0].stream",
                                                "systems.his.sources[0].slot"]


def test_custom_profiles_are_checked(tmp_path: Path) -> None:
    custom = GOOD + """
[hospital]
tier = "county"

[profiles.county]
base = "三乙"
requirements = [
  { id = "county.rpo", title = "RPO ≤ 5 min", check = "local_rpo", limit = "5min" },
  { id = "county.rto", title = "RTO", check = "local_rto", systems = ["lis"] },
]
"""
    found = problems(tmp_path, custom)
    assert any("check 'local_rto' needs a limit" in p for p in found), found
    assert any("unknown system 'lis'" in p for p in found), found
    fixed = custom.replace('check = "local_rto", systems = ["lis"]',
                           'check = "local_rto", limit = "2h", systems = ["his"]')
    config = load_config(write(tmp_path, fixed))
    assert config.profiles["county"].requirements[1].limit == timedelta(hours=2)
    unknown = problems(tmp_path, fixed.replace('tier = "county"', 'tier = "city"'))
    assert any("unknown tier 'city'" in p for p in unknown), unknown
    shadow = problems(tmp_path, fixed.replace("[profiles.county]", "[profiles.\"三甲\"]"))
    assert any("built-in tier" in p for p in shadow), shadow
    bad_check = problems(tmp_path, fixed.replace('"local_rpo"', '"local_rpx"'))
    assert any("local_rpx" in p or "check" in p for p in bad_check), bad_check


def test_an_offsite_restore_test_restores_from_a_copy_target(tmp_path: Path) -> None:
    text = GOOD.replace('retention = { daily = 30, yearly = 15 }',
                        'retention = { daily = 30, yearly = 15 }\n'
                        'offsite_restore_test = { repository = "local", schedule = "every 7d" }')
    found = problems(tmp_path, text)
    assert any("offsite_restore_test.repository" in p and "not a copy target" in p
               for p in found), found


def test_a_copy_target_keeps_its_own_retention_within_the_record_minimum(
        tmp_path: Path) -> None:
    offsite = '[repositories.offsite]\nsite = "main"\nurl = "/offsite"\n\n'
    own = ('rto = "1h"\ncopies = [{ to = "offsite", retention = { last = 3, daily = 90, '
           'yearly = 20 } }, { to = "dr" }]')
    text = (GOOD.replace("[systems.his]", offsite + '[repositories.dr]\nsite = "main"\n'
                         'url = "/dr"\n\n[systems.his]').replace('rto = "1h"', own))
    plan = load_config(write(tmp_path, text)).plans["his"]
    kept = plan.copy_retention("offsite")
    assert (kept.last, kept.daily, kept.yearly) == (3, 90, 20)
    assert kept.reach() == timedelta(days=20 * 365)
    assert plan.copy_retention("dr") == plan.retention  # none of its own: the plan's
    found = problems(tmp_path, text.replace("yearly = 20", "yearly = 5"))
    assert len(found) == 1 and "plans.his.copies[0].retention: keeps points for 5 year(s)" \
        in found[0] and "15 years" in found[0]
    forever = load_config(write(tmp_path, text.replace("last = 3, daily = 90, yearly = 20",
                                                       "last = -1")))
    assert forever.plans["his"].copy_retention("offsite").reach() is None


def test_the_longest_gap_of_a_schedule() -> None:
    monday = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert Schedule.parse("0 3 * * 0").longest_gap(SHANGHAI, monday) == timedelta(days=7)
    assert Schedule.parse("every 6h").longest_gap(SHANGHAI, monday) == timedelta(hours=6)
    assert Schedule.parse("continuous").longest_gap(SHANGHAI, monday) is None
    # too many runs to walk one by one: the weekend between them is still found
    assert Schedule.parse("* * * * 1-5").longest_gap(SHANGHAI, monday) == \
        timedelta(days=2, minutes=1)
    # elapsed time, not wall clock: the night New York's clocks go back lasts 25 h
    new_york = ZoneInfo("America/New_York")
    autumn = datetime(2026, 10, 28, tzinfo=UTC)
    assert Schedule.parse("0 12 * * *").longest_gap(new_york, autumn) == timedelta(hours=25)
