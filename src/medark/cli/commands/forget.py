"""`medark forget`: remove snapshots by policy (or by id); `--prune` then frees their data.

Only snapshot files are removed here; the data they referenced stays until `prune`.
Policy semantics are restic's (policy/retention.py), with buckets in UTC.
While a legal-hold marker cannot be read or verified, forget removes nothing (each
snapshot it would remove is kept with a line naming the marker, no WAL or binlog is
expired, no prune runs) and exits 1 (engine/worm.py, fail closed).
A consistency-group point that stays keeps what it restores from (its base backup, the
WAL from there, its files snapshot: engine/group_retention.py), one line each.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from medark.cli.command import Command
from medark.cli.commands.prune import add_prune_options, print_report, run_prune
from medark.cli.commands.prune import summary_document as prune_document
from medark.cli.context import Context
from medark.errors import ObjectLocked, UsageError
from medark.policy.netconfig import netconfig_holds
from medark.policy.records import record_holds
from medark.policy.retention import (
    UNLIMITED,
    Decision,
    GroupKey,
    RetentionPolicy,
    Span,
    apply_policy,
    group_snapshots,
    parse_group_by,
    parse_taglist,
)
from medark.snapshot.model import Snapshot
from medark.util import clock

if TYPE_CHECKING:
    from medark.engine.group_retention import GroupHolds
    from medark.engine.prune_plan import PruneStats
    from medark.engine.worm import HoldSurvey, Kept
    from medark.repo.repository import Repository

_COUNTS = (("last", "l"), ("hourly", "H"), ("daily", "d"), ("weekly", "w"), ("monthly", "m"),
           ("yearly", "y"))
_WITHINS = ("within", "within-hourly", "within-daily", "within-weekly", "within-monthly",
            "within-yearly")


def parse_count(text: str) -> int:
    if text == "unlimited":
        return UNLIMITED
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'unlimited')") from None
    if value < UNLIMITED:
        raise argparse.ArgumentTypeError("negative values other than -1 are not allowed")
    return value


def parse_span(text: str) -> Span:
    try:
        return Span.parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOT",
                   help="remove exactly these snapshots (ids, id prefixes or 'latest')")
    keep = p.add_argument_group("policy (a snapshot is kept if any rule keeps it)")
    for name, short in _COUNTS:
        what = "snapshots" if name == "last" else f"{name} snapshots"
        keep.add_argument(f"--keep-{name}", f"-{short}", type=parse_count, default=0, metavar="N",
                          help=f"keep the last N {what} (-1 or 'unlimited': all)")
    for name in _WITHINS:
        what = "" if name == "within" else name.removeprefix("within-") + " "
        keep.add_argument(f"--keep-{name}", type=parse_span, default=None, metavar="DURATION",
                          help=f"keep {what}snapshots newer than DURATION (e.g. 1y5m7d2h) "
                               "before the newest snapshot")
    keep.add_argument("--keep-tag", action="append", default=[], metavar="TAG[,TAG]",
                      help="keep snapshots that have all these tags (repeatable)")
    pick = p.add_argument_group("which snapshots")
    pick.add_argument("--host", action="append", default=[],
                      help="only snapshots of this host (repeatable)")
    pick.add_argument("--tag", action="append", default=[], metavar="TAG[,TAG]",
                      help="only snapshots with these tags (repeatable)")
    pick.add_argument("--path", action="append", default=[],
                      help="only snapshots that include this path (repeatable)")
    pick.add_argument("-g", "--group-by", default="host,paths",
                      help="apply the policy per group of host, paths and/or tags "
                           "(default host,paths; '' for one group)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="only show what would be removed")
    p.add_argument("--prune", action="store_true",
                   help="run `prune` afterwards when snapshots were removed")
    add_prune_options(p)


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    spans = {name.replace("-", "_"): getattr(args, "keep_" + name.replace("-", "_"))
             for name in _WITHINS}
    return RetentionPolicy(
        **{name: getattr(args, f"keep_{name}") for name, _short in _COUNTS},
        **spans,
        keep_tags=tuple(parse_taglist(t) for t in args.keep_tag),
    )


def run(ctx: Context) -> int:
    from medark.engine.mysql_retention import binlog_to_expire
    from medark.engine.pg_retention import wal_to_expire
    from medark.engine.prune_plan import parse_max_unused
    from medark.engine.worm import refuse_if_damaged, survey_holds
    from medark.snapshot.store import all_snapshots, filter_snapshots

    args = ctx.args
    policy = _policy(args)
    group_by = parse_group_by(args.group_by)
    max_unused = parse_max_unused(args.max_unused)
    groups: list[dict[str, Any]] = []
    removed: list[Snapshot] = []
    prune_stats: PruneStats | None = None
    with ctx.repository(lock="exclusive", command="forget") as repo:
        if args.snapshots:
            removed = _explicit(repo, args)
            every = all_snapshots(repo)
            held = {**netconfig_holds(every), **record_holds(every, clock.now())}
            for snap in (s for s in removed if s.id in held):  # never undercut the law
                ctx.out.text(f"snapshot {snap.short_id} kept: {held[snap.id]}")
            removed = [s for s in removed if s.id not in held]
            groups.append(_group_doc(GroupKey(None, None, None), [], [
                Decision(s, ("given on the command line",)) for s in removed]))
            _print_table(ctx, f"remove {len(removed)} snapshots:", [
                Decision(s, ()) for s in removed], with_reasons=False)
        elif policy.empty():
            ctx.out.text("no policy was specified, no snapshots will be removed")
        else:
            ctx.out.text(f"applying policy: {policy.describe()}")
            snaps = filter_snapshots(all_snapshots(repo), hosts=args.host, paths=args.path,
                                     tags=args.tag)
            now = clock.now()
            for key, members in group_snapshots(snaps, group_by):
                result = apply_policy(members, policy, now)
                groups.append(_group_doc(key, result.keep, result.remove))
                _print_group(ctx, key, result.keep, result.remove)
                removed.extend(result.removed_snapshots)
        # Snapshots under legal hold or retention are skipped, one line each (engine/worm.py);
        # all of them while a hold marker is damaged.
        holds = survey_holds(repo)
        removed, kept_locked, points = _remove(ctx, repo, removed, holds)
        if removed:
            verb = "would remove" if args.dry_run else "removed"
            ctx.out.text(f"{verb} {len(removed)} snapshot{'' if len(removed) == 1 else 's'}")
        gone = {s.id for s in removed}
        remaining = [s for s in all_snapshots(repo) if s.id not in gone]
        expired = ([] if holds.damaged
                   else wal_to_expire(repo, remaining, points.wal_from())
                   + binlog_to_expire(repo, remaining))
        if expired:
            if not args.dry_run:
                for name in expired:
                    try:
                        repo.remove_object(name)
                    except ObjectLocked as exc:
                        ctx.out.text(f"{exc}: kept")
            verb = "would expire" if args.dry_run else "expired"
            ctx.out.text(f"{verb} {len(expired)} archived WAL/binlog file(s) that no "
                         "remaining backup needs")
        if ctx.out.as_json:
            ctx.out.json(groups)
            if kept_locked:
                ctx.out.json({"message_type": "kept_locked",
                              "snapshots": [k.public() for k in kept_locked]})
            if points.needs:
                ctx.out.json(_points_doc(points, bool(args.dry_run)))
            if expired:
                ctx.out.json({"message_type": "wal_expired", "count": len(expired),
                              "dry_run": bool(args.dry_run)})
        if removed and args.prune:
            ctx.out.text("")
            ctx.out.text("dry run of prune:" if args.dry_run else "running prune:")
            prune_stats = run_prune(ctx, repo, max_unused, args.dry_run)
    refuse_if_damaged(holds, "forget removes nothing while it exists, as it may hold any "
                             "snapshot")
    if prune_stats is not None:
        if ctx.out.as_json:
            ctx.out.json(prune_document(prune_stats))
        else:
            print_report(ctx, prune_stats)
    return 0


def _remove(ctx: Context, repo: Repository, chosen: list[Snapshot], holds: HoldSurvey
            ) -> tuple[list[Snapshot], list[Kept], GroupHolds]:
    """Group points first (one a lock keeps still needs its parts), then the rest but
    what the remaining points restore from (engine/group_retention.py)."""
    from medark.engine.group_retention import group_holds
    from medark.engine.worm import remove_snapshots
    from medark.snapshot.store import all_snapshots

    dry_run = bool(ctx.args.dry_run)
    points = [s for s in chosen if s.source.get("kind") == "group"]
    others = [s for s in chosen if s.source.get("kind") != "group"]
    gone, kept = remove_snapshots(repo, points, dry_run, ctx.out.text, holds)
    needs = group_holds(all_snapshots(repo), {s.id for s in (*gone, *others)})
    for snap in (s for s in others if s.id in needs.held):
        ctx.out.text(f"snapshot {snap.short_id} kept: {needs.held[snap.id]}")
    more, kept_more = remove_snapshots(repo, [s for s in others if s.id not in needs.held],
                                       dry_run, ctx.out.text, holds)
    removed = {s.id for s in (*gone, *more)}
    for need in needs.needs:
        if need.problem:
            ctx.out.warn(f"group point {need.point.short_id}: {need.problem}")
    if needs.needs:
        ctx.out.text(f"{len(needs.needs)} group point(s) remain, each with its base backup, "
                     "the WAL from that backup's start to its LSN and its files snapshot"
                     + (f"; {len(needs.held)} snapshot(s) kept for them" if needs.held
                        else ""))
    return [s for s in chosen if s.id in removed], [*kept, *kept_more], needs


def _points_doc(holds: GroupHolds, dry_run: bool) -> dict[str, Any]:
    return {"message_type": "group_points", "dry_run": dry_run,
            "points": [n.public() for n in holds.needs],
            "kept": [{"id": snap_id, "reason": reason}
                     for snap_id, reason in sorted(holds.held.items())]}


def _explicit(repo: Repository, args: argparse.Namespace) -> list[Snapshot]:
    from medark.snapshot.store import find_snapshot

    chosen: dict[str, Snapshot] = {}
    for ref in args.snapshots:
        snap = find_snapshot(repo, ref, hosts=args.host or None, paths=args.path or None,
                             tags=args.tag or None)
        chosen[snap.id] = snap
    return sorted(chosen.values(), key=lambda s: (s.time, s.id), reverse=True)


def _group_doc(key: GroupKey, keep: list[Decision], remove: list[Decision]) -> dict[str, Any]:
    """restic's `forget --json` group, plus `remove_reasons` (why no rule kept each)."""
    return {
        "tags": list(key.tags) if key.tags is not None else None,
        "host": key.host or "",
        "paths": list(key.paths) if key.paths is not None else None,
        "keep": [d.snapshot.public() for d in keep],
        "remove": [d.snapshot.public() for d in remove],
        "reasons": [d.public() for d in keep],
        "remove_reasons": [{"id": d.snapshot.id, "reasons": list(d.reasons)} for d in remove],
    }


def _print_group(ctx: Context, key: GroupKey, keep: list[Decision],
                 remove: list[Decision]) -> None:
    header = key.describe()
    if header:
        ctx.out.prose(f"snapshots for ({header}):")
    if keep:
        _print_table(ctx, f"keep {len(keep)} snapshots:", keep, with_reasons=True)
    if remove:
        _print_table(ctx, f"remove {len(remove)} snapshots:", remove,
                     with_reasons=ctx.out.verbose > 0)


def _print_table(ctx: Context, title: str, rows: list[Decision], with_reasons: bool) -> None:
    """restic's layout: one row per snapshot, tags, reasons and paths one per line."""
    if not rows:
        return
    headers = ["ID", "Time (UTC)", "Host", "Tags", *(["Reasons"] if with_reasons else []),
               "Paths"]
    cells: list[list[list[str]]] = []
    for d in rows:
        s = d.snapshot
        time_text = clock.format_time(s.time).replace("T", " ").removesuffix("Z")[:19]
        row = [[s.short_id], [time_text], [s.hostname], list(s.tags) or [""]]
        if with_reasons:
            row.append(list(d.reasons) or [""])
        row.append(list(s.paths) or [""])
        cells.append(row)
    widths = [max(len(h), *(len(line) for row in cells for line in row[i]))
              for i, h in enumerate(headers)]

    def fmt(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    rule = "-" * len(fmt(["-" * w for w in widths]))
    ctx.out.text(title)
    ctx.out.text(fmt(headers))
    ctx.out.text(rule)
    for row in cells:
        for i in range(max(len(c) for c in row)):
            ctx.out.text(fmt([c[i] if i < len(c) else "" for c in row]))
    ctx.out.text(rule)
    ctx.out.text(f"{len(rows)} snapshot{'' if len(rows) == 1 else 's'}")
    ctx.out.text("")


COMMAND = Command("forget", "remove snapshots by policy or id (data stays until prune)",
                  add_arguments, run)
