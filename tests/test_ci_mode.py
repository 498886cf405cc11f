"""tests/ci_mode.py: in CI a skipped test fails the run, and every run prints its skips.

Each case runs pytest in a subprocess on a small test file, with CI set or unset."""

from __future__ import annotations

from pathlib import Path

import pytest

PLUGIN_DIR = str(Path(__file__).parent)

SKIPPING = """
import pytest

def test_runs():
    pass

def test_needs_a_database():
    pytest.skip("no PostgreSQL on 127.0.0.1:5432")

@pytest.mark.skipif(True, reason="tests start servers as the postgres user, which needs root")
def test_needs_root():
    pass

@pytest.mark.xfail(reason="a known bug, not a skip")
def test_known_bug():
    assert False
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None,
         source: str = SKIPPING) -> pytest.RunResult:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", PLUGIN_DIR)
    # only the plugin under test: the installed ones (schemathesis, hypothesis, xdist...)
    # cost each inner pytest about 2 s of CPU to import
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_database=source)
    return pytester.runpytest_subprocess("-p", "ci_mode", "-ra", "-p", "no:cacheprovider")


def test_outside_ci_a_skip_is_a_skip_and_is_summarized(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, None)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    result.stdout.fnmatch_lines([
        "*= skips: 2 =*",
        "1 × no PostgreSQL on 127.0.0.1:5432  [test_database.py::test_needs_a_database]",
        "1 × tests start servers as the postgres user, which needs root  "
        "[test_database.py::test_needs_root]",
    ])


def test_in_ci_a_skip_fails_the_run_and_names_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # pytest.skip inside the test fails it; a skipif mark fails its setup (an error)
    result.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)
    result.stdout.fnmatch_lines_random([
        "FAILED test_database.py::test_needs_a_database - skipped in CI: "
        "no PostgreSQL on 127.0.0.1:5432",
        "ERROR test_database.py::test_needs_root - skipped in CI: "
        "tests start servers as the postgres user, which needs root",
        "*= skips: 2 (CI=true: each one fails the run) =*",
    ])


def test_in_ci_a_module_skipped_at_collection_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = 'import pytest\npytest.importorskip("no_such_module_medark")\n\n' \
             "def test_never_runs():\n    pass\n"
    result = _run(pytester, monkeypatch, "true", source)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*= skips: 1 (CI=true: each one fails the run) =*",
                                 "1 × could not import 'no_such_module_medark'*"])
    assert _run(pytester, monkeypatch, None, source).ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_no_skip_prints_skips_0(pytester: pytest.Pytester,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, "true", "def test_ok():\n    pass\n")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*= skips: 0 =*"])
