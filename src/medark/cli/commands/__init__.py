"""One module per command, each exposing COMMAND; discovered here, listed in help order.

Modules are imported only when their command is asked for: a file backup must not load
the database drivers (psycopg alone adds about 15 MB of RSS and 60 ms of start-up), and
`pg wal-fetch`, run by PostgreSQL once per WAL segment, must start fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from medark.cli.command import Command

HELP_ORDER = [
    "init", "backup", "snapshots", "snapshot", "ls", "diff", "find", "stats", "restore", "dump",
    "check", "tag", "forget", "prune", "copy", "serve", "pg", "mysql", "config", "plan", "run",
    "jobs", "verify",
    "daemon", "alerts", "compliance", "report",
    "key",
    "unlock",
    "demo",
    "version",
]

NAMES: list[str] = sorted(
    (m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")),
    key=lambda n: (HELP_ORDER.index(n) if n in HELP_ORDER else len(HELP_ORDER), n),
)


def load(names: Iterable[str]) -> list[Command]:
    """The commands named (in help order); all of them when none is named."""
    wanted = set(names) & set(NAMES) or set(NAMES)
    return [importlib.import_module(f"{__name__}.{n}").COMMAND for n in NAMES if n in wanted]
