"""A pytest plugin: the session gets its own HOME and XDG directories, and fails if the real
~/.cache/medark changed anyway.

`medark` keeps its cache in $MEDARK_CACHE_DIR, else $XDG_CACHE_HOME/medark, else
~/.cache/medark (service/session.py), including `copy-status.json`. Each test sets its own
MEDARK_CACHE_DIR, but a fixture that outlives a test, a daemon's children or an environment
built by hand would still reach the real one: a test run once added its test repositories to
an administrator's copy status. So the whole session, and every subprocess it starts, runs
with HOME and XDG_* in a temporary directory. Its XDG directories are world-writable and
sticky like /tmp: archive_command runs `medark pg wal-push` as the postgres user, who
inherits them (runuser resets HOME, not XDG_*).

The guard compares the real cache (found from the password database, not $HOME, and where
$HOME and $XDG_CACHE_HOME put it) before and after the session, and fails the session if it
changed. tests/conftest.py loads this plugin; tests/test_private_home.py tests it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

XDG = {"XDG_CACHE_HOME": ".cache", "XDG_CONFIG_HOME": ".config",
       "XDG_DATA_HOME": ".local/share", "XDG_STATE_HOME": ".local/state"}
USER_STATE = ("MEDARK_CACHE_DIR", "MEDARK_CONFIG", "MEDARK_CATALOG")
"""Variables that would point a test at the user's own cache, configuration or catalog."""

Listing = dict[str, tuple[int, int]] | None
_HOME = pytest.StashKey[Path]()
_BEFORE = pytest.StashKey[dict[Path, Listing]]()
_CHANGED = pytest.StashKey[list[str]]()


def guarded_dirs() -> list[Path]:
    """The real ~/.cache/medark, and where $XDG_CACHE_HOME or $HOME put it before the
    session replaced them."""
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    dirs = [real_home / ".cache" / "medark"]
    if os.environ.get("XDG_CACHE_HOME"):
        dirs.append(Path(os.environ["XDG_CACHE_HOME"]) / "medark")
    if os.environ.get("HOME"):
        dirs.append(Path(os.environ["HOME"]) / ".cache" / "medark")
    return list(dict.fromkeys(dirs))


def listing(root: Path) -> Listing:
    """Every entry under root with its mtime and size; None when root does not exist."""
    if not root.is_dir():
        return None
    found = {".": (root.stat().st_mtime_ns, 0)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size)
    return found


def describe(root: Path, before: Listing, after: Listing) -> str | None:
    if before == after:
        return None
    if before is None:
        return f"{root} was created"
    if after is None:
        return f"{root} was removed"
    names = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{root} changed: {shown}"


def make_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="medark-tests-home-", dir="/tmp"))
    home.chmod(0o755)
    for sub in XDG.values():
        (home / sub).mkdir(parents=True)
        (home / sub).chmod(0o1777)
    # medark's own cache directory too: the first `medark` to make it would own it 0700,
    # and a `medark` run as the postgres user (runuser keeps XDG_*) could not add its own
    medark_cache = home / XDG["XDG_CACHE_HOME"] / "medark"
    medark_cache.mkdir()
    medark_cache.chmod(0o1777)
    return home


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_BEFORE] = {d: listing(d) for d in guarded_dirs()}
    home = config.stash[_HOME] = make_home()
    os.environ["HOME"] = str(home)
    for var, sub in XDG.items():
        os.environ[var] = str(home / sub)
    for var in USER_STATE:
        os.environ.pop(var, None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(_BEFORE, {})
    changed = [line for d, seen in before.items() if (line := describe(d, seen, listing(d)))]
    session.config.stash[_CHANGED] = changed
    if changed and session.exitstatus in (pytest.ExitCode.OK,
                                          pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    changed = config.stash.get(_CHANGED, [])
    if changed:
        terminalreporter.write_sep("=", "the real medark cache changed during the tests",
                                   red=True)
        for line in changed:
            terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
