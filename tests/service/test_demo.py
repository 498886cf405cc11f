"""The `make run` walk-through works end to end and reports every step."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli

from medark.service.demo import tree_digest
from medark.service.sample_data import add_study, generate


def test_sample_data_is_deterministic(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", studies=3)
    b = generate(tmp_path / "b", studies=3)
    assert a == b and a.files > 5
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    dump = (tmp_path / "a" / "DB" / "his_dump.sql").read_text()
    assert dump.startswith("-- HIS database dump") and "INSERT INTO lab_result" in dump
    dicom = next((tmp_path / "a" / "PACS").rglob("*.dcm")).read_bytes()
    assert dicom[128:132] == b"DICM"
    assert add_study(tmp_path / "a" / "PACS" / "new", seed=3) > 0


def test_demo_command_runs_every_step(cli: Cli, tmp_path: Path) -> None:
    result = cli("demo", "--workdir", tmp_path / "demo", password=None, timeout=600)
    out = result.stdout
    for step in ("first backup", "incremental backup", "verify every byte",
                 "restore latest", "compare restore with source"):
        assert f"ok   {step}" in out, out
    assert "all steps passed" in out
    assert "no errors were found" in out
