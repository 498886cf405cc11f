"""`medark restore SNAPSHOT --target DIR`: put a snapshot (or part of it) back on disk."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.context import Context
from medark.errors import MedarkError, UsageError
from medark.util import clock
from medark.util.sizes import format_bytes, format_duration

if TYPE_CHECKING:
    from medark.engine.restore import RestoreSummary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshot", metavar="SNAPSHOT",
                   help="snapshot id (a unique prefix is enough) or 'latest'")
    p.add_argument("-t", "--target", required=True, metavar="DIR",
                   help="directory to restore into (full paths are kept below it)")
    p.add_argument("-i", "--include", action="append", default=[], metavar="GLOB",
                   help="restore only paths matching GLOB (repeatable)")
    p.add_argument("-e", "--exclude", action="append", default=[], metavar="GLOB",
                   help="do not restore paths matching GLOB (repeatable)")
    p.add_argument("--verify", action="store_true",
                   help="read every restored file back and check it against the snapshot")
    p.add_argument("-H", "--host", action="append", default=[],
                   help="for 'latest': only snapshots of this host (repeatable)")
    p.add_argument("--path", action="append", default=[],
                   help="for 'latest': only snapshots that include this path (repeatable)")
    p.add_argument("--tag", action="append", default=[],
                   help="for 'latest': only snapshots with this tag (a,b = both; repeatable)")
    p.add_argument("--workers", type=int, default=0, help="worker threads (default: cores)")
    p.add_argument("--processes", type=int, default=0, metavar="N",
                   help="restore processes for a large tree in a local repository "
                        "(default: one per core, up to 4, from 20,000 files; 1: none)")
    add_access_audit_options(p)


def run(ctx: Context) -> int:
    from medark.engine.restore import RestoreOptions, restore
    from medark.snapshot.store import find_snapshot

    args = ctx.args
    options = RestoreOptions(target=args.target, includes=args.include, excludes=args.exclude,
                             verify=args.verify, workers=args.workers,
                             processes=args.processes)
    if args.processes < 0 or args.workers < 0:
        raise UsageError("--processes and --workers take a number from 0 on")
    with audited_read(ctx, "snapshot.restore", snapshot=args.snapshot,
                      target_dir=os.path.abspath(args.target), include=args.include,
                      exclude=args.exclude) as access:
        with ctx.repository(lock="shared", command="restore") as repo:
            snapshot = find_snapshot(repo, args.snapshot, hosts=args.host or None,
                                     paths=args.path or None, tags=args.tag or None)
            access.snapshot(snapshot.id)
            ctx.out.prose(
                f"restoring snapshot {snapshot.short_id} of [{', '.join(snapshot.paths)}] "
                f"at {clock.format_time(snapshot.time)} by {snapshot.hostname} to "
                f"{args.target}")
            progress = ctx.progress("restore")
            try:
                summary = restore(repo, snapshot, options, progress)
            finally:
                progress.close()
        access.note(files=summary.files_restored, bytes=summary.bytes_restored)
        report(ctx, summary)
        try:
            summary.raise_for_problems()
        except MedarkError as failure:
            failure.in_output = ctx.out.as_json  # the summary document already says so
            raise
    return 0


def report(ctx: Context, summary: RestoreSummary) -> None:
    if ctx.out.as_json:
        ctx.out.json(summary.public())
        return
    seconds = summary.seconds_elapsed
    rate = summary.bytes_restored / seconds if seconds > 0 else 0.0
    ctx.out.prose(
        f"Summary: Restored {summary.files_restored} / {summary.total_files} files/dirs "
        f"({format_bytes(summary.bytes_restored)} / {format_bytes(summary.total_bytes)}) "
        f"in {format_duration(seconds)}, {format_bytes(rate)}/s")
    if summary.files_skipped:
        ctx.out.text(f"skipped {summary.files_skipped} entries that cannot be made here")
    if summary.files_verified or summary.verify_failures:
        ctx.out.text(f"verified {summary.files_verified} files, "
                     f"{len(summary.verify_failures)} failed")


COMMAND = Command("restore", "restore a snapshot into a target directory", add_arguments, run)
