"""`medark config check` on `[dr.SYSTEM]` tables through the real command: docs/dr.md's
example is accepted; each wrong DR setting is one line `file:line: key: message` with
exit 15, a password in a DSN is refused without being echoed, and several mistakes come
out together in one run (text and --json)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "dr.md"


def example() -> str:
    found = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert found is not None, "docs/dr.md has no toml example"
    return found.group(1)


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def test_the_documented_example_is_valid(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "dr.toml"
    path.write_text(example(), encoding="utf-8")
    ok = cli("config", "check", "--config", path)
    assert ok.stdout.strip() == \
        f"{path}: valid: 2 sites, 2 repositories, 2 systems, 2 plans, 2 DR systems"
    assert ok.stderr == ""


@pytest.mark.parametrize(("old", "new", "at", "expected"), [
    ("[dr.lis", "[dr.ris", "[dr.ris]",
     "dr.ris: unknown system 'ris' (defined: his, lis)"),
    ('dsn = "host=10.1.0.11 port=5432 user=medark dbname=his"',
     'dsn = "host=10.0.0.11 port=5432 user=medark dbname=his"  # copied',
     "# copied", "dr.his.standby.dsn: the primary and the standby are the same node "
     "(10.0.0.11:5432)"),
    ('kind = "mariadb"\nsite = "east"', 'kind = "postgres"  # wrong\nsite = "east"',
     "# wrong", "dr.lis.standby.kind: the standby is postgres but the primary is mariadb"),
    ('[dr.lis]\nfeed = "stream"', '[dr.lis]\nfeed = "repository"', 'feed = "repository"',
     "dr.lis.feed: feed = \"repository\" needs repository = NAME"),
    ("synchronous = false ", 'feed = "repository"\nrepository = "east"\nsynchronous = true ',
     "synchronous = true", "dr.his.synchronous: synchronous needs feed = \"stream\""),
    ('[dr.lis]\nfeed = "stream"', '[dr.lis]\nfeed = "stream"\nslot = "lis_slot"',
     'slot = "lis_slot"', "dr.lis.slot: a MariaDB stream feed needs no slot"),
    ('site = "east"\ndsn = "mysql://', 'site = "west"\ndsn = "mysql://', 'site = "west"',
     "dr.lis.standby.site: unknown site 'west' (defined: east, main)"),
])
def test_each_wrong_setting_is_one_line_at_its_place(cli: Cli, tmp_path: Path, old: str,
                                                     new: str, at: str, expected: str) -> None:
    text = example()
    if "synchronous = true" in new:  # the his feed moves to the repository, without its slot
        text = edit(text, 'feed = "stream"\nslot = "medark_dr_his"\n', "")
    assert old in text
    text = text.replace(old, new)  # "[dr.lis": the LIS table and its sub-tables renamed
    path = tmp_path / "dr.toml"
    path.write_text(text, encoding="utf-8")
    result = cli("config", "check", "--config", path, check=False)
    assert result.returncode == 15, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"medark: {path}:{line_of(text, at)}: {expected}"), line
    assert "Traceback" not in result.stderr


def test_a_password_in_a_dsn_is_refused_and_not_echoed(cli: Cli, tmp_path: Path) -> None:
    text = edit(example(), 'dsn = "mysql://medark@10.1.0.12:3306/"',
                'dsn = "mysql://medark:hunter2@10.1.0.12:3306/"')
    path = tmp_path / "dr.toml"
    path.write_text(text, encoding="utf-8")
    result = cli("config", "check", "--config", path, check=False)
    assert result.returncode == 15
    assert f"{path}:{line_of(text, 'hunter2')}: dr.lis.standby.dsn: no password in the DSN" \
        in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_every_mistake_comes_out_in_one_run(cli: Cli, tmp_path: Path) -> None:
    text = example()
    text = edit(text, 'fencing = "readonly"', 'fencing = "unplug"')  # schema
    text = edit(text, 'expect_status = 200', 'expect_status = 200\nquery = "SELECT 1"')
    text = edit(text, 'control = { unit = "mariadb.service" }', "control = {}")
    text = edit(text, "[[dr.lis.services.east]]", "[[dr.lis.services.north]]")
    path = tmp_path / "dr.toml"
    path.write_text(text, encoding="utf-8")
    result = cli("--json", "config", "check", "--config", path, check=False)
    assert result.returncode == 15
    error = result.json_lines()[-1]
    assert error["code"] == "config_invalid"
    expected = [
        (line_of(text, 'fencing = "unplug"'), "dr.his.fencing.type: Input should be"),
        (line_of(text, 'query = "SELECT 1"'),
         "dr.his.health[0].query: query belongs to an sql check, not http"),
        (line_of(text, "control = {}"), "dr.lis.primary.control: give exactly one of"),
        (line_of(text, "[[dr.lis.services.north]]"),
         "dr.lis.services.north: unknown site 'north'"),
    ]
    assert len(error["problems"]) == len(expected), error["problems"]
    for problem, (line, said) in zip(error["problems"], expected, strict=True):
        assert problem.startswith(f"{path}:{line}: {said}"), problem
    printed = cli("config", "check", "--config", path, check=False).stderr.splitlines()
    assert printed == [f"medark: {problem}" for problem in error["problems"]]
