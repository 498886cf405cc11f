"""`medark diff SNAP1 SNAP2`: what changed, in restic's format ("+    /path", "M    /path",
...) and statistics; --json gives restic's JSON lines (change records, then statistics).
`ID:/sub/dir` compares just that directory of each snapshot, as restic allows."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.context import Context
from medark.engine.listing import normalize_dir, resolve
from medark.errors import UsageError
from medark.snapshot.model import Snapshot
from medark.util.sizes import format_bytes

if TYPE_CHECKING:
    from medark.repo.repository import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("first", metavar="SNAPSHOT1", help="snapshot id, 'latest', or ID:/sub/dir")
    p.add_argument("second", metavar="SNAPSHOT2", help="snapshot id, 'latest', or ID:/sub/dir")
    p.add_argument("--metadata", action="store_true",
                   help="also show entries whose metadata (mode, owner, times) changed (U)")
    add_access_audit_options(p)


def _tree(repo: Repository, ref: str) -> tuple[Snapshot, bytes]:
    from medark.snapshot.store import find_snapshot

    ref, _, sub = ref.partition(":")
    snap = find_snapshot(repo, ref)
    if not sub:
        return snap, snap.tree
    node = resolve(repo, snap.tree, normalize_dir(sub), snap.id)
    if node is None:
        return snap, snap.tree
    if node.type != "dir" or node.subtree is None:
        raise UsageError(f"{sub} in snapshot {snap.short_id} is a {node.type}, not a directory")
    return snap, node.subtree


def run(ctx: Context) -> int:
    from medark.engine.diff import SnapshotDiff

    out = ctx.out
    with audited_read(ctx, "snapshot.diff", first=ctx.args.first,
                      second=ctx.args.second) as access, \
            ctx.repository(lock="shared", command="diff") as repo:
        snap1, tree1 = _tree(repo, ctx.args.first)
        access.snapshot(snap1.id)
        snap2, tree2 = _tree(repo, ctx.args.second)
        access.snapshot(snap2.id)
        differ = SnapshotDiff(repo, metadata=ctx.args.metadata)
        out.text(f"comparing snapshot {snap1.short_id} to {snap2.short_id}:")
        out.text()
        for change in differ.changes(tree1, tree2):
            if out.as_json:
                out.json(change.as_json())
            else:
                out.text(f"{change.modifier:<5}{change.path}")
        stats = differ.statistics(warn=out.warn)
    stats.source_snapshot, stats.target_snapshot = snap1.id, snap2.id
    if out.as_json:
        out.json(stats.as_json())
        return 0
    added, removed = stats.added, stats.removed
    out.text()
    out.text(f"Files:       {added.files:5d} new, {removed.files:5d} removed, "
             f"{stats.changed_files:5d} changed")
    out.text(f"Dirs:        {added.dirs:5d} new, {removed.dirs:5d} removed")
    out.text(f"Others:      {added.others:5d} new, {removed.others:5d} removed")
    out.text(f"Data Blobs:  {added.data_blobs:5d} new, {removed.data_blobs:5d} removed")
    out.text(f"Tree Blobs:  {added.tree_blobs:5d} new, {removed.tree_blobs:5d} removed")
    out.text(f"  Added:   {format_bytes(added.bytes)}")
    out.text(f"  Removed: {format_bytes(removed.bytes)}")
    return 0


COMMAND = Command("diff", "show differences between two snapshots", add_arguments, run)
