"""`medark dump SNAPSHOT PATH`: a file's content, or a directory as a tar or zip stream,
on standard output or into --target FILE (restic's `dump`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from medark.cli.access_options import add_access_audit_options, audited_read
from medark.cli.command import Command
from medark.cli.commands.snapshots import add_filters, filters
from medark.cli.context import Context
from medark.engine.choices import DUMP_ARCHIVES
from medark.errors import UsageError
from medark.util.files import atomic_stream
from medark.util.sizes import format_bytes

if TYPE_CHECKING:
    from medark.engine.dump import DumpSummary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot id (prefix) or 'latest'")
    p.add_argument("file", metavar="PATH",
                   help="absolute path in the snapshot: a file is written as it is, a "
                        "directory ('/' for everything) as an archive")
    p.add_argument("-a", "--archive", choices=DUMP_ARCHIVES, default="tar",
                   help="archive format for a directory (default: tar)")
    p.add_argument("-t", "--target", metavar="FILE",
                   help="write into FILE (it appears whole or not at all) instead of "
                        "standard output")
    add_filters(p, "consider snapshots for 'latest'")
    add_access_audit_options(p)


def run(ctx: Context) -> int:
    from medark.engine.dump import dump
    from medark.snapshot.store import find_snapshot

    args = ctx.args
    if args.target is None and sys.stdout.isatty():
        raise UsageError("refusing to write file data to a terminal: redirect standard "
                         "output or give --target FILE")
    output = str(Path(args.target).absolute()) if args.target else "standard output"
    with audited_read(ctx, "snapshot.dump", snapshot=args.snapshot, path=args.file,
                      archive=args.archive, output=output) as access, \
            ctx.repository(lock="shared", command="dump") as repo:
        snap = find_snapshot(repo, args.snapshot, **filters(args))
        access.snapshot(snap.id)
        if args.target is None:
            summary = dump(repo, snap, args.file, sys.stdout.buffer, args.archive)
            sys.stdout.buffer.flush()
        else:
            with atomic_stream(Path(args.target), 0o600) as out:
                summary = dump(repo, snap, args.file, out, args.archive)
        access.note(files=summary.files, bytes=summary.bytes)
    _report(ctx, summary, snap.short_id)
    return 0


def _report(ctx: Context, summary: DumpSummary, snapshot: str) -> None:
    """On stderr: standard output may be the data itself."""
    if not ctx.out.verbose:
        return
    skipped = f", {summary.skipped} entries an archive cannot hold skipped" \
        if summary.skipped else ""
    ctx.out.warn(f"dumped {summary.files} file(s), {summary.dirs} dir(s), "
                 f"{format_bytes(summary.bytes)} from snapshot {snapshot}{skipped}")


COMMAND = Command("dump", "write a file, or a directory as tar/zip, from a snapshot",
                  add_arguments, run)
