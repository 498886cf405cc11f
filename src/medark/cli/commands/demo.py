"""`medark demo`: the walk-through `make run` shows on a fresh machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from medark.cli.command import Command
from medark.cli.context import Context
from medark.errors import MedarkError
from medark.service.demo import run_demo


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default=".demo",
                   help="where the sample data, repository and restore go (default .demo)")


def run(ctx: Context) -> int:
    report = run_demo(Path(ctx.args.workdir), ctx.out.text)
    if not report.ok:
        raise MedarkError("the demo failed; see the steps above")
    return 0


COMMAND = Command("demo", "back up, verify and restore a sample hospital dataset",
                  add_arguments, run)
