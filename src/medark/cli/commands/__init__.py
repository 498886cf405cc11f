"""One module per command, each exposing COMMAND; discovered here, listed in help order.

Modules are imported only when their command is named: a file backup must not load
the database drivers (psycopg alone adds about 15 MB of RSS and 60 ms of start-up), and
`pg wal-fetch`, run by PostgreSQL once per WAL segment, must start fast. `medark --help`
and a mistyped command import none: SUMMARIES gives each command's line of help (a test
holds it equal to the module's own).
"""

from __future__ import annotations

import importlib
import pkgutil

from medark.cli.command import Command

SUMMARIES: dict[str, str] = {
    "init": "create a new repository",
    "backup": "back up files, directories or a command's output",
    "snapshots": "list snapshots",
    "snapshot": "legal hold on a snapshot (hold, release) and lock status",
    "ls": "list files in a snapshot",
    "diff": "show differences between two snapshots",
    "find": "find files in snapshots by name or path pattern",
    "stats": "show sizes, deduplication and compression",
    "restore": "restore a snapshot into a target directory",
    "dump": "write a file, or a directory as tar/zip, from a snapshot",
    "check": "verify the repository (structure, and with --read-data all data)",
    "tag": "add, remove or set snapshot tags",
    "forget": "remove snapshots by policy or id (data stays until prune)",
    "prune": "remove data that no snapshot uses",
    "copy": "copy snapshots and WAL/binlog archives to another repository",
    "serve": "serve a repository directory over HTTP(S) for rest: locations: append-only "
             "for every client, full access only with --full-access and an auth file",
    "server": "the management API server: users, roles, sign-in (init: the administrators)",
    "agent": "a protected host's agent for the management server: enroll, run",
    "pg": "PostgreSQL: base backups, WAL archive, point-in-time restore",
    "mysql": "MariaDB/MySQL: hot backups, binlog stream, point-in-time restore",
    "dicom": "the DICOM catalog: find studies, verify a snapshot against it",
    "netconfig": "network-device configurations: fetch over SSH, versions, show, diff",
    "group": "PACS consistency groups: index and files as one point (backup, restore, "
             "check)",
    "config": "validate the protection configuration file",
    "plan": "explain what the protection plans run and when",
    "run": "run a plan's backup now, recorded in the job catalog",
    "jobs": "list the job history from the catalog",
    "verify": "restore a plan's newest points into a sandbox and check them",
    "daemon": "run the protection plans on their schedules",
    "alerts": "list the alerts the daemon raised",
    "audit": "verify, export and anchor the tamper-evident audit trail",
    "dbaudit": "the database audit trail: collect, search, monthly report",
    "dr": "application-level DR: status of the primary/standby pairs, switch-over, "
          "failover and failback, history of switches and drills",
    "compliance": "judge the plans and their measured results against a hospital tier "
                  "and 等保 level",
    "report": "write the monthly or quarterly report (HTML, PDF)",
    "key": "manage keys (passwords): list, add, remove ID, passwd",
    "unlock": "remove stale locks (--remove-all: every lock)",
    "demo": "back up, verify and restore a sample hospital dataset",
    "completion": "print the bash or zsh completion script",
    "version": "print the version",
}
HELP_ORDER = list(SUMMARIES)

NAMES: list[str] = sorted(
    # a name with "_" is one action of a group kept in its own module (dicom_restore:
    # `dicom restore`, which cli/commands/dicom.py adds to its group), not a command
    (m.name for m in pkgutil.iter_modules(__path__) if "_" not in m.name),
    key=lambda n: (HELP_ORDER.index(n) if n in HELP_ORDER else len(HELP_ORDER), n),
)


def load(name: str) -> Command:
    """The command `name` (one of NAMES), importing its module and whatever it needs."""
    command: Command = importlib.import_module(f"{__name__}.{name}").COMMAND
    return command
