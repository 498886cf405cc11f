"""Shared fixtures: a fast KDF, a private cache, and the real `medark` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# ci_mode: in CI (CI=true) a skipped test fails the run; every run prints "skips: N".
# private_home: the session's own HOME and XDG_* dirs; the real ~/.cache/medark is guarded.
# longest_first: the longest modules start first (tests/module_seconds.json).
pytest_plugins = ["pytester", "ci_mode", "private_home", "longest_first"]

from medark_command import MEDARK, PASSWORD, TEST_KDF  # noqa: E402  (re-exported)

__all__ = ["MEDARK", "PASSWORD", "TEST_KDF"]


def pytest_configure(config: pytest.Config) -> None:
    """Coverage's subprocess support (pyproject.toml) saves the data of every `medark` the
    tests start, archive_command's too, run as the postgres user: so the data directory is
    writable by every user, sticky like /tmp. Only a directory named .coverage-data."""
    started = _coverage_started()
    if started is not None:
        data = Path(str(started.get_option("run:data_file"))).absolute().parent
        if data.name == ".coverage-data" and data.is_dir():
            data.chmod(0o1777)


def _coverage_started() -> Any:
    try:
        import coverage
    except ImportError:
        return None
    return coverage.Coverage.current()


@pytest.fixture(autouse=True)
def _fast_kdf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A cheap scrypt cost and an isolated cache for every test."""
    for var, value in TEST_KDF.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("MEDARK_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("MEDARK_REPO", "MEDARK_PASSWORD", "MEDARK_PASSWORD_FILE",
                "MEDARK_PASSWORD_COMMAND"):
        monkeypatch.delenv(var, raising=False)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@dataclass
class Cli:
    """Runs the installed `medark` command as a subprocess against one repository."""

    repo: Path
    env: dict[str, str]

    def __call__(self, *args: str | Path, check: bool = True, password: str | None = PASSWORD,
                 timeout: float = 300, input: bytes | None = None) -> Result:
        env = dict(self.env)
        if password is not None:
            env["MEDARK_PASSWORD"] = password
        proc = subprocess.run(
            [MEDARK, *map(str, args)], env=env, capture_output=True, timeout=timeout,
            input=input, check=False,
        )
        result = Result(proc.returncode, proc.stdout.decode(errors="replace"),
                        proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            raise AssertionError(
                f"medark {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDARK_PASSWORD")}
    env["MEDARK_REPO"] = str(tmp_path / "repo")
    env.update(TEST_KDF)
    env["MEDARK_CACHE_DIR"] = str(tmp_path / "cache")
    yield Cli(tmp_path / "repo", env)


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A /tmp of this test's own (TMPDIR) for every `medark` it starts, world-writable and
    sticky like /tmp since restored servers run as the database's OS user: a test that
    checks nothing was left behind must not see another worker's restore sandbox. Request
    it before the fixtures that copy the environment (`usefixtures` does)."""
    root = Path(tempfile.mkdtemp(prefix="medark-test-tmp-", dir="/tmp"))
    root.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def nothing_left_in(root: Path) -> None:
    """No restore-test sandbox under `root`, and no process (a restored server) running
    from one."""
    assert not list(root.glob("medark-restore-test-*")), "the sandbox is left"
    leftover = subprocess.run(["pgrep", "-af", f"{root}/medark-restore-test-"],
                              capture_output=True, text=True, check=False)
    assert leftover.stdout == "", f"a restored server still runs: {leftover.stdout}"


@pytest.fixture
def initialized(cli: Cli) -> Cli:
    cli("init")
    return cli


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Any]:
    """A new local repository (AES-GCM, zstd level 1) with its own cache; a module that
    needs another kind defines its own `repo`. (medark is imported here, not at the top:
    coverage starts after this file is read.)"""
    from medark.repo.compression import CompressionSpec
    from medark.repo.repository import Repository
    from medark.storage.local import LocalBackend

    repository = Repository.init(LocalBackend(tmp_path / "repo"), b"pw", "aes-256-gcm",
                                 CompressionSpec("zstd", 1), cache_dir=tmp_path / "cache")
    yield repository
    repository.close()
