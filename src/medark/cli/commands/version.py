"""`medark version`: the program's version and platform, as `restic version` prints it
(scripts and support requests ask for it)."""

from __future__ import annotations

import argparse
import platform
import sys

from medark import __version__
from medark.cli.command import Command
from medark.cli.context import Context

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def add_arguments(_p: argparse.ArgumentParser) -> None:
    """No arguments."""


def run(ctx: Context) -> int:
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine(), platform.machine())
    python = ".".join(map(str, sys.version_info[:3]))
    if ctx.out.as_json:
        ctx.out.json({"message_type": "version", "version": __version__,
                      "python_version": python, "os": system, "arch": arch})
    else:
        ctx.out.text(f"medark {__version__} running on Python {python} on {system}/{arch}")
    return 0


COMMAND = Command("version", "print the version", add_arguments, run)
