"""Fixtures of the packaging tests: the wheel, built once per worker from a copy of the
tree (a build leaves build/ and *.egg-info beside its sources, and the tree is shared)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def build_cache() -> Path:
    """Downloads kept between test sessions: pip's cache and the .deb's wheelhouse. In the
    real home's ~/.cache (the session's HOME is a temporary one), never ~/.cache/medark."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    cache = home / ".cache" / "medark-packaging-tests"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PIP_CACHE_DIR"] = str(build_cache() / "pip")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """medark-<version>-py3-none-any.whl, built by pip from the working tree."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
         str(work / "dist"), str(source)],
        env=build_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    built = sorted((work / "dist").glob("medark-*.whl"))
    assert len(built) == 1, built
    assert zipfile.is_zipfile(built[0])
    return built[0]
