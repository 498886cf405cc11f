"""`medark snapshot hold ID` / `release ID` / `status [ID…]`: legal holds on snapshots.

A held snapshot is never removed by `forget` (so `prune` keeps its data), on any
backend: the hold is a sealed marker object in holds/. On S3 with Object Lock it is also
an S3 legal hold on the snapshot file and every object it needs, which no client
credential without s3:PutObjectLegalHold can lift. Holds have no expiry: they are for
records that must be kept 15 or 30 years, and last until `release`. A marker that
cannot be read or verified fails closed (engine/worm.py): `status` names it on stderr,
and on S3 `release` refuses while it exists.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.context import Context
from medark.errors import UsageError
from medark.util import clock

if TYPE_CHECKING:
    from medark.engine.worm import HoldResult

ACTIONS = ("hold", "release", "status")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS,
                   help="hold ID (legal hold), release ID, or status [ID…] (lock state)")
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="snapshot id, unique prefix, or 'latest'")
    p.add_argument("--reason", default="",
                   help="why the snapshot is held (a case or record number), for the record")


def run(ctx: Context) -> int:
    from medark.engine.worm import active_holds, hold, lock_states, release, survey_holds
    from medark.snapshot.store import find_snapshot, snapshot_ids

    args = ctx.args
    if args.action in ("hold", "release") and len(args.ids) != 1:
        raise UsageError(f"`medark snapshot {args.action}` takes exactly one snapshot id")
    lock = None if args.action == "status" else "shared"  # excludes a running forget
    with ctx.repository(lock=lock, command=f"snapshot {args.action}") as repo:
        if args.action == "status":
            ids = ([find_snapshot(repo, ref).id for ref in args.ids] if args.ids
                   else snapshot_ids(repo))
            now = clock.now()
            states = lock_states(repo, sorted(ids))
            if ctx.out.as_json:
                ctx.out.json([s.public(now) for s in states])
            for state in states:
                ctx.out.text(f"{state.snapshot[:8]}  {state.describe(now)}")
            for bad in survey_holds(repo).damaged:
                ctx.out.warn(f"warning: {bad.describe()}: it may hold any snapshot, so "
                             "forget and prune delete nothing while it exists; "
                             "`medark check` reports it")
            return 0
        snap = find_snapshot(repo, args.ids[0])
        if args.action == "hold":
            if snap.id in active_holds(repo):
                ctx.out.text(f"snapshot {snap.short_id} is already under legal hold")
            result = hold(repo, snap, args.reason)
        else:
            if snap.id not in active_holds(repo):
                raise UsageError(f"snapshot {snap.short_id} is not under legal hold")
            result = release(repo, snap, lambda sid: find_snapshot(repo, sid))
    _report(ctx, args.action, result)
    return 0


def _report(ctx: Context, action: str, result: HoldResult) -> None:
    short = result.snapshot.short_id
    if ctx.out.as_json:
        ctx.out.json({"message_type": action, "id": result.snapshot.id, "short_id": short,
                      "marker": result.marker, "storage_legal_hold": result.storage_holds,
                      "objects": result.objects})
        return
    if action == "hold":
        ctx.out.text(f"snapshot {short} is under legal hold: forget and prune keep it "
                     "until `medark snapshot release`")
        if result.storage_holds:
            ctx.out.text(f"S3 legal hold set on {result.objects} object(s) it needs")
        else:
            ctx.out.text("recorded as a hold marker (this storage has no object lock)")
    else:
        ctx.out.text(f"snapshot {short} released from legal hold")
        if result.storage_holds:
            ctx.out.text(f"S3 legal hold lifted from {result.objects} object(s) no other "
                         "held snapshot needs")


COMMAND = Command("snapshot", "legal hold on a snapshot (hold, release) and lock status",
                  add_arguments, run)
