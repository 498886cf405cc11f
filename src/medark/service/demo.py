"""The `make run` walk-through: sample data -> backup -> a day of change -> incremental
backup -> check --read-data -> restore -> byte-for-byte comparison.

It drives the real `medark` command (as an operator would), so what it shows is what
the command line does.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medark.service.sample_data import add_study, generate
from medark.util.secret_file import write_secret_file


@dataclass
class DemoReport:
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.steps)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 (or link target) of every file and symlink below root."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel] = "dir"
    return out


def simulate_a_day(data: Path) -> None:
    """New rows at the end of the dump and one new study: what a night adds."""
    dump = data / "DB" / "his_dump.sql"
    with dump.open("a") as f:
        for row in range(500):
            f.write(f"INSERT INTO lab_result VALUES ({100000 + row}, 7, 'GLU', 5.4, 'final');\n")
    add_study(data / "PACS" / "2026" / "11" / "26", seed=2026)


def run_demo(workdir: Path, say: Callable[[str], None]) -> DemoReport:
    workdir = workdir.absolute()
    data, repo, restore = workdir / "hospital", workdir / "repo", workdir / "restore"
    for path in (data, repo, restore):
        shutil.rmtree(path, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    password = workdir / "password"
    write_secret_file(str(password), (secrets.token_urlsafe(24) + "\n").encode())
    env = dict(os.environ, MEDARK_REPO=str(repo), MEDARK_PASSWORD_FILE=str(password),
               MEDARK_CACHE_DIR=str(workdir / "cache"))
    env.pop("MEDARK_PASSWORD", None)
    report = DemoReport()

    def medark(title: str, *args: str) -> bool:
        say(f"\n$ medark {' '.join(args)}")
        proc = subprocess.run([sys.executable, "-m", "medark", *args], env=env, text=True,
                              capture_output=True, check=False)
        for line in (proc.stdout + proc.stderr).rstrip().splitlines():
            say(f"  {line}")
        ok = proc.returncode == 0
        report.steps.append((title, ok, f"exit {proc.returncode}"))
        return ok

    say(f"== Medark demo in {workdir}")
    stats = generate(data)
    say(f"generated sample hospital data: {stats.files} files, {stats.nbytes / 2**20:.1f} MiB "
        f"(DICOM studies incl. re-sent images, an HIS dump) in {data}")
    report.steps.append(("generate sample data", True, f"{stats.files} files"))
    steps_ok = (
        medark("init repository", "init")
        and medark("first backup", "backup", str(data), "--tag", "demo")
        and _do(lambda: simulate_a_day(data), say, "simulated a day of change: new rows, "
                "a new study")
        and medark("incremental backup", "backup", str(data), "--tag", "demo")
        and medark("verify every byte", "check", "--read-data")
        and medark("list snapshots", "snapshots")
        and medark("restore latest", "restore", "latest", "--target", str(restore))
        and medark("repository statistics", "stats", "--mode", "raw-data")
    )
    if steps_ok:
        restored_root = restore / data.relative_to("/")
        same = tree_digest(data) == tree_digest(restored_root)
        detail = "every file identical" if same else "restored tree DIFFERS from the source"
        report.steps.append(("compare restore with source", same, detail))
    say("\n== Summary")
    for title, ok, detail in report.steps:
        say(f"  {'ok  ' if ok else 'FAIL'} {title:32s} {detail}")
    say("== all steps passed" if report.ok else "== some steps FAILED")
    return report


def _do(action: Callable[[], None], say: Callable[[str], None], message: str) -> bool:
    action()
    say(f"\n{message}")
    return True
