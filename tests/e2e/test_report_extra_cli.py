"""`medark report` without the `report` extra (matplotlib, WeasyPrint): one line that says
what to install, exit 18, before any work, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli


def _without(cli: Cli, tmp_path: Path, module: str) -> Cli:
    """The same command, on a Python where `import module` fails as if not installed: a
    module of that name first on PYTHONPATH that raises what a missing package raises."""
    shim = tmp_path / f"no-{module}"
    shim.mkdir()
    (shim / f"{module}.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n")
    return Cli(cli.repo, dict(cli.env, PYTHONPATH=str(shim)))


@pytest.mark.parametrize("module", ["matplotlib", "weasyprint"])
def test_report_without_the_extra_names_what_to_install(cli: Cli, tmp_path: Path,
                                                        module: str) -> None:
    blocked = _without(cli, tmp_path, module)
    result = blocked("report", "monthly", "--month", "2025-01", "--config",
                     tmp_path / "no-such.toml", "--output", tmp_path / "out", check=False)
    assert result.returncode == 18, result.stderr
    assert result.stderr == (f"medark: the report renderer is not installed ({module} is "
                             "missing): pip install 'medark[report]'\n")
    assert not (tmp_path / "out").exists()
    doc = blocked("report", "monthly", "--month", "2025-01", "--json", check=False).json()
    assert doc["code"] == "not_installed" and doc["exit_code"] == 18


def test_other_commands_run_without_the_extra(cli: Cli, tmp_path: Path) -> None:
    """A database host without the extra backs up (`init`, `backup`) as before."""
    blocked = _without(cli, tmp_path, "matplotlib")
    blocked("init")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    blocked("backup", tmp_path / "data")
