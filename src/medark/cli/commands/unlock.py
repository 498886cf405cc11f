"""`medark unlock`: remove stale locks (dead process on this host, or not refreshed for
30 minutes); with --remove-all, every lock. Takes no lock itself."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.context import Context
from medark.repo.locks import LOCKS_PREFIX, LockInfo
from medark.util import clock

if TYPE_CHECKING:
    from medark.repo.repository import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remove-all", action="store_true",
                   help="remove all locks, even those of running processes")


def _remove_all(repo: Repository) -> tuple[list[LockInfo], list[str]]:
    """Every lock, including unreadable (damaged) ones: (read locks, unreadable names)."""
    readable = repo.locks.remove_stale(remove_all=True)
    unreadable = []
    for info in repo.backend.list(LOCKS_PREFIX):
        repo.backend.remove(info.name)
        unreadable.append(info.name)
    return readable, unreadable


def run(ctx: Context) -> int:
    from medark.service.keys import unindexed_repository

    with unindexed_repository(ctx.location, ctx.repository_password(), None, "unlock",
                              ctx.out.warn) as repo:
        if ctx.args.remove_all:
            removed, unreadable = _remove_all(repo)
        else:
            removed, unreadable = repo.locks.remove_stale(), []
        remaining, damaged = ([], []) if ctx.args.remove_all else repo.locks.survey()
    now = clock.now()
    if ctx.out.as_json:
        ctx.out.json({
            "message_type": "unlock",
            "removed": [_public(lock) for lock in removed]
            + [{"id": n.removeprefix(LOCKS_PREFIX), "unreadable": True} for n in unreadable],
            "remaining": [_public(lock) for lock in remaining]
            + [{"id": bad.name.removeprefix(LOCKS_PREFIX), "unreadable": True}
               for bad in damaged],
        })
        return 0
    for lock in removed:
        why = "stale " if lock.stale(now) else ""
        ctx.out.text(f"removed {why}{lock.describe()}")
    for name in unreadable:
        ctx.out.text(f"removed unreadable lock {name.removeprefix(LOCKS_PREFIX)[:8]}")
    count = len(removed) + len(unreadable)
    ctx.out.text(f"successfully removed {count} lock{'' if count == 1 else 's'}")
    for lock in remaining:
        ctx.out.text(f"kept {lock.describe()} (not stale: its owner may still run; "
                     "--remove-all removes it)")
    for bad in damaged:
        ctx.out.text(f"kept {bad.describe()} (unreadable: its owner cannot be told; "
                     "once nothing runs on this repository, --remove-all removes it)")
    return 0


def _public(lock: LockInfo) -> dict[str, object]:
    return {
        "id": lock.name.removeprefix(LOCKS_PREFIX), "time": clock.format_time(lock.time),
        "hostname": lock.hostname, "pid": lock.pid, "username": lock.username,
        "exclusive": lock.exclusive, "command": lock.command,
    }


COMMAND = Command("unlock", "remove stale locks (--remove-all: every lock)", add_arguments, run)
