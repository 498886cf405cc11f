"""What the packaging tests share: the wheel, built from a copy of the tree (a build
leaves build/ and *.egg-info beside its sources, and the tree is shared), and a cache of
downloads kept between sessions. Not a conftest.py: tests import `conftest` by name and
expect tests/conftest.py."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def real_home() -> Path:
    """The user's home from the password database: the session's HOME is a temporary one."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def build_cache() -> Path:
    """Downloads kept between test sessions: pip's cache and the .deb's wheelhouse. In the
    real home's ~/.cache, never ~/.cache/medark."""
    cache = real_home() / ".cache" / "medark-packaging-tests"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def fast_tmp() -> str | None:
    """A memory file system for the .deb's ~150 MB virtualenv, unpacked twice: on a
    busy disk that halves the build; None where there is none (the default temp dir)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        free = shutil.disk_usage(shm).free
        if free > 2 << 30:
            return str(shm)
    return None


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    if fast_tmp():
        env["TMPDIR"] = str(fast_tmp())
    env["PIP_CACHE_DIR"] = str(build_cache() / "pip")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # The machine's own pip settings (its package index, say) live in the real home,
    # which the session's temporary HOME hides.
    user_config = real_home() / ".config" / "pip" / "pip.conf"
    if "PIP_CONFIG_FILE" not in env and user_config.is_file():
        env["PIP_CONFIG_FILE"] = str(user_config)
    return env


def build_wheel(work: Path) -> Path:
    """medark-<version>-py3-none-any.whl in work/dist, built by pip from a copy of the
    working tree in work/source."""
    source = work / "source"
    source.mkdir(parents=True)
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
