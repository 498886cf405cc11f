"""`medark copy`: replicate snapshots (and WAL/binlog archives) to another repository.

restic's spelling: the destination is the repository (`--repo`, `--to-repo`, $MEDARK_REPO)
and `--from-repo` names the source, with its own password options. When no source
password is given, the destination's is tried (most sites use one password for both).
With `--keep-*`, only what the destination's retention keeps is sent: the daemon passes
a copy target's retention, so what the target's forget removed is not copied again;
`--status` counts as pending what that selection sends, and `--status --plan PLAN` reads
each copy target of a plan with the daemon's own selection.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from medark.cli.command import Command
from medark.cli.commands.forget import parse_count, parse_span
from medark.cli.commands.snapshots import add_filters, filters
from medark.cli.context import Context
from medark.cli.parser import add_source_password_options
from medark.config import environment as env
from medark.errors import UsageError
from medark.policy.residency import NON_COMPLIANT
from medark.policy.retention import RetentionPolicy
from medark.util import clock
from medark.util.sizes import format_bytes, format_duration

if TYPE_CHECKING:
    from medark.service.copy import Endpoint, Event, PassResult, Replicator, Selection


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="SNAPSHOT",
                   help="only these snapshots (id prefixes; default: all that pass the filters)")
    p.add_argument("--from-repo", metavar="LOCATION",
                   help="source repository (default: $MEDARK_FROM_REPO)")
    p.add_argument("--to-repo", metavar="LOCATION",
                   help="destination repository (same as --repo)")
    add_source_password_options(p)
    add_filters(p)
    p.add_argument("--no-archives", action="store_true",
                   help="copy snapshots only, not the WAL/binlog archives")
    p.add_argument("--follow", action="store_true",
                   help="keep running: copy new snapshots and WAL/binlog records as they land")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="with --follow: how often to look for new data (default 2)")
    p.add_argument("--status", action="store_true",
                   help="show each destination's newest copied point and its age, then exit; "
                        "with --from-repo, what a copy with the same snapshots, filters and "
                        "--keep-* would send (pending)")
    p.add_argument("--plan", metavar="PLAN",
                   help="with --status: each copy target of this plan of --config, pending "
                        "as the daemon's copy selects (the plan's tag, the target's retention)")
    p.add_argument("--config", metavar="FILE",
                   help="with --plan: protection configuration (default $MEDARK_CONFIG, else "
                        "/etc/medark/medark.toml)")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="blobs copied in parallel (default 2)")
    keep = p.add_argument_group(
        "retention at the destination (copy only what its forget with this policy keeps, "
        "judged per host and paths with the snapshots already there)")
    for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        keep.add_argument(f"--keep-{name}", type=parse_count, default=0, metavar="N",
                          help=f"as forget --keep-{name}")
    keep.add_argument("--keep-within", type=parse_span, default=None, metavar="DURATION",
                      help="as forget --keep-within")
    p.add_argument("--require-residency", action="store_true",
                   help="refuse (exit 14) unless the destination recorded a location inside "
                        "mainland China at init (docs/compliance.md#data-residency)")


def run(ctx: Context) -> int:
    from medark.service.copy import Replicator

    args = ctx.args
    if args.to_repo:
        args.repo = args.to_repo
    if args.interval <= 0 or args.workers < 1:
        raise UsageError("--interval must be positive and --workers at least 1")
    if args.plan and not args.status:
        raise UsageError("--plan goes with --status (`medark run PLAN` copies a plan now)")
    if args.status:
        return _plan_status(ctx) if args.plan else _status(ctx)
    source = args.from_repo or env.FROM_REPO.get()
    if not source:
        raise UsageError("no source repository: use --from-repo or set MEDARK_FROM_REPO")
    if source == ctx.location:
        raise UsageError("source and destination are the same repository")
    with _endpoints(ctx, source) as (src, dst):
        _check_residency(ctx, dst)
        replicator = Replicator(src, dst, ctx.cache_dir, _selection(args), args.workers,
                                ctx.out.warn)
        try:
            if args.follow:
                return _follow(ctx, replicator)
            progress = ctx.progress("copy")
            try:
                result = replicator.run_pass(_event_printer(ctx),
                                             lambda n: progress.advance(nbytes=n))
            finally:
                progress.close()
            _report(ctx, result)
        finally:
            replicator.close()
    return 0


def _selection(args: argparse.Namespace) -> Selection:
    """What a copy with these options sends (and `--status` counts as pending): the ids
    and filters, then only what the destination's --keep-* retention keeps."""
    from medark.service.copy import Selection, select_snapshots

    return Selection(select_snapshots(args.ids, **filters(args)),
                     archives=not args.no_archives, keep=_policy(args),
                     peers=select_snapshots([], **filters(args)))


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    return RetentionPolicy(last=args.keep_last, hourly=args.keep_hourly, daily=args.keep_daily,
                           weekly=args.keep_weekly, monthly=args.keep_monthly,
                           yearly=args.keep_yearly, within=args.keep_within)


@contextmanager
def _endpoints(ctx: Context, source: str) -> Iterator[tuple[Endpoint, Endpoint]]:
    """Both repositories, opened side by side once their passwords are read (prompts come
    one after the other): each unlock is a deliberately slow KDF and each remote open a
    few round trips, and a `copy --follow` restarted by a supervisor should not wait twice."""
    from medark.service.copy import Endpoint

    dst_password = ctx.repository_password()
    src_password = ctx.source_password(source)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="open") as pool:
        dst_open = pool.submit(ctx.open, dst_password)
        src_open = pool.submit(ctx.open_source, source, src_password)
        wait([dst_open, src_open])
    opened = [f.result() for f in (dst_open, src_open) if f.exception() is None]
    try:
        dst_repo, src_repo = dst_open.result(), src_open.result()  # the first error raises
        yield Endpoint(src_repo, source), Endpoint(dst_repo, ctx.location)
    finally:
        for repo in opened:
            repo.close()


def _check_residency(ctx: Context, dst: Endpoint) -> None:
    """Before any data moves: refuse with --require-residency, else warn on a destination
    outside mainland China (an unknown location is reported by `check`, not here)."""
    from medark.service.residency import destination_residency

    verdict = destination_residency(dst.repo, dst.location, ctx.args.require_residency)
    if verdict.verdict == NON_COMPLIANT:
        ctx.out.warn(f"medark: warning: copying into {dst.location}: {verdict.reason}")


def _event_printer(ctx: Context) -> Event:
    def on_event(kind: str, details: dict[str, Any]) -> None:
        if ctx.out.as_json:
            ctx.out.json({"message_type": "copied", "kind": kind, **details})
        elif kind == "snapshot":
            ctx.out.text(f"snapshot {details['id'][:8]} ({details['time']}) copied as "
                         f"{details['copy_id'][:8]}")
        elif ctx.out.verbose:
            ctx.out.text(f"copied {details['name']}")
    return on_event


def _report(ctx: Context, result: PassResult) -> None:
    s = result.stats
    if ctx.out.as_json:
        ctx.out.json({"message_type": "summary", **s.public(),
                      "group_points": [p.public() for p in result.group]})
        return
    ctx.out.text(f"snapshots: {s.snapshots_copied} copied, {s.snapshots_present} already there")
    for part in result.group:  # what each group point restores from came along
        need = part.needs
        brought = ", ".join(snap.short_id for snap in part.added) or "nothing more"
        database = (f"its base backup {need.base_backup.short_id}, " if need.base_backup
                    else "")
        log = "binlog" if need.kind == "mariadb" else "WAL"
        wal = (f" and {log} {need.wal_from} to {need.wal_to} ({len(part.wal)} record(s))"
               if need.wal_from is not None else "")
        ctx.out.text(f"group point {need.point.short_id}: sent with {database}files snapshot "
                     f"{need.files_snapshot[:8]}{wal}; added: {brought}"
                     + (f"; problem: {need.problem}" if need.problem else ""))
    if s.records_copied or s.records_present:
        ctx.out.text(f"WAL/binlog records: {s.records_copied} copied, "
                     f"{s.records_present} already there")
    b = s.blobs
    ctx.out.text(f"data: {b.copied} blobs stored, {b.present + b.reused} already there; "
                 f"{format_bytes(s.stored_bytes)} sent in {s.packs_written} pack(s)")


def _follow(ctx: Context, replicator: Replicator) -> int:
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_pass(result: PassResult) -> None:
        s = result.stats
        if s.snapshots_copied or s.records_copied:
            if ctx.out.as_json:
                ctx.out.json({"message_type": "pass", **s.public()})
            else:
                _report(ctx, result)

    def on_error(exc: Exception) -> None:
        ctx.out.warn(f"medark: copy pass failed, will retry: {str(exc).splitlines()[0]}")

    try:
        replicator.follow(stop, ctx.args.interval, on_pass, _event_printer(ctx), on_error)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _status(ctx: Context) -> int:
    from medark.service.copy import Endpoint, live_status, recorded_status

    args = ctx.args
    source = args.from_repo or env.FROM_REPO.get()
    now = clock.now()
    if args.repo or env.REPO.get():
        if source:
            with _endpoints(ctx, source) as (src, dst):
                rows = [live_status(src, dst, _selection(args))]
        else:
            with ctx.repository(lock=None, command="copy --status") as repo:
                rows = [live_status(None, Endpoint(repo, ctx.location))]
    else:
        if ctx.cache_dir is None:
            raise UsageError("--status without --repo reads the cache: drop --no-cache")
        rows = [r for r in recorded_status(ctx.cache_dir)
                if not source or r.source == source]
    if ctx.out.as_json:
        ctx.out.json([r.public(now) for r in rows])
    else:
        for row in rows:
            ctx.out.prose(_status_line(row.public(now)))
        if not rows:
            ctx.out.text("no copies recorded")
    return 0


def _plan_status(ctx: Context) -> int:
    """Each copy target of the plan, read by `copy --status` children with the daemon's
    own selection (service/copy_plan.py)."""
    from medark.service.copy_plan import plan_copy_status  # the scheduler: only here
    from medark.service.plans import config_path, load_plans

    rows = plan_copy_status(load_plans(config_path(ctx.args.config)), ctx.args.plan)
    if ctx.out.as_json:
        ctx.out.json(rows)
        return 0
    for row in rows:
        ctx.out.text(_status_line({**row, "source": "",
                                   "destination": f"plan {row['plan']} at {row['target']}"}))
    return 0


def _status_line(doc: dict[str, Any]) -> str:
    age = doc["age_seconds"]
    age_text = "never" if age is None else f"{format_duration(age)} ago"
    line = f"{doc['destination']}: newest point {doc['newest_point'] or '-'} ({age_text})"
    if doc["source"]:
        line = f"{doc['source']} -> " + line
    if doc.get("destination_residency"):
        line += (f", location {doc['destination_location'] or 'unknown'} "
                 f"({doc['destination_residency']})")
    if doc["pending"]:
        line += ", pending: " + ", ".join(f"{v} {k}" for k, v in doc["pending"].items())
    return line


COMMAND = Command("copy", "copy snapshots and WAL/binlog archives to another repository",
                  add_arguments, run)
