"""A pytest plugin: in CI (CI=true) a skipped test fails the run; every run ends with a
"skips: N" summary that gives each reason.

CI (`.ci/run` → `make test`) runs as root with PostgreSQL, MariaDB, mariadb-backup, moto
and the Debian packages of the Makefile's DEBS installed. A database, S3 or root-only test
that skips there has lost its reason to skip, and a run that still passed would say the
databases were tested when they were not. No test is exempt: each skip condition in tests/
holds only on a machine that lacks what CI installs. tests/conftest.py loads this plugin.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

_SKIPS = pytest.StashKey[list[tuple[str, str]]]()
"""(node id, reason) of every skip this run, in the order they happened."""


def ci_mode() -> bool:
    """CI=true (GitHub Actions, GitLab CI and most others set it), also 1 or yes."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SKIPS] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> object:
    """A skip (skip/skipif marks, pytest.skip in a fixture or the test) becomes a failure
    in CI, reported against the test with the reason."""
    report: pytest.TestReport = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _reason(report)
        item.config.stash[_SKIPS].append((item.nodeid, reason))
        if ci_mode():
            report.outcome = "failed"
            report.longrepr = f"skipped in CI: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    """A whole module skipped while collected (pytest.importorskip, allow_module_level):
    recorded here, and fails the run in pytest_sessionfinish, so that the other modules
    still run (a failed collection would stop them all)."""
    report: pytest.CollectReport = yield
    if report.skipped:
        collector.config.stash[_SKIPS].append((report.nodeid, _reason(report)))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if ci_mode() and session.config.stash.get(_SKIPS, []) and session.exitstatus in (
        pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    skips = config.stash.get(_SKIPS, [])
    mode = " (CI=true: each one fails the run)" if ci_mode() and skips else ""
    terminalreporter.write_sep("=", f"skips: {len(skips)}{mode}")
    by_reason = Counter(reason for _node, reason in skips)
    for reason, count in by_reason.most_common():
        first = next(node for node, r in skips if r == reason)
        more = f" and {count - 1} more" if count > 1 else ""
        terminalreporter.write_line(f"{count} × {reason}  [{first}{more}]")
