"""One module per command, each exposing COMMAND; discovered here, listed in help order."""

from __future__ import annotations

import importlib
import pkgutil

from medark.cli.command import Command

HELP_ORDER = [
    "init", "backup", "snapshots", "ls", "diff", "find", "stats", "restore", "check",
    "forget", "prune", "pg", "mysql", "key", "unlock", "demo",
]


def _discover() -> list[Command]:
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (HELP_ORDER.index(n) if n in HELP_ORDER else len(HELP_ORDER), n))
    return [importlib.import_module(f"{__name__}.{n}").COMMAND for n in names]


COMMANDS: list[Command] = _discover()
