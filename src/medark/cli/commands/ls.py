"""`medark ls SNAPSHOT [PATH...]`: what a snapshot holds, one path per line or restic's
JSON lines (a snapshot line, then one line per node)."""

from __future__ import annotations

import argparse

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.commands.snapshots import add_filters, filters
from medark.cli.context import Context
from medark.engine.listing import format_long, list_nodes, local_time, node_json, snapshot_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id (prefix) or 'latest'")
    p.add_argument("dirs", nargs="*", metavar="PATH",
                   help="only these absolute paths and what they directly contain")
    p.add_argument("-l", "--long", action="store_true",
                   help="long format: mode, owner, group, size, mtime, path")
    p.add_argument("--recursive", action="store_true",
                   help="with PATH: include everything below it, not just its entries")
    add_filters(p, "consider snapshots for 'latest'")
    add_access_audit_options(p)


def run(ctx: Context) -> int:
    from medark.snapshot.store import find_snapshot

    args = ctx.args
    with audited_read(ctx, "snapshot.browse", snapshot=args.snapshot, paths=args.dirs,
                      recursive=args.recursive) as access, \
            ctx.repository(lock="shared", command="ls") as repo:
        snap = find_snapshot(repo, args.snapshot, **filters(args))
        access.snapshot(snap.id)
        nodes = list_nodes(repo, snap, args.dirs, args.recursive)
        if ctx.out.as_json:
            ctx.out.json(snapshot_json(snap))
            for path, node in nodes:
                ctx.out.json(node_json(path, node))
            return 0
        if args.verbose:
            ctx.out.text(f"snapshot {snap.short_id} of {snap.paths} at "
                         f"{local_time(snap.time)}:")
        for path, node in nodes:
            ctx.out.text(format_long(path, node) if args.long else path)
    return 0


COMMAND = Command("ls", "list files in a snapshot", add_arguments, run)
