"""tests/private_home.py: the tests' `medark` never writes the user's own cache, and a session
that did would fail.

The first test runs in this session; the others run pytest in a subprocess whose HOME is a
stand-in for a user's home with a ~/.cache/medark in it."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest
from conftest import MEDARK, PASSWORD

PLUGIN_DIR = str(Path(__file__).parents[1])  # tests/, where private_home.py lives


def test_medark_without_a_cache_dir_uses_the_sessions_own_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDARK_CACHE_DIR")
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "medark"
    assert not cache.is_relative_to(real_home) and Path.home() != real_home
    before = set(cache.iterdir()) if cache.is_dir() else set()
    env = dict(os.environ, MEDARK_PASSWORD=PASSWORD)
    done = subprocess.run([MEDARK, "--repo", str(tmp_path / "repo"), "init", "--json"],
                          env=env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    repo_id = json.loads(done.stdout)["id"]
    assert {p.name for p in set(cache.iterdir()) - before} == {repo_id}


WRITES_THE_DEFAULT_CACHE = f"""
import os, subprocess
from pathlib import Path

def test_init_with_the_default_cache():
    env = dict(os.environ, MEDARK_PASSWORD={PASSWORD!r})
    subprocess.run([{MEDARK!r}, "--repo", "repo", "init"], env=env, check=True,
                   capture_output=True)
    assert (Path(os.environ["XDG_CACHE_HOME"]) / "medark").is_dir()
"""

WRITES_THE_USERS_CACHE = """
from pathlib import Path

def test_leaks_into_the_users_cache():
    Path(__file__).parent.joinpath("home/.cache/medark/copy-status.json").write_text("{}")
"""


def _session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
             source: str) -> tuple[pytest.RunResult, Path]:
    """The inner session's HOME holds a user's cache with one file in it."""
    home = pytester.path / "home"
    (home / ".cache" / "medark").mkdir(parents=True)
    (home / ".cache" / "medark" / "copy-status.json").write_text('{"offsite": {}}')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("PYTHONPATH", PLUGIN_DIR)
    # only the plugin under test: the installed ones cost each inner pytest ~2 s of CPU
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_inner=source)
    result = pytester.runpytest_subprocess("-p", "private_home", "-p", "no:cacheprovider")
    return result, home / ".cache" / "medark"


def test_a_session_that_uses_medarks_default_cache_leaves_the_users_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, users = _session(pytester, monkeypatch, WRITES_THE_DEFAULT_CACHE)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1)
    assert [p.name for p in users.iterdir()] == ["copy-status.json"]
    assert (users / "copy-status.json").read_text() == '{"offsite": {}}'


def test_a_session_that_writes_the_users_cache_fails_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, users = _session(pytester, monkeypatch, WRITES_THE_USERS_CACHE)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= the real medark cache changed during the tests =*",
                                 f"{users} changed: copy-status.json"])
