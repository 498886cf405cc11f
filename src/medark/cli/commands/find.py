"""`medark find PATTERN...`: which snapshots hold files matching glob patterns.

A pattern without '/' matches names ('*.dcm'); with '/' it matches paths
('/data/pacs/2026/**/CT*', or 'series*/IM*' against the path's last components).
--json prints restic's document: [{"matches": [...], "hits": N, "snapshot": ID}, ...].
"""

from __future__ import annotations

import argparse
from typing import Any

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.commands.snapshots import add_filters, select
from medark.cli.context import Context
from medark.engine.find import Finder
from medark.engine.listing import format_long, local_time, match_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="PATTERN", help="glob pattern (fnmatch)")
    p.add_argument("-s", "--snapshot", action="append", default=[], metavar="ID",
                   help="only search this snapshot (repeatable; default: all)")
    add_filters(p, "search snapshots")
    p.add_argument("-i", "--ignore-case", action="store_true", help="ignore case in patterns")
    add_access_audit_options(p)


def run(ctx: Context) -> int:
    out = ctx.out
    results: list[dict[str, Any]] = []
    total = 0
    with audited_read(ctx, "snapshot.find", patterns=ctx.args.patterns,
                      snapshot=ctx.args.snapshot) as access, \
            ctx.repository(lock="shared", command="find") as repo:
        snaps = select(repo, ctx.args.snapshot, ctx.args)
        access.note(searched=len(snaps))
        finder = Finder(repo, ctx.args.patterns, ctx.args.ignore_case)
        for snap in snaps:
            matches = finder.find(snap.tree)
            if not matches:
                continue
            access.snapshot(snap.id)  # the snapshots whose names it showed
            total += len(matches)
            access.note(hits=total)
            if out.as_json:
                results.append({"matches": [match_json(p, n) for p, n in matches],
                                "hits": len(matches), "snapshot": snap.id})
                continue
            if total > len(matches):
                out.text()
            out.text(f"Found matching entries in snapshot {snap.short_id} from "
                     f"{local_time(snap.time)}")
            for path, node in matches:
                out.text(format_long(path, node))
    if out.as_json:
        out.json(results)
    elif not total:
        out.text(f"no matches in {len(snaps)} snapshot" + ("" if len(snaps) == 1 else "s"))
    return 0


COMMAND = Command("find", "find files in snapshots by name or path pattern", add_arguments,
                  run)
