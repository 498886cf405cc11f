"""`medark backup`: files and directories, or a command's output (--stdin-from-command)."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from medark.cli.command import Command
from medark.cli.context import Context
from medark.engine.backup import Backup, BackupOptions
from medark.engine.backup_stdin import backup_command, backup_stdin
from medark.errors import PartialBackup, UsageError
from medark.sources.files.excludes import Excluder
from medark.util.memory import fix_mmap_threshold
from medark.util.sizes import format_bytes, format_duration


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="files and directories to back up")
    p.add_argument("--tag", action="append", default=[], help="add a tag (repeatable)")
    p.add_argument("--host", default="", help="host name to record (default: this host)")
    p.add_argument("-e", "--exclude", action="append", default=[], metavar="GLOB",
                   help="exclude paths matching GLOB (repeatable)")
    p.add_argument("--exclude-file", action="append", default=[], metavar="FILE",
                   help="read exclude patterns from FILE, one per line")
    p.add_argument("-x", "--one-file-system", action="store_true",
                   help="do not cross filesystem boundaries")
    p.add_argument("--parent", help="use this snapshot as the parent (default: latest match)")
    p.add_argument("-f", "--force", action="store_true",
                   help="read every file, ignoring the parent snapshot")
    p.add_argument("--stdin", action="store_true", help="store standard input as one file")
    p.add_argument("--stdin-from-command", action="store_true",
                   help="run the command after `--` and store its output; fail if it fails")
    p.add_argument("--stdin-filename", default="stdin", help="file name for stdin data")
    p.add_argument("--workers", type=int, default=0, help="worker threads (default: cores)")


def run(ctx: Context) -> int:
    args = ctx.args
    stream_mode = args.stdin or args.stdin_from_command
    if not stream_mode and not args.paths:
        raise UsageError("nothing to back up: give at least one PATH (or --stdin)")
    if args.stdin and args.stdin_from_command:
        raise UsageError("--stdin and --stdin-from-command exclude each other")
    excluder = Excluder.from_options(args.exclude, args.exclude_file)
    host = args.host or socket.gethostname()
    fix_mmap_threshold()
    with ctx.repository(lock="shared", command="backup") as repo:
        progress = ctx.progress("backup")
        try:
            if args.stdin_from_command:
                snapshot, summary = backup_command(
                    repo, args.paths, args.stdin_filename, tags=args.tag, host=host,
                    progress=progress)
                errors: list[str] = []
            elif args.stdin:
                snapshot, summary = backup_stdin(
                    repo, sys.stdin.buffer, args.stdin_filename, tags=args.tag, host=host,
                    progress=progress)
                errors = []
            else:
                options = BackupOptions(
                    paths=args.paths, tags=args.tag, host=host, excluder=excluder,
                    one_file_system=args.one_file_system, parent=args.parent,
                    force=args.force, workers=args.workers)
                result = Backup(repo, options, progress).run()
                snapshot, summary, errors = result.snapshot, result.summary, result.errors
        finally:
            progress.close()
    report(ctx, summary)
    if errors:
        partial = PartialBackup(
            f"snapshot {snapshot.short_id} was saved, but {len(errors)} file(s) or "
            "directories could not be read (listed above)"
        )
        partial.in_output = ctx.out.as_json  # the summary's "errors" field says so
        raise partial
    return 0


def report(ctx: Context, summary: dict[str, Any]) -> None:
    if ctx.out.as_json:
        ctx.out.json({"message_type": "summary", **summary})
        return
    ctx.out.text(
        f"Files:       {summary['files_new']} new, {summary['files_changed']} changed, "
        f"{summary['files_unmodified']} unmodified")
    if "dirs_new" in summary:
        ctx.out.text(
            f"Dirs:        {summary['dirs_new']} new, {summary['dirs_changed']} changed, "
            f"{summary['dirs_unmodified']} unmodified")
    ctx.out.text(
        f"Added to the repository: {format_bytes(summary['data_added'])} "
        f"({format_bytes(summary['data_added_packed'])} stored)")
    ctx.out.text(
        f"processed {summary['total_files_processed']} files, "
        f"{format_bytes(summary['total_bytes_processed'])} "
        f"(read {format_bytes(summary['bytes_read'])}) in "
        f"{format_duration(summary['total_duration'])}")
    ctx.out.text(f"snapshot {summary['snapshot_id'][:8]} saved")


COMMAND = Command("backup", "back up files, directories or a command's output",
                  add_arguments, run)
