"""MEDARK_KDF_N has a floor (2**15): a lower cost is refused with one line when a key is
made, unless the test-only switch MEDARK_INSECURE_TEST_KDF holds its exact phrase. Key files
record their own cost, so a repository made with a low one still opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TEST_KDF, Cli

from medark.repo.keys import INSECURE_TEST_KDF, KDF_N_MIN

FLOOR_LINE = ("medark: MEDARK_KDF_N=1024 is below the minimum scrypt cost 32768; "
              "unset it (the default is the minimum) or raise it\n")


def _env(cli: Cli, **values: str) -> Cli:
    env = {k: v for k, v in cli.env.items() if k not in TEST_KDF}
    return Cli(cli.repo, {**env, **values})


def _key_costs(repo: Path) -> list[int]:
    return [json.loads(p.read_text())["kdf"]["n"] for p in (repo / "keys").iterdir()]


def test_the_test_switch_phrase_is_the_one_the_suite_sets() -> None:
    assert TEST_KDF["MEDARK_INSECURE_TEST_KDF"] == INSECURE_TEST_KDF
    assert KDF_N_MIN == 2**15


@pytest.mark.parametrize("switch", [None, "1", "yes", INSECURE_TEST_KDF.upper()])
def test_init_below_the_floor_is_refused_without_the_exact_switch(
    cli: Cli, switch: str | None
) -> None:
    values = {"MEDARK_KDF_N": "1024"}
    if switch is not None:
        values["MEDARK_INSECURE_TEST_KDF"] = switch
    result = _env(cli, **values)("init", check=False)
    assert result.returncode == 2
    assert result.stderr == FLOOR_LINE
    assert not cli.repo.exists()  # refused before anything was created


def test_init_below_the_floor_with_the_switch_works(cli: Cli) -> None:
    _env(cli, MEDARK_KDF_N="1024", MEDARK_INSECURE_TEST_KDF=INSECURE_TEST_KDF)("init")
    assert _key_costs(cli.repo) == [1024]


@pytest.mark.parametrize("n", [None, "32768", "65536"])
def test_init_at_or_above_the_floor_needs_no_switch(cli: Cli, n: str | None) -> None:
    values = {} if n is None else {"MEDARK_KDF_N": n}
    _env(cli, **values)("init")
    assert _key_costs(cli.repo) == [int(n or KDF_N_MIN)]


@pytest.mark.parametrize("n", ["1000", "fast", "0", str(2**21)])
def test_a_cost_that_is_no_power_of_two_in_range_is_one_line(cli: Cli, n: str) -> None:
    result = _env(cli, MEDARK_KDF_N=n)("init", check=False)
    assert result.returncode == 2
    assert result.stderr == (f"medark: MEDARK_KDF_N={n!r} is not a power of two from 32768 "
                             "to 1048576\n")


def test_the_floor_applies_to_new_keys_not_to_opening_existing_ones(
    initialized: Cli, tmp_path: Path
) -> None:
    """The repository's key was made with the test cost: it still opens without the switch,
    but `key add` and `key passwd` refuse to make another key that weak."""
    plain = _env(initialized, MEDARK_KDF_N="1024")
    plain("check")
    new_password = tmp_path / "new-password"
    new_password.write_text("another password\n")
    for action in ("add", "passwd"):
        result = plain("key", action, "--new-password-file", new_password, check=False)
        assert (result.returncode, result.stderr) == (2, FLOOR_LINE), action
    assert _key_costs(initialized.repo) == [1024]
    _env(initialized)("key", "add", "--new-password-file", new_password)
    assert sorted(_key_costs(initialized.repo)) == [1024, KDF_N_MIN]
    _env(initialized)("check", password="another password")
