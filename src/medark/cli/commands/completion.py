"""`medark completion bash|zsh`: the shell completion script, generated from the parser
(shtab), so it offers exactly the commands and options this version has.

Installed once per host (README, "Shell completion"): bash reads it from
~/.local/share/bash-completion/completions/medark (or /etc/bash_completion.d/medark),
zsh as `_medark` in a directory of its $fpath.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import shtab

from medark.cli.command import Command
from medark.cli.toplevel import build_parser

if TYPE_CHECKING:
    from medark.cli.context import Context

SHELLS = ("bash", "zsh")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, help="the shell to print the script for")


def run(ctx: Context) -> int:
    parser = build_parser(every=True)
    _complete_paths(parser)
    script = shtab.complete(parser, shell=ctx.args.shell)
    sys.stdout.write(script if script.endswith("\n") else script + "\n")
    return 0


def _complete_paths(parser: argparse.ArgumentParser) -> None:
    """Files and directories where an argument names one (its metavar FILE, PATH or DIR,
    or a dest such as password_file or cache_dir): shtab completes nothing there unless
    told."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _complete_paths(sub)
            continue
        metavar, dest = str(action.metavar or ""), action.dest
        if metavar == "DIR" or dest.endswith("_dir"):
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
        elif metavar in ("FILE", "PATH") or dest.endswith("_file") or action.type is Path:
            action.complete = shtab.FILE  # type: ignore[attr-defined]


COMMAND = Command("completion", "print the bash or zsh completion script", add_arguments, run)
