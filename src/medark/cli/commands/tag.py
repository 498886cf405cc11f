"""`medark tag [--add T] [--remove T] [--set T] [ID…]`: change snapshot tags (restic's
`tag`); with no ids, every snapshot the filters select."""

from __future__ import annotations

import argparse

from medark.cli.command import Command
from medark.cli.commands.snapshots import add_filters, select
from medark.cli.context import Context
from medark.cli.parser import TagList


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="snapshot ids (prefixes) or 'latest' (default: all the filters select)")
    p.add_argument("--add", action=TagList, default=[], metavar="TAG[,TAG]",
                   help="add these tags (repeatable)")
    p.add_argument("--remove", action=TagList, default=[], metavar="TAG[,TAG]",
                   help="remove these tags (repeatable)")
    p.add_argument("--set", action=TagList, default=None, metavar="TAG[,TAG]",
                   help="replace all tags with these (repeatable; --set '' clears them)")
    add_filters(p, "snapshots")


def run(ctx: Context) -> int:
    from medark.engine.tags import TagChange, retag

    args = ctx.args
    change = TagChange(tuple(args.add), tuple(args.remove),
                       None if args.set is None else tuple(args.set))
    with ctx.repository(lock="exclusive", command="tag") as repo:
        snapshots = select(repo, args.ids, args)
        result = retag(repo, snapshots, change, ctx.out.warn)
    for old, new in result.changed:
        if ctx.out.as_json:
            ctx.out.json({"message_type": "changed", "old_snapshot_id": old.id,
                          "new_snapshot_id": new.id, "tags": new.tags})
        else:
            ctx.out.text(f"snapshot {old.short_id} saved as {new.short_id} with tags "
                         f"[{', '.join(new.tags)}]")
    if ctx.out.as_json:
        ctx.out.json({"message_type": "summary", "changed_snapshots": len(result.changed),
                      "unchanged_snapshots": result.unchanged,
                      "kept_snapshots": [{"id": s.id, "reason": why}
                                         for s, why in result.kept]})
    else:
        ctx.out.text(f"modified {len(result.changed)} snapshot(s)")
    return 0


COMMAND = Command("tag", "add, remove or set snapshot tags", add_arguments, run)
