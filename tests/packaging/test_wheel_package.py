"""The wheel `pipx install` and the .deb and the container image install: every file the
package needs at run time is inside (not only the .py files), and its metadata is right."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from package_builds import ROOT, build_wheel

SRC = ROOT / "src" / "medark"
NOT_SHIPPED = {".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _package_files(wheel: Path) -> set[str]:
    """Every file of src/medark the wheel was built from, as the wheel names it
    (medark/...); from build_wheel's copy, as the shared tree may change meanwhile."""
    src = wheel.parent.parent / "source" / "src" / "medark"
    assert (src / "__init__.py").is_file(), src
    return {f"medark/{p.relative_to(src).as_posix()}" for p in src.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in NOT_SHIPPED}


def test_every_package_file_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_package_files(wheel) - names)
    assert not missing, f"not in the wheel (pyproject.toml package-data): {missing}"
    # What the management server, the catalog and the report cannot run without.
    for needed in ("medark/py.typed",
                   "medark/server/static/swagger-ui/swagger-ui-bundle.js",
                   "medark/server/static/swagger-ui/swagger-ui.css",
                   "medark/server/static/swagger-ui/LICENSE",
                   "medark/catalog/migrations/env.py",
                   "medark/catalog/migrations/script.py.mako",
                   "medark/catalog/migrations/versions/0001_jobs.py",
                   "medark/service/templates/report.html.j2"):
        assert needed in names, needed
    migrations = sorted((SRC / "catalog" / "migrations" / "versions").glob("0*.py"))
    assert migrations and all(
        f"medark/catalog/migrations/versions/{m.name}" in names for m in migrations)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "src/"))
                or "__pycache__" in n]


def test_wheel_metadata(wheel: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = project["version"]
    assert wheel.name == f"medark-{version}-py3-none-any.whl"
    archive = zipfile.ZipFile(wheel)
    info = f"medark-{version}.dist-info"
    meta = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    assert meta["Name"] == "medark" and meta["Version"] == version
    assert meta["Requires-Python"] == project["requires-python"]
    required = meta.get_all("Requires-Dist") or []
    for dependency in project["dependencies"]:
        assert dependency in required, dependency
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "medark = medark.cli.main:entry" in entry_points


def test_the_wheel_runs_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    """Unpacked alone (no src/ on the path), the CLI starts and finds its data files:
    the swagger-ui directory the server serves and the migrations the catalog runs."""
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = ("import medark, medark.cli.main, importlib.resources as r; "
             "print(medark.__file__); "
             "print(r.files('medark.server').joinpath('static/swagger-ui/swagger-ui.css')"
             ".is_file()); "
             "print(r.files('medark.catalog').joinpath('migrations/versions').is_dir())")
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, "
                           f"{str(unpacked)!r}); {probe}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    where, css, versions = done.stdout.split()
    assert where.startswith(str(unpacked)), where
    assert css == "True" and versions == "True", done.stdout
